"""A daemon's real ports: the --wire and --vhost-user options."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from offload.caps import load_profile
from offload.device import build_device
from offload.device.udp_wire import UdpWire
from service.errors import UsageError
from service.ports import parse_wire

from .conftest import ROOT


def test_wire_addresses_parse():
    assert parse_wire("udp:127.0.0.1:5001=127.0.0.1:5002") == (("127.0.0.1", 5001),
                                                                ("127.0.0.1", 5002), False)
    assert parse_wire("udp:[::1]:5001=[::1]:5002")[:2] == (("::1", 5001), ("::1", 5002))
    assert parse_wire("udp:127.0.0.1:5001=127.0.0.1:5002,learn")[2] is True
    for bad in ("tcp:1.2.3.4:5=1.2.3.4:6", "udp:127.0.0.1:5001", "udp:127.0.0.1:x=h:1",
                "udp:127.0.0.1:5001=127.0.0.1:5002,learning",
                "udp:127.0.0.1:0=127.0.0.1:1", "udp:127.0.0.1:1=127.0.0.1:70000"):
        with pytest.raises(UsageError, match="--wire"):
            parse_wire(bad)


def serve(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "device", "serve", "--name", "p", "--socket",
         str(tmp_path / "p.sock"), "--state-dir", str(tmp_path / "p.st"), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_a_wire_that_cannot_bind_is_a_usage_error(tmp_path):
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        done = serve(tmp_path, "--wire", f"udp:127.0.0.1:{port}=127.0.0.1:9")
    finally:
        taken.close()
    assert done.returncode == 2
    assert f"--wire: cannot bind 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_vhost_user_socket_in_a_missing_folder_is_a_usage_error(tmp_path):
    done = serve(tmp_path, "--vhost-user", str(tmp_path / "missing" / "g.vhost"))
    assert done.returncode == 2 and "--vhost-user: cannot listen on" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_learning_wire_follows_the_peer_it_last_heard_from():
    pair = build_device("w", load_profile("full"))
    old, new = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    for peer in (old, new):
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
    frame = b"\xff" * 6 + b"\x52\x54\x00\x00\x00\x0b" + b"\x08\x06" + bytes(28)
    for learn, expect in ((False, old), (True, new)):
        wire = UdpWire(pair.device, ("127.0.0.1", 0), old.getsockname(), threading.Lock(),
                       learn).start()
        try:
            new.sendto(frame, wire.local)  # the guest's RARP from the device it moved to
            deadline = time.monotonic() + 5
            while wire.received < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            wire.send(frame)
            assert expect.recv(100) == frame
            assert wire.moves == (1 if learn else 0)
        finally:
            wire.close()


def test_datagrams_that_are_not_frames_are_counted_and_move_nothing():
    """Shorter than an Ethernet header or longer than a jumbo frame: dropped before the
    device, and a learning wire does not follow their sender."""
    pair = build_device("w", load_profile("full"))
    peer, stranger = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    for sock in (peer, stranger):
        sock.bind(("127.0.0.1", 0))
    wire = UdpWire(pair.device, ("127.0.0.1", 0), peer.getsockname(), threading.Lock(),
                   learn=True).start()
    try:
        stranger.sendto(b"\x00" * 13, wire.local)
        stranger.sendto(b"\x00" * (9216 + 19), wire.local)
        peer.sendto(b"\x00" * 60, wire.local)  # a frame, from the peer it already has
        deadline = time.monotonic() + 5
        while wire.received + wire.malformed < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (wire.malformed, wire.received, wire.moves) == (2, 1, 0)
        assert pair.device.ports.rx_frames == 1
    finally:
        wire.close()
        peer.close()
        stranger.close()


def test_port_options_parse_and_take_ifindexes_in_order():
    from service.ports import PortSpec, parse_port, plan_ports

    assert parse_port("c:vhost-user=/tmp/c.vhost") == PortSpec("c", "/tmp/c.vhost", None,
                                                               None, "--port c")
    spec = parse_port("c-2:vhost-user=/tmp/c.vhost,ifindex=9,"
                      "wire=udp:127.0.0.1:5003=127.0.0.1:5004,learn")
    assert (spec.ifindex, spec.wire) == (9, "udp:127.0.0.1:5003=127.0.0.1:5004,learn")
    assert parse_port("c:vhost-user=/s,wire=tap:tap-c").wire == "tap:tap-c"
    planned = plan_ports(["/tmp/b.vhost", "/tmp/x.vhost"],
                         ["c:vhost-user=/tmp/c.vhost,ifindex=4", "d:vhost-user=/tmp/d.vhost"])
    assert [(p.name, p.ifindex) for p in planned] == [("port1", 1), ("port2", 2), ("c", 4),
                                                      ("d", 3)]
    for bad, why in (("c", "expected NAME"), (":vhost-user=/s", "a name"),
                     ("c:tap=/s", "expected"), ("c:vhost-user=/s,ifindex=0", "outside 1..64"),
                     ("c:vhost-user=/s,ifindex=65", "outside"), ("c:vhost-user=/s,mtu=9",
                                                                 "is not ifindex"),
                     ("c:vhost-user=/s,wire=udp:1.2.3.4:5", "wire"),
                     ("c:vhost-user=/s,wire=", "wire= is empty"),
                     ("c:vhost-user=/s,wire=tap:a/b", "not an interface name")):
        with pytest.raises(UsageError, match=why):
            parse_port(bad)
    for sockets, ports, why in (([], ["c:vhost-user=/a,ifindex=1", "d:vhost-user=/b,ifindex=1"],
                                 "same ifindex: 1"),
                                (["/a"], ["c:vhost-user=/b,ifindex=1"], "same ifindex: 1"),
                                (["/a"], ["c:vhost-user=/a"], "same socket"),
                                ([], ["c:vhost-user=/a", "c:vhost-user=/b"], "same name: c")):
        with pytest.raises(UsageError, match=why):
            plan_ports(sockets, ports)


def test_a_daemon_with_two_ports_lists_them_in_its_status(tmp_path):
    from service.client import DeviceClient

    from .conftest import DaemonProcess

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    free = probe.getsockname()[1]
    probe.close()
    daemon = DaemonProcess(
        tmp_path / "s.sock", "s", "full", "--state-dir", str(tmp_path / "s.st"),
        "--vhost-user", str(tmp_path / "b.vhost"),
        "--port", f"c:vhost-user={tmp_path / 'c.vhost'},ifindex=5,"
                  f"wire=udp:127.0.0.1:{free}=127.0.0.1:9")
    try:
        with DeviceClient(str(daemon.path)) as client:
            ports = client.call("status")["interfaces"]
        assert [(p["ifindex"], p["name"], p["connected"]) for p in ports] == [
            (1, "port1", False), (5, "c", False)]
        assert ports[0]["wire"] == "device"
        assert ports[1]["wire"] == f"udp 127.0.0.1:{free} -> 127.0.0.1:9"
        assert ports[1]["served"] == f"vhost-user {tmp_path / 'c.vhost'}"
        assert set(ports[1]["counters"]) >= {"rx_to_guest", "redirected_in", "tx_to_wire"}
        shown = subprocess.run(
            [sys.executable, "-m", "cli.main", "device", "show", "--device", str(daemon.path)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "200"})
        assert "port         5 c (down, vhost-user" in shown.stdout
    finally:
        code, out, _ = daemon.stop()
    assert code == 0 and "port c (ifindex 5) over vhost-user" in out


def test_two_ports_on_one_ifindex_end_serve_with_usage(tmp_path):
    done = serve(tmp_path, "--vhost-user", str(tmp_path / "b.vhost"),
                 "--port", f"c:vhost-user={tmp_path / 'c.vhost'},ifindex=1")
    assert done.returncode == 2 and "two ports have the same ifindex: 1" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "b.vhost").exists()


def test_a_tap_wire_with_a_bad_name_is_a_usage_error(tmp_path):
    done = serve(tmp_path, "--wire", "tap:" + "x" * 20)
    assert done.returncode == 2 and "--wire 'tap:xxxx" in done.stderr
    assert "not an interface name" in done.stderr and "Traceback" not in done.stderr
