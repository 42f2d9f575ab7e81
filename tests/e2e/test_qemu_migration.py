"""A QEMU guest live-migrates to another device together with its offloaded XDP state.

Guest A on device A pings guest B on device B1 (the devices joined by the UDP tunnel, B1
running the offloaded port filter). ``vm-migrate`` moves B to a second QEMU whose NIC is on
device B2, and B1's programs and maps to B2; A's tunnel learns B2's address from the RARP B2
sends after the switch (``--wire ...,learn``). B keeps running, the pings keep being answered
but for a few, and B2's counters carry on from B1's. A destination daemon killed in the middle
leaves the source VM and device running.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from service.client import DeviceClient
from service.guest import Guest, guest_image
from service.qmp import QmpClient
from tests.service.conftest import ROOT, DaemonProcess

FIXTURES = ROOT / "fixtures" / "xdp"
IMAGE = guest_image()
pytestmark = pytest.mark.skipif(isinstance(IMAGE, str), reason=str(IMAGE))
BLOCKED_PORT = 6000
ICMP, UDP = 1, 17
B_MAC = "52:54:00:00:00:0b"


def free_port(kind: int) -> int:
    probe = socket.socket(socket.AF_INET, kind)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class Side:
    def __init__(self, name: str, workdir: Path, wire: str, profile: str = "full") -> None:
        self.vhost = workdir / f"{name}.vhost"
        self.daemon = DaemonProcess(workdir / f"{name}.sock", name, profile, "--state-dir",
                                    str(workdir / f"{name}.st"), "--vhost-user",
                                    str(self.vhost), "--wire", wire)
        self.path = self.daemon.path
        self.client = DeviceClient(str(self.path))

    def close(self) -> None:
        self.client.close()
        self.daemon.stop()


def entry(side: Side, map_name: str, key: bytes) -> int:
    items = side.client.call("map.items", map=map_name)["items"]
    return next((struct.unpack("<Q", v)[0] for k, v in items if k == key), 0)


def icmp_seen(side: Side) -> int:
    return entry(side, "frames_by_proto", struct.pack("<I", ICMP))


def blocked(side: Side) -> int:
    return entry(side, "blocked_ports", struct.pack("<H", BLOCKED_PORT))


def probe_blocked(guest: Guest) -> None:
    guest.run(f"traceroute -n -q 1 -w 1 -m 1 -p {BLOCKED_PORT - 1} 10.0.0.2 >/dev/null 2>&1;"
              " true")


def uptime(guest: Guest) -> float:
    return float(guest.run("cat /proc/uptime").split()[0])


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    pa, pb1, pb2 = (free_port(socket.SOCK_DGRAM) for _ in range(3))
    sides: list[Side] = []
    guests: list[Guest] = []
    try:
        a = Side("a", tmp_path, f"udp:127.0.0.1:{pa}=127.0.0.1:{pb1},learn")
        sides.append(a)
        b1 = Side("b1", tmp_path, f"udp:127.0.0.1:{pb1}=127.0.0.1:{pa}")
        sides.append(b1)
        b2 = Side("b2", tmp_path, f"udp:127.0.0.1:{pb2}=127.0.0.1:{pa}")
        sides.append(b2)
        b1.client.call("load", object=(FIXTURES / "xdp_port_filter.o").read_bytes(),
                       name="xdp_port_filter", program="xdp_port_filter", attach=True)
        b1.client.call("map.update", map="blocked_ports",
                       key=struct.pack("<H", BLOCKED_PORT), value=bytes(8))
        guest_a = Guest("a", IMAGE, str(a.vhost), mac="52:54:00:00:00:0a", ip="10.0.0.1/24",
                        workdir=tmp_path)
        guests.append(guest_a)
        guest_b = Guest("b", IMAGE, str(b1.vhost), mac=B_MAC, ip="10.0.0.2/24",
                        workdir=tmp_path, qmp=tmp_path / "b.qmp")
        guests.append(guest_b)
        boots = [threading.Thread(target=g.boot) for g in guests]
        for t in boots:
            t.start()
        for t in boots:
            t.join()
        for g in guests:
            g.wait_for("GUEST-READY", 1)

        def target() -> tuple[Guest, str]:
            """A destination QEMU waiting for B, its NIC on B2."""
            uri = f"tcp:127.0.0.1:{free_port(socket.SOCK_STREAM)}"
            (tmp_path / "b2.qmp").unlink(missing_ok=True)
            guest = Guest(f"b-moved{len(guests)}", IMAGE, str(b2.vhost), mac=B_MAC,
                          ip="10.0.0.2/24", workdir=tmp_path, qmp=tmp_path / "b2.qmp",
                          incoming=uri)
            guests.append(guest)
            return guest, uri

        yield a, b1, b2, guest_a, guest_b, target, tmp_path
    finally:
        for g in guests:
            g.close()
        for s in sides:
            s.close()


def vm_migrate(b1: Side, b2: Side, uri: str, tmp_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "vm-migrate", "--qmp-from", str(tmp_path / "b.qmp"),
         "--qmp-to", str(tmp_path / "b2.qmp"), "--from", str(b1.path), "--to", str(b2.path),
         "--uri", uri, "--timeout", "120", "--json"],
        cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ping_summary(text: str) -> tuple[int, int]:
    found = re.search(r"(\d+) packets transmitted, (\d+) packets received", text)
    assert found, text
    return int(found[1]), int(found[2])


def test_the_guest_and_its_offloaded_state_move_together(setup):
    """A first attempt whose destination QEMU dies rolls back; the second moves B."""
    a, b1, b2, guest_a, guest_b, target, tmp_path = setup
    assert ping_summary(guest_a.run("ping -c 2 -W 3 10.0.0.2")) == (2, 2)
    fail_midway(b1, b2, guest_a, guest_b, target, tmp_path, "destination QEMU")
    deadline = time.monotonic() + 10  # the destination device removed what it restored
    while b2.client.call("status")["maps"] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = b2.client.call("status")
    assert after["maps"] == [] and after["programs"] == []

    target_guest, uri = target()
    probe_blocked(guest_a)
    icmp_before, blocked_before = icmp_seen(b1), blocked(b1)
    assert blocked_before == 1 and icmp_before >= 2
    alive_before = uptime(guest_b)

    guest_a.run("ping -c 80 -i 0.1 -W 1 10.0.0.2 > /tmp/ping.out 2>&1 & true")
    time.sleep(1)
    with QmpClient(str(tmp_path / "b.qmp")) as qmp:  # as QEMU has it by default again
        qmp.execute("migrate-set-parameters", **{"max-bandwidth": 128 << 20})
    out, err = vm_migrate(b1, b2, uri, tmp_path).communicate(timeout=150)
    assert err.strip() == "" or "Traceback" not in err, err
    report = json.loads(out)
    print("vm-migrate report:", json.dumps({k: v for k, v in report.items() if k != "device"}))
    guest_a.run("wait", timeout=30)
    sent, received = ping_summary(guest_a.run("cat /tmp/ping.out"))

    assert report["state"] == "completed" and report["plan"] == "COMPATIBLE"
    assert 0 < report["offload_downtime"] < report["qemu_downtime"] <= report["qemu_total"]
    assert sent == 80 and sent - received <= 5, (sent, received)
    # B runs on in the destination QEMU: the same boot, later
    assert uptime(target_guest) > alive_before
    # B1 let go; B2 counted on from B1's figures: every echo request A's answered ones
    # prove, at most every one A sent
    assert b1.client.call("status")["programs"] == []
    icmp_after = icmp_seen(b2)
    assert received <= icmp_after - icmp_before <= sent + 2
    # the maps came over: the blocked port is still blocked, its counter carries on
    probe_blocked(guest_a)
    assert blocked(b2) == blocked_before + 1
    (program,) = b2.client.call("status")["programs"]
    assert program["counters"]["drop"] == 2
    assert ping_summary(guest_a.run("ping -c 2 -W 3 10.0.0.2")) == (2, 2)


def fail_midway(b1: Side, b2: Side, guest_a: Guest, guest_b: Guest, target, tmp_path: Path,
                victim: str) -> None:
    """Start B's migration, kill ``victim`` while QEMU copies RAM: both sides roll back, the
    source VM and device run on."""
    target_guest, uri = target()
    alive_before = uptime(guest_b)
    icmp_before = icmp_seen(b1)
    with QmpClient(str(tmp_path / "b.qmp")) as qmp:  # a slow RAM copy: time to strike
        qmp.execute("migrate-set-parameters", **{"max-bandwidth": 8 << 20})
    migration = vm_migrate(b1, b2, uri, tmp_path)
    deadline = time.monotonic() + 60
    while (b1.client.call("status")["migration"] or {}).get("phase") != "precopy":
        assert time.monotonic() < deadline and migration.poll() is None
        time.sleep(0.02)
    time.sleep(0.3)  # QEMU is copying RAM now
    if victim == "destination daemon":
        b2.daemon.process.kill()
    else:
        target_guest.process.kill()
    out, err = migration.communicate(timeout=120)
    err = " ".join(err.split())  # the console wraps long lines

    assert migration.returncode == 1, (out, err)
    assert "Rolled back" in err and "Traceback" not in err, err
    assert "the source VM runs on" in err
    # the source VM and device run on: same boot, same program, counting on
    assert uptime(guest_b) > alive_before
    status = b1.client.call("status")
    assert status["programs"][0]["attach"] and status["migration"]["state"] != "completed"
    assert ping_summary(guest_a.run("ping -c 3 -W 3 10.0.0.2")) == (3, 3)
    assert icmp_seen(b1) == icmp_before + 3


def test_a_destination_daemon_killed_mid_migration_leaves_the_source_running(setup):
    a, b1, b2, guest_a, guest_b, target, tmp_path = setup
    assert ping_summary(guest_a.run("ping -c 2 -W 3 10.0.0.2")) == (2, 2)
    fail_midway(b1, b2, guest_a, guest_b, target, tmp_path, "destination daemon")
