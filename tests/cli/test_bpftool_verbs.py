"""bpftool's grammar against a real daemon: prog show|dump|run|attach|detach|unload, map
show|dump|lookup|update|delete|freeze, -j/-p anywhere, objects by id or name, bytes as a
byte list or hex, and one-line refusals with the documented exit codes."""

from __future__ import annotations

import json

import pytest

from offload.backends.kernel import KernelMap, load_program_spec
from offload.backends.kernel.availability import kernel_available
from offload.isa.tag import program_tag
from offload.loader import load_object
from service.frames import ether, ipv4, udp
from service.pcap import encode_pcap
from tests.cli.conftest import FIXTURES, DaemonProcess, cli, run_main

FIREWALL = str(FIXTURES / "xdp_firewall.o")


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    base = tmp_path_factory.mktemp("bpftool")
    daemon = DaemonProcess(base / "a.sock", "A", "full", "--state-dir", str(base / "state"))
    yield daemon
    daemon.stop()


@pytest.fixture
def loaded(device, capsys, monkeypatch):
    """The firewall loaded and attached; $OFFLOAD_MIGRATE_DEVICE names the daemon."""
    monkeypatch.setenv("OFFLOAD_MIGRATE_DEVICE", str(device.path))
    code, out, err = run_main(capsys, "load", FIREWALL, "--attach")
    assert code == 0, err
    yield device
    run_main(capsys, "prog", "detach")
    run_main(capsys, "prog", "unload", "name", "xdp_firewall")


def run(capsys, *args):
    return run_main(capsys, *args)


def test_prog_show_and_json_shapes(loaded, capsys):
    code, out, _ = run(capsys, "prog", "show")
    assert code == 0 and "xdp  name xdp_firewall" in out and "attached xdp:hw on A" in out
    code, out, _ = run(capsys, "-j", "prog", "show", "name", "xdp_firewall")
    shown = json.loads(out)
    assert shown["name"] == "xdp_firewall" and shown["type"] == "xdp"
    assert shown["isa"] == 3  # the -mcpu=v3 build (its v4 build: 4, lowered on a v3 device: 3)
    code, out, _ = run(capsys, "prog", "list", "id", str(shown["id"]), "-p")
    assert out.startswith("{\n") and json.loads(out)["id"] == shown["id"]
    spec = load_object(FIREWALL).programs["xdp_firewall"]
    assert shown["tag"] == program_tag(spec.instructions).hex()
    assert shown["gpl_compatible"] is True and shown["bytes_xlated"] == 8 * shown["insns"]
    code, out, _ = run(capsys, "-j", "map", "show")
    assert sorted(shown["map_ids"]) == sorted(m["id"] for m in json.loads(out))


def test_prog_tag_is_the_host_kernels(loaded, capsys):
    """The tag names the same program on the device and in the host kernel (bpftool's tag)."""
    available, why = kernel_available()
    if not available:
        pytest.skip(why)
    code, out, _ = run(capsys, "-j", "prog", "show", "name", "xdp_firewall")
    obj = load_object(FIREWALL)
    spec = obj.programs["xdp_firewall"]
    maps = [KernelMap.create(obj.maps[ref.map_name]) for ref in spec.map_refs]
    try:
        with load_program_spec(spec, {m.spec.name: m for m in maps}) as prog:
            assert json.loads(out)["tag"] == prog.info().tag.hex()
    finally:
        for kernel_map in maps:
            kernel_map.close()


def test_prog_dump_has_source_lines(loaded, capsys):
    code, out, _ = run(capsys, "prog", "dump", "xlated", "name", "xdp_firewall", "linum")
    assert code == 0
    assert "; c->end = (void *)(long)ctx->data_end;" in out and "line_num:36" in out
    assert "    0: ldxw %r2, [%r1+4]" in out
    code, out, _ = run(capsys, "prog", "dump", "xdp_firewall", "--json")
    rows = json.loads(out)
    assert rows[0]["pc"] == 0 and rows[0]["line_num"] == 36 and rows[0]["file"].endswith(
        "parsing.h")


def test_map_update_lookup_dump_delete_with_byte_lists_and_hex(loaded, capsys):
    code, out, err = run(capsys, "map", "update", "blocked_v4", "key", "10", "0", "0", "2",
                         "value", "0x01", "0", "0", "0", "0", "0", "0", "0", "noexist")
    assert code == 0, err
    code, out, _ = run(capsys, "map", "lookup", "name", "blocked_v4", "--key", "0a000002",
                       "-j")
    assert json.loads(out) == {"key": ["0x0a", "0x00", "0x00", "0x02"],
                               "value": ["0x01"] + ["0x00"] * 7,
                               "formatted": {"key": 0x0200000A, "value": 1}}
    code, out, _ = run(capsys, "map", "dump", "blocked_v4", "-p")
    assert json.loads(out) == [{"key": ["0x0a", "0x00", "0x00", "0x02"],
                                "value": ["0x01"] + ["0x00"] * 7,
                                "formatted": {"key": 0x0200000A, "value": 1}}]
    # noexist on an existing key is the kernel's EEXIST: refused, exit 1, one line
    code, out, err = run(capsys, "map", "update", "blocked_v4", "key", "hex", "0a", "00",
                         "00", "02", "value", "hex", "02", "00", "00", "00", "00", "00", "00",
                         "00", "noexist")
    assert code == 1 and "EEXIST" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "map", "delete", "blocked_v4", "key", "hex", "0a", "00", "00",
                       "02")
    assert code == 0
    code, out, err = run(capsys, "map", "lookup", "blocked_v4", "--key", "0a000002")
    assert code == 1 and "ENOENT" in err
    code, out, _ = run(capsys, "map", "dump", "blocked_v4")
    assert "Found 0 elements" in out


def test_map_show_and_freeze(loaded, capsys):
    code, out, _ = run(capsys, "map", "show", "name", "verdicts", "-j")
    shown = json.loads(out)
    assert shown["type"] == "percpu_array" and shown["bytes_key"] == 4
    code, out, _ = run(capsys, "map", "freeze", "id", str(shown["id"]))
    assert code == 0
    code, out, err = run(capsys, "map", "update", "verdicts", "--key", "00000000", "--value",
                         "0000000000000000")
    assert code == 1 and "EPERM" in err


def test_prog_run_data_in_out_repeat_and_pcap(loaded, capsys, tmp_path):
    frame = ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 53, b"x" * 20)))
    (tmp_path / "in.bin").write_bytes(frame)
    code, out, err = run(capsys, "prog", "run", "xdp_firewall", "--data-in",
                         str(tmp_path / "in.bin"), "--data-out", str(tmp_path / "out.bin"),
                         "--repeat", "20", "-j")
    assert code == 0, err
    result = json.loads(out)
    assert result["action"] == "pass" and result["retval"] == 2
    assert result["duration_ns"] > 0 and bytes.fromhex(result["data_out"]) == frame
    assert (tmp_path / "out.bin").read_bytes() == frame
    (tmp_path / "t.pcap").write_bytes(encode_pcap([frame, frame]))
    code, out, _ = run(capsys, "prog", "run", "name", "xdp_firewall", "--pcap", str(tmp_path / "t.pcap"),
                       "-j")
    assert code == 0 and [r["action"] for r in json.loads(out)] == ["pass", "pass"]
    # status counters do not move: the verdict is returned, not acted on
    code, out, _ = run(capsys, "-j", "prog", "show", "xdp_firewall")
    assert json.loads(out)["counters"]["pass"] == 0


@pytest.mark.parametrize(("args", "code", "needle"), [
    (("prog", "run", "xdp_firewall", "--data-in", "/nonexistent"), 2, "cannot read"),
    (("prog", "run", "xdp_firewall"), 2, "give the frame"),
    (("prog", "show", "name", "nope"), 1, "no program 'nope'"),
    (("prog", "dump", "id", "x"), 2, "not a program id"),
    (("map", "lookup", "blocked_v4", "key", "0x100"), 2, "not a byte"),
    (("map", "lookup", "blocked_v4"), 2, "give the key"),
    (("map", "update", "blocked_v4", "key", "1", "2", "3", "4"), 2, "give the value"),
    (("map", "lookup", "blocked_v4", "--key", "zz"), 2, "not hex"),
    (("map", "lookup", "blocked_v4", "--key", "00"), 1, "EINVAL"),
    (("map", "dump", "pinned", "/sys/fs/bpf/x"), 2, "no pinned"),
])
def test_bad_input_is_one_line_with_the_documented_exit_code(loaded, capsys, tmp_path, args,
                                                             code, needle):
    got, out, err = run(capsys, *args)
    assert got == code, err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_prog_run_hostile_frames_get_the_kernels_errno(loaded, capsys, tmp_path):
    (tmp_path / "short.bin").write_bytes(b"\0" * 10)
    code, _, err = run(capsys, "prog", "run", "xdp_firewall", "--data-in",
                       str(tmp_path / "short.bin"))
    assert code == 1 and "EINVAL" in err
    (tmp_path / "big.bin").write_bytes(b"\0" * 4000)
    code, _, err = run(capsys, "prog", "run", "xdp_firewall", "--data-in",
                       str(tmp_path / "big.bin"))
    assert code == 1 and "EINVAL" in err
    (tmp_path / "ok.bin").write_bytes(b"\0" * 60)
    code, _, err = run(capsys, "prog", "run", "xdp_firewall", "--data-in",
                       str(tmp_path / "ok.bin"), "--data-size-out", "10")
    assert code == 1 and "ENOSPC" in err


def test_detach_attach_unload(loaded, capsys):
    assert run(capsys, "prog", "detach", "name", "xdp_firewall")[0] == 0
    code, _, err = run(capsys, "prog", "detach")
    assert code == 1 and "ENOENT" in err
    assert run(capsys, "prog", "attach", "xdp_firewall")[0] == 0
    code, out, _ = run(capsys, "-j", "prog", "show", "xdp_firewall")
    assert json.loads(out)["attached"] == "xdp:hw on A"


def test_the_environment_names_the_device_and_its_absence_is_a_usage_error(device,
                                                                           monkeypatch):
    import os

    monkeypatch.delenv("OFFLOAD_MIGRATE_DEVICE", raising=False)
    env_cli = cli("prog", "show", "-j")
    assert env_cli.returncode == 2 and "OFFLOAD_MIGRATE_DEVICE" in env_cli.stderr
    os.environ["OFFLOAD_MIGRATE_DEVICE"] = str(device.path)
    try:
        result = cli("map", "show", "-j")
    finally:
        del os.environ["OFFLOAD_MIGRATE_DEVICE"]
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_device_list_and_show(loaded, capsys, tmp_path):
    code, out, _ = run(capsys, "device", "list", "-j")
    assert code == 0
    [row] = json.loads(out)
    assert row["name"] == "A" and row["attached"] == "xdp_firewall" and row["maps"] >= 3
    code, out, _ = run(capsys, "device", "list", "--device", str(loaded.path), "--device",
                       str(tmp_path / "nobody.sock"))
    assert code == 1 and "A  profile full" in out and "nobody.sock" in out
    code, out, _ = run(capsys, "-p", "device", "show")
    shown = json.loads(out)
    assert shown["name"] == "A" and shown["programs"][0]["name"] == "xdp_firewall"
    code, out, _ = run(capsys, "device", "show")
    assert code == 0 and "profile      full" in out


def test_map_free_empties_a_device_for_a_restore(tmp_path, capsys, monkeypatch):
    """A map a program uses goes with that program; one nothing uses goes at once; then the
    device is empty and takes a restore (a device with objects refuses one)."""
    daemon = DaemonProcess(tmp_path / "f.sock", "F", "full", "--state-dir", str(tmp_path / "st"))
    try:
        monkeypatch.setenv("OFFLOAD_MIGRATE_DEVICE", str(daemon.path))
        assert run(capsys, "load", FIREWALL, "--attach")[0] == 0
        assert run(capsys, "save", "-o", str(tmp_path / "f.snap"))[0] == 0
        code, out, _ = run(capsys, "map", "free", "blocked_v4", "-j")
        assert code == 0 and json.loads(out)["freed"] is False  # the program uses it
        code, _, err = run(capsys, "map", "free", "name", "blocked_v4")
        assert code == 1 and "ENOENT" in err  # released already: not by name any more
        assert run(capsys, "prog", "detach")[0] == 0
        assert run(capsys, "prog", "unload", "xdp_firewall")[0] == 0
        code, out, _ = run(capsys, "map", "free", "verdicts")
        assert code == 0 and "freed" in out and "released" not in out
        assert run(capsys, "map", "free", "blocked_v6")[0] == 0
        code, out, _ = run(capsys, "-j", "map", "show")
        assert json.loads(out) == []  # blocked_v4 went with the program
        code, out, err = run(capsys, "restore", str(tmp_path / "f.snap"))
        assert code == 0, err
    finally:
        daemon.stop()
