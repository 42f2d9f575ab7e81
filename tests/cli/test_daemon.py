"""The command against real device daemons: load, status, save and restore between devices of
different profiles, refusals and their exit codes, the daemon's life cycle."""

from __future__ import annotations

import ipaddress
import json
import os
import socket

import pytest

from service.client import DeviceClient
from service.errors import ErrorKind
from service.protocol import RemoteError
from service.traffic import synthetic_frames

from .conftest import FIXTURES, answers
from .conftest import cli_here as cli  # client commands in this process; daemons apart

FIREWALL = str(FIXTURES / "xdp_firewall_v4.o")
TAILCALL = str(FIXTURES / "xdp_tailcall.o")
FRAMES = [f for f, _ in zip(synthetic_frames(seed=5), range(300))]


def block(path, *addresses):
    with DeviceClient(str(path)) as client:
        for address in addresses:
            ip = ipaddress.ip_address(address)
            client.call("map.update", map=f"blocked_v{ip.version}", key=ip.packed,
                        value=bytes(8))


def call(path, method, **params):
    with DeviceClient(str(path)) as client:
        return client.call(method, **params)


def status(path):
    return call(path, "status")


def status_cli(path):
    result = cli("status", "--device", str(path), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def test_load_attach_and_status_json(daemons):
    a = daemons("A", "full", "--traffic", "synthetic", "--rate", "2000")
    result = cli("load", FIREWALL, "--device", str(a.path), "--attach")
    assert result.returncode == 0, result.stderr
    assert "xdp_firewall (attached)" in result.stdout
    block(a.path, "10.0.0.3", "2001:db8::0:3")
    actions = call(a.path, "inject", frames=FRAMES)["actions"]
    assert {"pass", "drop"} <= set(actions)
    state = status_cli(a.path)
    assert (state["name"], state["profile"], state["backend"]) == ("A", "full", "builtin")
    assert "VIRTIO_NET_F_BPF_OFFLOAD" in state["features"]
    (prog,) = state["programs"]
    assert (prog["name"], prog["type"], prog["attach"]) == ("xdp_firewall", "XDP", "xdp:hw on A")
    assert set(prog["counters"]) == {"pass", "drop", "tx", "redirect", "aborted"}
    assert prog["counters"]["drop"] >= actions.count("drop")
    assert prog["counters"]["pass"] >= actions.count("pass")
    maps = {m["name"]: m for m in state["maps"]}
    assert maps["blocked_v4"]["entries"] == 1 and maps["blocked_v4"]["max_entries"] == 1024
    assert maps["blocked_v6"]["type"] == "HASH"
    assert state["traffic"]["kind"] == "synthetic"
    once = cli("status", "--device", str(a.path), "--once")
    assert once.returncode == 0 and "device A" in once.stdout and "xdp_firewall" in once.stdout


def test_save_and_restore_between_profiles(daemons, tmp_path):
    a = daemons("A", "full")
    b = daemons("B", "smartnic")
    assert cli("load", FIREWALL, "--device", str(a.path), "--attach").returncode == 0
    block(a.path, "10.0.1.7", "10.0.2.11", "2001:db8::0:9")
    call(a.path, "inject", frames=FRAMES)
    keys = {kind: tmp_path / f"{kind}.key" for kind in ("ed25519", "aes")}
    for kind, path in keys.items():
        assert cli("keygen", "--type", kind, "-o", str(path)).returncode == 0
    snap = tmp_path / "a.snap"
    saved = cli("save", "--device", str(a.path), "-o", str(snap), "--sign",
                str(keys["ed25519"]), "--encrypt", str(keys["aes"]))
    assert saved.returncode == 0, saved.stderr
    assert "ed25519" in saved.stdout and os.stat(snap).st_mode & 0o777 == 0o600
    trust = ["--trust", f"{keys['ed25519']}.pub", "--decrypt", str(keys["aes"]),
             "--require-signature"]

    dry = cli("restore", str(snap), "--device", str(b.path), "--dry-run", *trust)
    assert dry.returncode == 0, dry.stderr
    assert "rewritable" in dry.stdout and "dry run" in dry.stdout
    empty = status(b.path)
    assert empty["programs"] == [] and empty["maps"] == []

    done = cli("restore", str(snap), "--device", str(b.path), *trust)
    assert done.returncode == 0, done.stderr
    assert "xdp_firewall" in done.stdout
    assert call(b.path, "map.items", map="blocked_v4") == call(a.path, "map.items",
                                                               map="blocked_v4")
    assert call(b.path, "inject", frames=FRAMES) == call(a.path, "inject", frames=FRAMES)
    state = status(b.path)
    assert state["programs"][0]["attach"] == "xdp:hw on B"

    back = tmp_path / "b.snap"
    assert cli("save", "--device", str(b.path), "-o", str(back), "--encrypt",
               str(keys["aes"])).returncode == 0  # --decrypt requires both files encrypted
    diff = cli("diff", str(snap), str(back), "--decrypt", str(keys["aes"]), "--json")
    assert diff.returncode == 0, diff.stderr
    changes = json.loads(diff.stdout)
    assert changes["programs"]["changed"] == [{"name": "xdp_firewall", "changed": ["bytecode"]}]
    assert changes["maps"]["added"] == changes["maps"]["removed"] == []
    inspect = cli("inspect", str(snap), *trust, "--json")
    assert inspect.returncode == 0, inspect.stderr
    data = json.loads(inspect.stdout)
    assert data["seal"]["authenticated"] and data["seal"]["cipher"] == "aes-256-gcm"
    assert data["programs"][0]["listing"] and data["device"] == "A"
    assert "VIRTIO_NET_F_BPF_OFFLOAD" in data["features"]
    text = cli("inspect", str(snap), "--decrypt", str(keys["aes"]))
    assert text.returncode == 0 and "not verified" in text.stdout and "exit" in text.stdout


def test_refusals_and_integrity_failures(daemons, tmp_path):
    source = daemons("S", "full")
    target = daemons("T", "smartnic")
    assert cli("load", TAILCALL, "--device", str(source.path)).returncode == 0
    snap = tmp_path / "tail.snap"
    assert cli("save", "--device", str(source.path), "-o", str(snap)).returncode == 0

    refused = cli("restore", str(snap), "--device", str(target.path))
    assert refused.returncode == 1
    assert "incompatible" in refused.stdout and "cannot take this snapshot" in refused.stderr
    dry = cli("restore", str(snap), "--device", str(target.path), "--dry-run", "--json")
    assert dry.returncode == 1 and json.loads(dry.stdout)["plan"]["outcome"] == "incompatible"
    assert status(target.path)["maps"] == []
    fallback = cli("restore", str(snap), "--device", str(target.path), "--allow-fallback",
                   "--json")
    assert fallback.returncode == 0, fallback.stderr
    assert "xdp_dispatch" in json.loads(fallback.stdout)["fallback"]

    unsigned = cli("restore", str(snap), "--device", str(target.path), "--require-signature")
    assert unsigned.returncode == 3 and "integrity" in unsigned.stderr
    tampered = tmp_path / "tampered.snap"
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0x40
    tampered.write_bytes(bytes(data))
    for command in (["inspect", str(tampered)],
                    ["restore", str(tampered), "--device", str(target.path)],
                    ["diff", str(snap), str(tampered)]):
        result = cli(*command)
        assert result.returncode == 3, (command, result.stderr)
        assert "SHA-256" in result.stderr
    wrong = tmp_path / "other.key"
    cli("keygen", "--type", "hmac", "-o", str(wrong))
    mac = tmp_path / "mac.key"
    cli("keygen", "--type", "hmac", "-o", str(mac))
    maced = tmp_path / "mac.snap"
    assert cli("save", "--device", str(source.path), "-o", str(maced), "--hmac",
               str(mac)).returncode == 0
    assert cli("inspect", str(maced), "--hmac", str(wrong)).returncode == 3
    assert cli("inspect", str(maced), "--hmac", str(mac)).returncode == 0

    assert cli("inspect", str(tmp_path / "missing.snap")).returncode == 2  # unreadable: usage (docs)
    assert cli("save", "--device", str(source.path), "-o", str(snap), "--sign",
               str(tmp_path / "nokey")).returncode == 2
    assert cli("restore", str(snap)).returncode == 2  # --device missing
    gone = cli("status", "--device", str(tmp_path / "nobody.sock"), "--once")
    assert gone.returncode == 1 and "no device daemon" in gone.stdout


def test_load_refused_leaves_the_device_empty(daemons):
    nic = daemons("N", "smartnic")
    result = cli("load", TAILCALL, "--device", str(nic.path), "--program", "xdp_dispatch",
                 "--attach")
    assert result.returncode == 1
    assert "PROG_ARRAY" in result.stderr
    state = status(nic.path)
    assert state["programs"] == [] and state["maps"] == []
    missing = cli("load", TAILCALL, "--device", str(nic.path), "--program", "nope")
    assert missing.returncode == 1 and "ENOENT" in missing.stderr


def test_protocol_errors_do_not_stop_the_daemon(daemons):
    d = daemons("P", "full")
    with pytest.raises(RemoteError) as info:
        call(d.path, "frobnicate")
    assert info.value.name == "ENOSYS" and info.value.kind == ErrorKind.INVALID
    with pytest.raises(RemoteError) as info:
        call(d.path, "load", object="not bytes")
    assert info.value.name == "EINVAL" and "'object'" in info.value.message
    with pytest.raises(RemoteError) as info:
        call(d.path, "load", object=b"\x7fELF garbage")
    assert info.value.kind == ErrorKind.REFUSED
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.connect(str(d.path))
    raw.sendall(b"\x93\x00\x01\xc1")  # a request cut by a byte msgpack never uses
    assert raw.recv(100) == b""  # the daemon drops this client
    raw.close()
    assert call(d.path, "ping") == {"name": "P", "profile": "full"}


def test_daemon_life_cycle(daemons, tmp_path):
    first = daemons("L", "legacy-nic")
    second = cli("device", "serve", "--name", "X", "--socket", str(first.path))
    assert second.returncode == 1 and "already answers" in second.stderr
    code, out, _ = first.stop()
    assert code == 0 and "stopped" in out and not first.path.exists()

    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(first.path))  # a socket file nobody listens on
    stale.close()
    again = daemons("L", "legacy-nic")  # same path: the stale file is replaced
    assert answers(again.path)
    assert cli("device", "stop", "--device", str(again.path)).returncode == 0
    assert again.process.wait(timeout=10) == 0 and not again.path.exists()

    plain = tmp_path / "plain"
    plain.write_text("not a socket")
    refused = cli("device", "serve", "--name", "Y", "--socket", str(plain))
    assert refused.returncode == 1 and "not a socket" in refused.stderr
    assert plain.read_text() == "not a socket"
    bad = cli("device", "serve", "--name", "Y", "--socket", str(tmp_path / "y.sock"),
              "--profile", "nope")
    assert bad.returncode == 1 and "no profile" in bad.stderr


def _kernel_reason() -> str | None:
    from offload.backends.kernel import kernel_available

    usable, reason = kernel_available()
    return None if usable else reason


@pytest.mark.skipif(_kernel_reason() is not None,
                    reason=f"the host kernel's bpf() is unavailable: {_kernel_reason()}")
def test_kernel_backend_device_restores_onto_the_builtin_one(daemons, tmp_path):
    k = daemons("K", "full", "--backend", "kernel")
    b = daemons("B", "smartnic", "--engine", "reference")
    assert cli("load", str(FIXTURES / "xdp_firewall.o"), "--device", str(k.path),
               "--attach").returncode == 0
    block(k.path, "10.0.0.3")
    expected = call(k.path, "inject", frames=FRAMES)
    state = status(k.path)
    assert (state["backend"], state["engine"]) == ("kernel", "kernel")
    snap = tmp_path / "k.snap"
    assert cli("save", "--device", str(k.path), "-o", str(snap)).returncode == 0
    assert cli("restore", str(snap), "--device", str(b.path)).returncode == 0
    assert status(b.path)["engine"] == "reference"
    assert call(b.path, "inject", frames=FRAMES) == expected


def test_pcap_traffic_is_replayed(daemons, tmp_path):
    from service.pcap import encode_pcap

    capture = tmp_path / "trace.pcap"
    capture.write_bytes(encode_pcap(FRAMES[:20]))
    d = daemons("C", "full", "--traffic", f"pcap:{capture}", "--rate", "2000")
    assert cli("load", str(FIXTURES / "xdp_pass.o"), "--device", str(d.path), "--program",
               "xdp_drop_all", "--attach").returncode == 0
    for _ in range(200):  # the daemon's beat sends 40 frames per 20 ms
        state = status(d.path)
        if state["programs"][0]["counters"]["drop"] >= 20:
            break
    assert state["traffic"]["kind"] == f"pcap:{capture}"
    assert state["programs"][0]["counters"]["drop"] >= 20
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all, no")
    result = cli("device", "serve", "--name", "X", "--socket", str(tmp_path / "x.sock"),
                 "--traffic", f"pcap:{bad}")
    assert result.returncode == 2 and "not a pcap file" in result.stderr
