"""Two real QEMU guests, each behind a device of this project over vhost-user, the devices
joined by a UDP tunnel. Guest B's device runs an offloaded port filter: pings cross, UDP to an
open port reaches B (which answers port unreachable), UDP to a blocked port never reaches B,
and B's map counters equal what A sent."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest

from offload.caps.profiles import load_profile
from offload.device.pair import build_device
from offload.device.udp_wire import UdpWire
from offload.vhost_user.port import VhostUserPort

from .qemu import Guest, guest_image

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xdp"
IMAGE = guest_image()
pytestmark = pytest.mark.skipif(isinstance(IMAGE, str), reason=str(IMAGE))
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


class Side:
    """A device, its vhost-user port and its end of the tunnel."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.pair = build_device(name, load_profile("full"))
        self.lock = threading.RLock()
        self.port = VhostUserPort(self.pair.device, workdir / f"{name}.sock", self.lock).start()
        self.wire = UdpWire(self.pair.device, ("127.0.0.1", 0), ("127.0.0.1", 9), self.lock)

    def close(self) -> None:
        self.wire.close()
        self.port.close()


@pytest.fixture
def network(tmp_path):
    a, b = Side("a", tmp_path), Side("b", tmp_path)
    a.wire.remote, b.wire.remote = b.wire.local, a.wire.local
    a.wire.start()
    b.wire.start()
    loaded = b.pair.driver.load_object(FIXTURES / "xdp_port_filter.o",
                                       programs=["xdp_port_filter"])
    b.maps = loaded.maps
    b.pair.driver.map_update_elem(loaded.maps["blocked_ports"],
                                  struct.pack("<H", BLOCKED_PORT), bytes(8))
    with b.lock:
        b.pair.driver.xdp_attach(loaded.programs["xdp_port_filter"])
    guests = [Guest("a", IMAGE, a.port.server.path, mac="52:54:00:00:00:0a", ip="10.0.0.1/24",
                    workdir=tmp_path),
              Guest("b", IMAGE, b.port.server.path, mac="52:54:00:00:00:0b", ip="10.0.0.2/24",
                    workdir=tmp_path)]
    try:
        boots = [threading.Thread(target=g.boot) for g in guests]
        for t in boots:
            t.start()
        for t in boots:
            t.join()
        for g in guests:  # a boot that failed raises here with the console's tail
            g.wait_for("GUEST-READY", 1)
        yield a, b, guests[0], guests[1]
    finally:
        for g in guests:
            g.close()
        a.close()
        b.close()


def udp_probe(port: int) -> str:
    """One UDP datagram to B's ``port`` (traceroute's probe goes to its base port plus one),
    waiting a second for B's port-unreachable answer."""
    return f"traceroute -n -q 1 -w 1 -m 1 -p {port - 1} 10.0.0.2 2>&1; true"


def counter(side: Side, key: int) -> int:
    with side.lock:
        value = side.pair.driver.map_lookup_elem(side.maps["frames_by_proto"],
                                                 struct.pack("<I", key))
    return struct.unpack("<Q", value)[0]


def test_guests_talk_through_the_offloaded_filter(network):
    a, b, guest_a, guest_b = network
    a_before, b_before = snmp(guest_a), snmp(guest_b)
    out = guest_a.run("ping -c 3 -W 3 10.0.0.2")
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
    with b.lock:
        hits = b.pair.driver.map_lookup_elem(b.maps["blocked_ports"],
                                             struct.pack("<H", BLOCKED_PORT))
    assert struct.unpack("<Q", hits)[0] == to_blocked
    assert counter(b, UDP) == sent_udp
    assert counter(b, ICMP) == a_after["Icmp"]["OutMsgs"] - a_before["Icmp"]["OutMsgs"]
    counters = b.pair.device.counters(b.pair.device.attached)
    assert counters.as_dict()["drop"] == to_blocked
