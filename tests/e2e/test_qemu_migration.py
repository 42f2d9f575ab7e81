"""A QEMU guest live-migrates to another device together with its offloaded XDP state.

Guest A on device A pings guest B on device B1 (the devices joined by the UDP tunnel, B1
running the ISA v4 build of the offloaded port filter). ``vm-migrate`` moves B to a second
QEMU whose NIC is on device B2, a smartnic (ISA v3), and B1's programs and maps to B2, which
runs the filter lowered; A's tunnel learns B2's address from the RARP B2 sends after the
switch (``--wire ...,learn``). B keeps running, the pings keep being answered but for a few,
B2's counters carry on from B1's and the blocked port stays blocked.

Before that, four attempts fail and roll back, each leaving the source VM and device running
with their state and the destination device empty: the destination QEMU killed while RAM
moves, the destination daemon killed, Ctrl-C to ``vm-migrate``, and the destination QEMU
killed after the device's commit, before QEMU completes. The two guests boot once for the
module; the tests run in order (one xdist group) and each starts from B running on B1.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from service.client import DeviceClient
from service.guest import Guest, guest_image
from service.qmp import QmpClient
from service.vm_migration import VmMigration, VmMigrationFailed
from tests.e2e.guest_required import guest_marks, require
from tests.service.conftest import ROOT, DaemonProcess

FIXTURES = ROOT / "fixtures" / "xdp"
IMAGE = guest_image()
pytestmark = guest_marks(IMAGE, "qemu_migration")
BLOCKED_PORT = 6000
ICMP, UDP = 1, 17
B_MAC = "52:54:00:00:00:0b"
ENV = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}


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


@dataclass
class Net:
    workdir: Path
    a: Side
    b1: Side
    b2: Side
    guest_a: Guest
    guest_b: Guest
    pb: int  # B's UDP port towards A (a doomed destination device's wire)
    pa: int
    guests: list[Guest] = field(default_factory=list)

    def target(self, side: Side) -> tuple[Guest, str]:
        """A destination QEMU waiting for B, its NIC on ``side``."""
        uri = f"tcp:127.0.0.1:{free_port(socket.SOCK_STREAM)}"
        (self.workdir / "b2.qmp").unlink(missing_ok=True)
        guest = Guest(f"b-moved{len(self.guests)}", IMAGE, str(side.vhost), mac=B_MAC,
                      ip="10.0.0.2/24", workdir=self.workdir, qmp=self.workdir / "b2.qmp",
                      incoming=uri)
        self.guests.append(guest)
        return guest, uri

    def bandwidth(self, limit: int) -> None:
        with QmpClient(str(self.workdir / "b.qmp")) as qmp:
            qmp.execute("migrate-set-parameters", **{"max-bandwidth": limit})


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    require(IMAGE)
    workdir = tmp_path_factory.mktemp("vm-migrate")
    pa, pb1, pb2, pb3 = (free_port(socket.SOCK_DGRAM) for _ in range(4))
    sides: list[Side] = []
    guests: list[Guest] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_STATE_HOME", str(workdir / "state-home"))
        try:
            a = Side("a", workdir, f"udp:127.0.0.1:{pa}=127.0.0.1:{pb1},learn")
            sides.append(a)
            b1 = Side("b1", workdir, f"udp:127.0.0.1:{pb1}=127.0.0.1:{pa}")
            sides.append(b1)
            b2 = Side("b2", workdir, f"udp:127.0.0.1:{pb2}=127.0.0.1:{pa}", "smartnic")
            sides.append(b2)
            b1.client.call("load", object=(FIXTURES / "xdp_port_filter_v4.o").read_bytes(),
                           name="xdp_port_filter", program="xdp_port_filter", attach=True)
            b1.client.call("map.update", map="blocked_ports",
                           key=struct.pack("<H", BLOCKED_PORT), value=bytes(8))
            guest_a = Guest("a", IMAGE, str(a.vhost), mac="52:54:00:00:00:0a",
                            ip="10.0.0.1/24", workdir=workdir)
            guests.append(guest_a)
            guest_b = Guest("b", IMAGE, str(b1.vhost), mac=B_MAC, ip="10.0.0.2/24",
                            workdir=workdir, qmp=workdir / "b.qmp")
            guests.append(guest_b)
            boots = [threading.Thread(target=g.boot) for g in guests]
            for t in boots:
                t.start()
            for t in boots:
                t.join()
            for g in guests:
                g.wait_for("GUEST-READY", 1)
            net = Net(workdir, a, b1, b2, guest_a, guest_b, pb3, pa, guests)
            assert ping_summary(guest_a.run("ping -c 2 -i 0.2 -W 3 10.0.0.2")) == (2, 2)
            yield net
        finally:
            for g in guests:
                g.close()
            for s in sides:
                s.close()


def entry(side: Side, map_name: str, key: bytes) -> int:
    items = side.client.call("map.items", map=map_name)["items"]
    return next((struct.unpack("<Q", v)[0] for k, v in items if k == key), 0)


def icmp_seen(side: Side) -> int:
    return entry(side, "frames_by_proto", struct.pack("<I", ICMP))


def blocked(side: Side) -> int:
    return entry(side, "blocked_ports", struct.pack("<H", BLOCKED_PORT))


def probe_blocked(guest: Guest, side: Side) -> None:
    """One datagram to B's blocked port (traceroute's probe goes to its base port plus one),
    then until ``side`` counted it: traceroute itself would wait a second for the answer a
    dropped datagram never gets."""
    before = blocked(side)
    guest.run(f"(traceroute -n -q 1 -w 1 -m 1 -p {BLOCKED_PORT - 1} 10.0.0.2 >/dev/null 2>&1 &)")
    deadline = time.monotonic() + 10
    while blocked(side) == before and time.monotonic() < deadline:
        time.sleep(0.02)


def uptime(guest: Guest) -> float:
    return float(guest.run("cat /proc/uptime").split()[0])


def ping_summary(text: str) -> tuple[int, int]:
    found = re.search(r"(\d+) packets transmitted, (\d+) packets received", text)
    assert found, text
    return int(found[1]), int(found[2])


def vm_migrate(net: Net, to: Side, uri: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "vm-migrate", "--qmp-from",
         str(net.workdir / "b.qmp"), "--qmp-to", str(net.workdir / "b2.qmp"), "--from",
         str(net.b1.path), "--to", str(to.path), "--uri", uri, "--timeout", "120", *extra],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_precopy(net: Net, migration: subprocess.Popen) -> None:
    """Until the destination device restored the full copy and QEMU has begun moving RAM."""
    deadline = time.monotonic() + 90
    while True:  # this migration's picture, not the last one's (it may end in precopy too)
        picture = net.b1.client.call("status")["migration"] or {}
        if picture.get("state") == "running" and picture.get("phase") == "precopy":
            break
        assert time.monotonic() < deadline and migration.poll() is None, picture
        time.sleep(0.02)
    time.sleep(0.3)  # vm-migrate sends QEMU's migrate right after


def empty(side: Side) -> None:
    """The destination device removed what it restored."""
    deadline = time.monotonic() + 20
    while side.client.call("status")["maps"] and time.monotonic() < deadline:
        time.sleep(0.1)
    after = side.client.call("status")
    assert after["maps"] == [] and after["programs"] == []


def source_runs_on(net: Net, alive_before: float, icmp_before: int,
                   blocked_before: int) -> None:
    """The source VM and device run on: the same boot, the same (v4) program attached and
    counting, the blocked port still blocked."""
    assert uptime(net.guest_b) > alive_before
    (program,) = net.b1.client.call("status")["programs"]
    assert program["attach"] and program["isa"] == 4
    assert ping_summary(net.guest_a.run("ping -c 3 -i 0.2 -W 3 10.0.0.2")) == (3, 3)
    assert icmp_seen(net.b1) == icmp_before + 3
    probe_blocked(net.guest_a, net.b1)
    assert blocked(net.b1) == blocked_before + 1


def fail_midway(net: Net, victim: str) -> str:
    """Start B's migration, strike while QEMU copies RAM (kill the destination QEMU or
    daemon, or Ctrl-C ``vm-migrate``): both sides roll back. ``vm-migrate``'s stderr."""
    doomed = None
    if victim == "destination daemon":  # one of its own: B2 serves the later tests
        doomed = Side("doomed", net.workdir, f"udp:127.0.0.1:{net.pb}=127.0.0.1:{net.pa}")
    to = doomed or net.b2
    try:
        target_guest, uri = net.target(to)
        alive_before, icmp_before, blocked_before = (uptime(net.guest_b), icmp_seen(net.b1),
                                                     blocked(net.b1))
        net.bandwidth(8 << 20)  # a slow RAM copy: time to strike
        migration = vm_migrate(net, to, uri)
        wait_for_precopy(net, migration)
        if doomed is not None:
            doomed.daemon.process.kill()
        elif victim == "Ctrl-C":
            migration.send_signal(signal.SIGINT)
        else:
            target_guest.process.kill()
        out, err = migration.communicate(timeout=120)
        err = " ".join(err.split())  # the console wraps long lines

        assert migration.returncode == 1, (out, err)
        assert "Rolled back" in err and "Traceback" not in err, err
        assert "the source VM runs on" in err
        # cancelled by vm-migrate, or failed on its own when its peer vanished
        assert net.b1.client.call("status")["migration"]["state"] in ("cancelled", "failed")
        if doomed is None:
            empty(net.b2)
        source_runs_on(net, alive_before, icmp_before, blocked_before)
        return err
    finally:
        if doomed is not None:
            doomed.close()
        net.bandwidth(128 << 20)  # as QEMU has it by default


def test_a_destination_qemu_killed_while_ram_moves_rolls_back(net):
    fail_midway(net, "destination QEMU")


def test_a_destination_daemon_killed_mid_migration_leaves_the_source_running(net):
    fail_midway(net, "destination daemon")


def test_ctrl_c_rolls_back_both_sides(net):
    err = fail_midway(net, "Ctrl-C")
    assert "interrupted" in err and "QEMU's migration cancelled" in err
    with QmpClient(str(net.workdir / "b.qmp")) as qmp:
        assert qmp.execute("query-migrate")["status"] == "cancelled"
        assert qmp.execute("query-status")["status"] == "running"


def test_a_switchover_failing_after_the_device_commit_keeps_the_source(net):
    """The destination QEMU dies after the device's final round committed, before QEMU's
    switchover: QEMU's migration fails and the source VM runs on, so the source device
    resumes with its own state (the v4 program, the maps as at the cut) and the destination
    device removes its committed copy."""
    target_guest, uri = net.target(net.b2)
    alive_before, icmp_before, blocked_before = (uptime(net.guest_b), icmp_seen(net.b1),
                                                 blocked(net.b1))
    committed: list[dict] = []

    def step(name: str) -> None:
        if name == "QEMU completes":  # the device committed; QEMU waits at pre-switchover
            committed.append(net.b2.client.call("status"))
            target_guest.process.kill()
            target_guest.process.wait(timeout=10)

    migration = VmMigration(str(net.workdir / "b.qmp"), str(net.workdir / "b2.qmp"),
                            str(net.b1.path), str(net.b2.path), uri, timeout=120,
                            progress=step)
    with pytest.raises(VmMigrationFailed) as failed:
        migration.run()
    message = " ".join(str(failed.value).split())
    assert committed and committed[0]["programs"][0]["attach"]  # B2 ran it when QEMU failed
    assert "the source device resumed with its state" in message, message
    assert "the destination device removed its copy" in message, message
    assert "the source VM runs on" in message, message
    assert net.b1.client.call("status")["migration"]["state"] == "cancelled"
    empty(net.b2)
    assert net.b2.client.call("status")["migration"]["state"] == "undone"
    source_runs_on(net, alive_before, icmp_before, blocked_before)


def test_the_guest_and_its_offloaded_state_move_onto_a_smaller_device(net):
    """B moves onto B2, a smartnic: its plan lowers the v4 filter to v3; traffic from A goes
    on, the counters carry on, the blocked port stays blocked."""
    b1, b2, guest_a = net.b1, net.b2, net.guest_a
    target_guest, uri = net.target(b2)
    probe_blocked(guest_a, b1)
    icmp_before, blocked_before = icmp_seen(b1), blocked(b1)
    assert blocked_before >= 1 and icmp_before >= 2
    alive_before = uptime(net.guest_b)

    # pings every 100 ms from a second before the migration to half a second after it
    guest_a.run("ping -i 0.1 -W 1 10.0.0.2 > /tmp/ping.out 2>&1 & echo $! > /tmp/ping.pid")
    time.sleep(1)
    out, err = vm_migrate(net, b2, uri, "--json").communicate(timeout=150)
    assert "Traceback" not in err, err
    report = json.loads(out)
    print("vm-migrate report:", json.dumps({k: v for k, v in report.items() if k != "device"}))
    time.sleep(0.5)
    guest_a.run("kill -INT $(cat /tmp/ping.pid); wait", timeout=30)
    sent, received = ping_summary(guest_a.run("cat /tmp/ping.out"))

    assert report["state"] == "completed" and report["plan"] == "REWRITABLE"
    assert 0 < report["offload_downtime"] < report["qemu_downtime"] <= report["qemu_total"]
    print("pings sent, received:", sent, received)
    assert sent >= 15 and sent - received <= 5, (sent, received)
    # B runs on in the destination QEMU: the same boot, later
    assert uptime(target_guest) > alive_before
    # B1 let go; B2 runs the program lowered to its ISA (prog show -j says so)
    assert b1.client.call("status")["programs"] == []
    shown = subprocess.run([sys.executable, "-m", "cli.main", "prog", "show", "-j",
                            "--device", str(b2.path)], cwd=ROOT, env=ENV,
                           capture_output=True, text=True, check=True)
    (program,) = json.loads(shown.stdout)
    assert program["name"] == "xdp_port_filter" and program["attached"]
    assert program["isa"] == 3 and b2.client.call("status")["isa_version"] == 3
    dumped = b2.client.call("prog.dump", program="xdp_port_filter")["insns"]
    assert not any("bswap" in insn["text"] for insn in dumped)  # v4's byte swaps lowered
    # B2 counted on from B1's figures: every echo request A's answered ones prove, at most
    # every one A sent
    icmp_after = icmp_seen(b2)
    assert received <= icmp_after - icmp_before <= sent + 2
    # the maps came over: the blocked port is still blocked, its counter carries on
    probe_blocked(guest_a, b2)
    assert blocked(b2) == blocked_before + 1
    assert program["counters"]["drop"] == blocked_before  # every drop a blocked datagram
    assert b2.client.call("status")["programs"][0]["counters"]["drop"] == \
        program["counters"]["drop"] + 1
    assert ping_summary(guest_a.run("ping -c 2 -i 0.2 -W 3 10.0.0.2")) == (2, 2)
