"""A device's ports: PASS and TX stay on the port a frame came in on, REDIRECT leaves by the
named port, and a port with its own wire sends its guest's frames there."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from offload.caps.profiles import load_profile
from offload.device.interfaces import Interface
from offload.device.pair import build_device
from service.frames import ether, udp_packet

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "xdp"


class FakeGuest:
    def __init__(self, connected: bool = True, room: int = 100) -> None:
        self.connected = connected
        self.room = room
        self.frames: list[bytes] = []

    def deliver(self, frame: bytes) -> bool:
        if self.room == 0:
            return False
        self.room -= 1
        self.frames.append(frame)
        return True


def to(dest: str) -> bytes:
    return ether(udp_packet("10.0.0.1", dest, 1, 2))


@pytest.fixture
def device():
    pair = build_device("d", load_profile("full"))
    loaded = pair.driver.load_object(FIXTURES / "xdp_steer.o", programs=["xdp_steer"])
    pair.driver.xdp_attach(loaded.programs["xdp_steer"])
    for slot, (address, ifindex) in enumerate((("10.0.0.3", 2), ("10.0.0.4", 3))):
        pair.driver.map_update_elem(loaded.maps["dest_slots"], socket.inet_aton(address),
                                    struct.pack("<I", slot))
        pair.driver.map_update_elem(loaded.maps["egress_ports"], struct.pack("<I", slot),
                                    struct.pack("<I", ifindex))
    return pair.device


def test_pass_stays_on_the_ingress_port_and_redirect_picks_the_named_one(device):
    guests = {i: FakeGuest() for i in (1, 2, 3)}
    own_wire: list[bytes] = []
    for i, guest in guests.items():
        device.add_interface(Interface(i, f"p{i}", guest, wire=own_wire.append if i == 3
                                       else None))
    device.receive(to("10.0.0.2"))  # the device's wire: ifindex 1
    device.receive(to("10.0.0.9"), ingress=3)  # port 3's own wire: PASS goes to port 3
    device.receive(to("10.0.0.3"), ingress=3)  # ... and REDIRECT to port 2
    assert guests[1].frames == [to("10.0.0.2")]
    assert guests[3].frames == [to("10.0.0.9")]
    assert guests[2].frames == [to("10.0.0.3")]
    assert device.interfaces[3].counters.rx_from_wire == 2
    assert device.interfaces[1].counters.rx_from_wire == 0  # the device's wire is not port 1's

    device.from_guest(b"g3", 3)  # port 3's guest: out on its own wire
    device.from_guest(b"g2", 2)  # port 2 has none: the device's
    assert own_wire == [b"g3"] and list(device.wire) == [b"g2"]
    assert device.ports.tx_to_wire == 2 and device.interfaces[3].counters.tx_to_wire == 1


def test_redirect_errors_and_full_rings_are_told_apart(device):
    down, full = FakeGuest(connected=False), FakeGuest(room=0)
    device.add_interface(Interface(2, "down", down))
    device.add_interface(Interface(3, "full", full))
    device.receive(to("10.0.0.3"))  # to a port that is down: a redirect error
    device.receive(to("10.0.0.4"))  # to a port without a buffer: dropped on that port
    assert device.ports.redirect_errors == 1
    assert device.interfaces[3].counters.rx_no_buffer == 1 and device.ports.rx_no_buffer == 1
    assert down.frames == [] and full.frames == []


def test_without_ports_a_redirect_leaves_for_the_switch_beyond(device):
    device.receive(to("10.0.0.3"))
    assert list(device.redirected) == [(2, to("10.0.0.3"))]
    assert device.ports.redirect_errors == 0


def test_a_port_takes_an_ifindex_a_devmap_can_name():
    with pytest.raises(ValueError, match="outside 1..64"):
        Interface(65, "far", FakeGuest())
