"""``capture`` against a real daemon: the file is a pcap our reader and tcpdump read, and its
counts by kind match the device's counters after known traffic."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

from service import frames as p
from service.client import DeviceClient
from service.fixture_traffic import FRAMES, VIP
from service.pcap import read_pcap

from .conftest import FIXTURES, ROOT
from .conftest import cli_here as cli  # client commands in this process


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def balancer(daemons):
    device = daemons("C", "full")
    assert cli("load", str(FIXTURES / "xdp_lb.o"), "--device", str(device.path),
               "--attach").returncode == 0
    with DeviceClient(str(device.path)) as client:
        client.call("map.update", map="services", key=p.ip4(VIP) + struct.pack("!H", 80)
                    + bytes([p.IPPROTO_TCP, 0]), value=_u32(0) + _u32(1))
        client.call("map.update", map="backends", key=_u32(0),
                    value=p.ip4("10.9.0.1") + bytes([2, 0, 0, 0, 9, 0]) + bytes(2))
    return device


def start_capture(device, *args: str) -> subprocess.Popen[str]:
    """The command in the background, once it says it is capturing."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "capture", "--device", str(device.path), *args],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("capturing"), line + process.stderr.read()
    return process


def device_counts(device) -> tuple[int, int, int]:
    with DeviceClient(str(device.path)) as client:
        status = client.call("status")
    counters = status["programs"][0]["counters"]
    return (status["ports"]["rx_frames"], status["ports"]["tx_to_wire"],
            counters.get("drop", 0) + counters.get("aborted", 0))


def tcpdump_count(path) -> int | None:
    """Records tcpdump reads from ``path`` (None without tcpdump)."""
    if shutil.which("tcpdump") is None:
        return None
    done = subprocess.run(["tcpdump", "-nr", str(path)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return len(done.stdout.splitlines())


TRAFFIC = [FRAMES[name] for name in ("tcp-allowed", "tcp-vip", "runt-tcp", "udp-vip",
                                     "tcp-vip", "arp", "runt-tcp", "icmp")] * 5


def test_count_stops_the_capture_and_the_file_matches_the_counters(daemons, tmp_path):
    device = balancer(daemons)
    before = device_counts(device)
    with DeviceClient(str(device.path)) as client:  # what the program does with TRAFFIC
        actions = client.call("inject", frames=TRAFFIC)["actions"]
    rx, tx, drop = (a - b for a, b in zip(device_counts(device), before))
    assert (rx, tx, drop) == (len(TRAFFIC), actions.count("tx"), actions.count("drop"))
    assert tx == 10 and drop == 10
    outputs = {what: tmp_path / f"{what}.pcap" for what in ("rx", "tx", "drop", "all")}
    expected = {"rx": rx, "tx": tx, "drop": drop, "all": rx + tx}
    captures = {what: start_capture(device, "-o", str(path), "--what", what, "--count",
                                    str(expected[what]), "--json")
                for what, path in outputs.items()}
    with DeviceClient(str(device.path)) as client:
        client.call("inject", frames=TRAFFIC + TRAFFIC)  # more than any count takes
    for what, process in captures.items():
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        frames = read_pcap(outputs[what])
        assert len(frames) == expected[what], what
        count = tcpdump_count(outputs[what])
        assert count in (None, expected[what]), (what, count)
        assert f'"frames": {expected[what]}' in out
    assert read_pcap(outputs["rx"]) == TRAFFIC
    assert read_pcap(outputs["drop"]) == [FRAMES["runt-tcp"]] * drop
    assert all(frame[12:14] == b"\x08\x00" for frame in read_pcap(outputs["tx"]))


def test_ctrl_c_writes_what_was_captured_and_duration_ends_a_capture(daemons, tmp_path):
    device = balancer(daemons)
    output = tmp_path / "drops.pcap"
    process = start_capture(device, "--output", str(output), "--what", "drop")
    with DeviceClient(str(device.path)) as client:
        client.call("inject", frames=TRAFFIC)
    assert not output.exists()  # the file takes its name when the capture ends
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "10 frames to" in out and "drop 10" in out
    assert read_pcap(output) == [FRAMES["runt-tcp"]] * 10
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    timed = cli("capture", "--device", str(device.path), "-o", str(tmp_path / "none.pcap"),
                "--duration", "0.3", "--what", "tx")
    assert timed.returncode == 0 and "0 frames" in timed.stdout
    assert read_pcap(tmp_path / "none.pcap") == []
    assert tcpdump_count(tmp_path / "none.pcap") in (None, 0)


def test_a_device_that_goes_away_ends_the_capture_with_what_was_read(daemons, tmp_path):
    """The daemon killed mid-capture: the frames read before are written, exit 1, and the
    message says why (the file is not thrown away with the connection)."""
    device = balancer(daemons)
    output = tmp_path / "drops.pcap"
    process = start_capture(device, "--output", str(output), "--what", "drop", "--json")
    with DeviceClient(str(device.path)) as client:
        client.call("inject", frames=TRAFFIC)
    time.sleep(1.0)  # the command reads every 50 ms: the ten drops are read by now
    device.process.kill()
    out, err = process.communicate(timeout=30)
    err = " ".join(err.split())
    assert process.returncode == 1, err
    assert "the capture ended early, the device went away" in err and "Traceback" not in err
    assert "10 frames read before are in" in err
    assert read_pcap(output) == [FRAMES["runt-tcp"]] * 10
    assert '"frames": 10' in out and '"ended": "the device went away' in out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_usage_errors_exit_2(tmp_path):
    for args in (("--count", "0"), ("--duration", "-1"), ("--what", "everything")):
        done = cli("capture", "--device", str(tmp_path / "x.sock"), "-o",
                   str(tmp_path / "x.pcap"), *args)
        assert done.returncode == 2, done.stderr


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_reads_the_capture(daemons, tmp_path):
    device = balancer(daemons)
    output = tmp_path / "all.pcap"
    process = start_capture(device, "-o", str(output), "--what", "all", "--count", "12")
    with DeviceClient(str(device.path)) as client:
        client.call("inject", frames=TRAFFIC)
    assert process.wait(timeout=30) == 0
    done = subprocess.run(["tcpdump", "-nr", str(output)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 12
    # 12 records: the 9 frames arriving first, and the 2 VIP frames of the 3 the
    # balancer sent back out, each rewritten to the backend, right after its arrival
    assert sum(f"> {VIP}.80" in line for line in lines) == 3
    assert sum("> 10.9.0.1.80" in line for line in lines) == 2
    assert "truncated-ip" in lines[3] and "ARP, Request" in lines[7]
