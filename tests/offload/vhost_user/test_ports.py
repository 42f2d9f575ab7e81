"""One device, several vhost-user ports: the program steers frames from the wire to a port
through a devmap; a redirect to a port nobody serves, or to a port whose front-end went away,
is a redirect error and the device goes on serving."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from offload.caps.profiles import load_profile
from offload.device.pair import build_device
from offload.vhost_user.port import VhostUserPort
from service.frames import ETH_P_ARP, arp_request, ether, udp_packet

from .frontend import Frontend
from .test_server import wait_for

STEER = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "xdp_steer.o"
B, C = "10.0.0.2", "10.0.0.3"
PASSED, REDIRECTED = 0, 1


def to(dest: str) -> bytes:
    return ether(udp_packet("10.0.0.1", dest, 1000, 2000)) + bytes(10)


class Switch:
    """A device with the steering program and two ports: B at ifindex 1, C at ifindex 2."""

    def __init__(self, tmp_path: Path) -> None:
        pair = build_device("sw", load_profile("full"))
        self.device, self.driver = pair.device, pair.driver
        loaded = self.driver.load_object(STEER, programs=["xdp_steer"])
        self.driver.xdp_attach(loaded.programs["xdp_steer"])
        self.maps = loaded.maps
        self.steer(C, slot=0, ifindex=2)
        self.b = VhostUserPort(self.device, tmp_path / "b.vhost", name="b").start()
        self.c = VhostUserPort(self.device, tmp_path / "c.vhost", ifindex=2, name="c").start()
        self.fronts: list[Frontend] = []

    def steer(self, address: str, *, slot: int, ifindex: int) -> None:
        self.driver.map_update_elem(self.maps["dest_slots"], socket.inet_aton(address),
                                    struct.pack("<I", slot))
        self.driver.map_update_elem(self.maps["egress_ports"], struct.pack("<I", slot),
                                    struct.pack("<I", ifindex))

    def connect(self, port: VhostUserPort) -> Frontend:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(port.server.path)
        front = Frontend(sock)
        front.handshake()
        front.post_rx(8)
        self.fronts.append(front)
        return front

    def receive(self, *frames: bytes) -> None:
        with self.b.lock:
            for frame in frames:
                self.device.receive(frame)

    def stat(self, key: int) -> int:
        value = self.driver.map_lookup_elem(self.maps["steer_stats"], struct.pack("<I", key))
        return struct.unpack("<Q", value)[0]

    def close(self) -> None:
        for front in self.fronts:
            front.close()
        self.b.close()
        self.c.close()


@pytest.fixture
def switch(tmp_path):
    made = Switch(tmp_path)
    yield made
    made.close()


def test_frames_for_c_go_to_cs_port_and_the_rest_to_bs(switch):
    front_b, front_c = switch.connect(switch.b), switch.connect(switch.c)
    arp = ether(arp_request("10.0.0.1", C), ETH_P_ARP, dst=b"\xff" * 6) + bytes(18)
    switch.receive(to(B), to(C), arp, to(C))
    assert wait_for(front_c.received) == [to(C), arp, to(C)]
    assert front_b.received() == [to(B)]
    ports = {i: p.counters for i, p in switch.device.interfaces.items()}
    assert (ports[2].redirected_in, ports[2].rx_to_guest) == (3, 3)
    assert (ports[1].redirected_in, ports[1].rx_to_guest) == (0, 1)
    assert (switch.stat(PASSED), switch.stat(REDIRECTED)) == (1, 3)
    counters = switch.device.objects.programs[switch.device.attached].counters
    assert (counters.redirect, counters.pass_) == (3, 1)
    assert switch.device.ports.redirect_errors == 0

    front_c.transmit(b"\x44" * 64)  # C's guest transmits: out on the device's wire
    wait_for(lambda: len(switch.device.wire) == 1)
    assert switch.device.wire[0] == b"\x44" * 64
    assert (ports[2].tx_from_guest, ports[2].tx_to_wire, ports[1].tx_from_guest) == (1, 1, 0)


def test_a_devmap_entry_naming_no_port_is_a_redirect_error(switch):
    front_b = switch.connect(switch.b)
    switch.steer("10.0.0.9", slot=1, ifindex=7)  # a valid interface, but no port has it
    switch.receive(to("10.0.0.9"), to(B))
    assert wait_for(front_b.received) == [to(B)]
    assert switch.device.ports.redirect_errors == 1
    assert sum(p.counters.rx_to_guest for p in switch.device.interfaces.values()) == 1


def test_a_port_whose_front_end_went_away_counts_redirect_errors_and_comes_back(switch):
    front_b, front_c = switch.connect(switch.b), switch.connect(switch.c)
    switch.receive(to(C))
    assert wait_for(front_c.received) == [to(C)]
    front_c.sock.close()  # QEMU killed: its end of the socket closes
    wait_for(lambda: not switch.c.server.connected)
    switch.receive(to(C), to(C), to(B))
    assert switch.device.ports.redirect_errors == 2
    assert wait_for(front_b.received) == [to(B)]  # the rest of the device goes on
    assert switch.device.interfaces[2].counters.rx_to_guest == 1
    again = switch.connect(switch.c)  # a new QEMU on the same socket
    switch.receive(to(C))
    assert wait_for(again.received) == [to(C)]
    assert switch.device.ports.redirect_errors == 2


def test_ports_need_distinct_ifindexes(switch, tmp_path):
    with pytest.raises(ValueError, match="ifindex 2 is port c"):
        VhostUserPort(switch.device, tmp_path / "d.vhost", ifindex=2)
    assert not (tmp_path / "d.vhost").exists()
