"""Real QEMU guests behind device daemons (``device serve --vhost-user ... --wire udp:...``),
the devices joined by a UDP tunnel; the offload goes through the daemons' control sockets.
Guest A is on one device; guests B and C are two ports of the other (ifindex 1 and 2).

With an offloaded port filter on B's device: pings cross, UDP to an open port reaches B (which
answers port unreachable), UDP to a blocked port never reaches B, and B's map counters equal
what A sent. With the steering program instead, frames from A for C's address are redirected
through a devmap from the wire to C's port: C answers, B sees none of them, and the program's,
the maps' and the port's counters agree; once C's QEMU is gone, frames for it are redirect
errors and B is still served. The guests boot once for the module."""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from service.client import DeviceClient
from service.guest import Guest, guest_image
from tests.e2e.guest_required import guest_marks, require
from tests.service.conftest import DaemonProcess

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xdp"
IMAGE = guest_image()
# one worker runs the module's tests, so its guests boot once
pytestmark = guest_marks(IMAGE, "qemu_vhost_user")
OPEN_PORT, BLOCKED_PORT = 5000, 6000
ICMP, UDP = 1, 17


def snmp(guest: Guest) -> dict[str, dict[str, int]]:
    """The guest's /proc/net/snmp counters by protocol and name."""
    lines = [line.split() for line in guest.run("cat /proc/net/snmp").splitlines()
             if ":" in line]
    out: dict[str, dict[str, int]] = {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names[0] == values[0] and values[1].lstrip("-").isdigit():
            out[names[0].rstrip(":")] = dict(zip(names[1:], map(int, values[1:])))
    return out


def free_udp_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class Side:
    """A device daemon (``device serve``) with its guest over vhost-user and its wire a UDP
    tunnel, and a control connection to it."""

    def __init__(self, name: str, workdir: Path, local: int, remote: int,
                 *extra: str) -> None:
        self.vhost = workdir / f"{name}.vhost"
        self.daemon = DaemonProcess(
            workdir / f"{name}.sock", name, "full", "--state-dir", str(workdir / f"{name}.st"),
            "--vhost-user", str(self.vhost), "--wire",
            f"udp:127.0.0.1:{local}=127.0.0.1:{remote}", *extra)
        self.client = DeviceClient(str(self.daemon.path))

    def close(self) -> None:
        self.client.close()
        self.daemon.stop()


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """Device a with guest A; device b with guest B on its port 1 and C on port 2."""
    require(IMAGE)
    tmp_path = tmp_path_factory.mktemp("vhost-user")
    port_a, port_b = free_udp_port(), free_udp_port()
    vhost_c = tmp_path / "c.vhost"
    a = Side("a", tmp_path, port_a, port_b)
    b = Side("b", tmp_path, port_b, port_a, "--port", f"c:vhost-user={vhost_c},ifindex=2")
    guests = [Guest("a", IMAGE, str(a.vhost), mac="52:54:00:00:00:0a", ip="10.0.0.1/24",
                    workdir=tmp_path),
              Guest("b", IMAGE, str(b.vhost), mac="52:54:00:00:00:0b", ip="10.0.0.2/24",
                    workdir=tmp_path),
              Guest("c", IMAGE, str(vhost_c), mac="52:54:00:00:00:0c", ip="10.0.0.3/24",
                    workdir=tmp_path)]
    try:
        boots = [threading.Thread(target=g.boot) for g in guests]
        for t in boots:
            t.start()
        for t in boots:
            t.join()
        for g in guests:  # a boot that failed raises here with the console's tail
            g.wait_for("GUEST-READY", 1)
        yield a, b, guests
    finally:
        for g in guests:
            g.close()
        a.close()
        b.close()


def udp_probe(port: int) -> str:
    """One UDP datagram to B's ``port`` (traceroute's probe goes to its base port plus one),
    waiting a second for B's port-unreachable answer."""
    return f"traceroute -n -q 1 -w 1 -m 1 -p {port - 1} 10.0.0.2 2>&1; true"


def entry(side: Side, map_name: str, key: bytes) -> int:
    items = side.client.call("map.items", map=map_name)["items"]
    return next(struct.unpack("<Q", v)[0] for k, v in items if k == key)


def counter(side: Side, proto: int) -> int:
    return entry(side, "frames_by_proto", struct.pack("<I", proto))


def attach(side: Side, name: str) -> None:
    side.client.call("load", object=(FIXTURES / f"{name}.o").read_bytes(), name=name,
                     program=name, attach=True)


def test_guests_talk_through_the_offloaded_filter(network):
    a, b, (guest_a, guest_b, _) = network
    attach(b, "xdp_port_filter")
    b.client.call("map.update", map="blocked_ports", key=struct.pack("<H", BLOCKED_PORT),
                  value=bytes(8))
    a_before, b_before = snmp(guest_a), snmp(guest_b)
    out = guest_a.run("ping -c 3 -i 0.2 -W 3 10.0.0.2")
    assert "3 packets transmitted, 3 packets received" in out

    assert "1  10.0.0.2" in guest_a.run(udp_probe(OPEN_PORT))  # B answered
    b_open = snmp(guest_b)
    assert b_open["Udp"]["NoPorts"] > b_before["Udp"]["NoPorts"]  # the datagram reached B
    assert "1  *" in guest_a.run(udp_probe(BLOCKED_PORT))  # dropped before B saw it
    a_after, b_after = snmp(guest_a), snmp(guest_b)

    # B never saw a datagram to the blocked port: nothing new since the open-port attempt
    assert b_after["Udp"]["NoPorts"] == b_open["Udp"]["NoPorts"]
    assert b_after["Udp"]["InDatagrams"] == b_before["Udp"]["InDatagrams"]
    sent_udp = a_after["Udp"]["OutDatagrams"] - a_before["Udp"]["OutDatagrams"]
    to_blocked = sent_udp - (b_open["Udp"]["NoPorts"] - b_before["Udp"]["NoPorts"])
    assert sent_udp == 2 and to_blocked == 1
    assert entry(b, "blocked_ports", struct.pack("<H", BLOCKED_PORT)) == to_blocked
    assert counter(b, UDP) == sent_udp
    assert counter(b, ICMP) == a_after["Icmp"]["OutMsgs"] - a_before["Icmp"]["OutMsgs"]
    status = b.client.call("status")
    (program,) = (p for p in status["programs"] if p["attach"])
    assert program["counters"]["drop"] == to_blocked
    assert status["ports"]["rx_to_guest"] >= 3 and status["ports"]["tx_from_guest"] >= 3


def u64(side: Side, map_name: str, key: int) -> int:
    return entry(side, map_name, struct.pack("<I", key))


def port_c(side: Side) -> dict:
    return next(p for p in side.client.call("status")["interfaces"] if p["ifindex"] == 2)


def test_the_program_steers_frames_for_c_to_cs_port(network):
    """Runs last: it ends with C's QEMU killed."""
    a, b, (guest_a, guest_b, guest_c) = network
    attach(b, "xdp_steer")
    b.client.call("map.update", map="dest_slots", key=socket.inet_aton("10.0.0.3"),
                  value=struct.pack("<I", 0))
    b.client.call("map.update", map="egress_ports", key=struct.pack("<I", 0),
                  value=struct.pack("<I", 2))
    b_before, c_before = snmp(guest_b), snmp(guest_c)
    assert port_c(b)["connected"]
    out = guest_a.run("ping -c 3 -i 0.2 -W 3 10.0.0.3")
    assert "3 packets transmitted, 3 packets received" in out
    b_after, c_after = snmp(guest_b), snmp(guest_c)
    assert c_after["Icmp"]["InEchos"] - c_before["Icmp"]["InEchos"] == 3
    assert b_after["Ip"]["InReceives"] == b_before["Ip"]["InReceives"]  # B saw none of it

    redirected = u64(b, "steer_stats", 1)
    status = b.client.call("status")
    (program,) = (p for p in status["programs"] if p["attach"])
    port = port_c(b)
    assert redirected >= 4  # A's ARP request for C and its three echo requests
    assert program["counters"]["redirect"] == redirected == port["counters"]["redirected_in"]
    assert port["counters"]["rx_to_guest"] == redirected
    assert port["counters"]["tx_from_guest"] >= 4  # C's ARP reply and echo replies
    assert status["ports"]["redirect_errors"] == 0
    assert "1 packets received" in guest_a.run("ping -c 1 -W 3 10.0.0.2")  # B: passed

    guest_c.close()  # QEMU killed: the port goes down, its devmap entry stays
    deadline = time.monotonic() + 30
    while port_c(b)["connected"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not port_c(b)["connected"]
    guest_a.run("ping -c 2 -i 0.2 -W 1 10.0.0.3; true")
    status = b.client.call("status")
    assert status["ports"]["redirect_errors"] >= 2
    assert u64(b, "steer_stats", 1) - redirected == status["ports"]["redirect_errors"]
    assert port_c(b)["counters"]["rx_to_guest"] == redirected  # nothing more reached C
    assert "1 packets received" in guest_a.run("ping -c 1 -W 3 10.0.0.2")  # b still serves
