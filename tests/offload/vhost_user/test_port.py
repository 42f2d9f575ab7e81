"""A device whose guest is a vhost-user front-end: the offloaded program decides what the guest
receives; what the guest sends leaves on the wire."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from offload.caps.profiles import load_profile
from offload.device.pair import build_device
from offload.vhost_user.port import VhostUserPort

from .frontend import Frontend
from .test_server import wait_for

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "xdp"


def frame(src: str, proto: int = 17) -> bytes:
    eth = b"\x52\x54\x00\x00\x00\x02" + b"\x52\x54\x00\x00\x00\x01" + b"\x08\x00"
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, proto, 0,
                     socket.inet_aton(src), socket.inet_aton("10.0.0.2"))
    return eth + ip + struct.pack("!HHHH", 1000, 53, 8, 0) + bytes(18)


@pytest.fixture
def port(tmp_path):
    pair = build_device("vu", load_profile("full"))
    loaded = pair.driver.load_object(FIXTURES / "xdp_firewall.o", programs=["xdp_firewall"])
    pair.driver.xdp_attach(loaded.programs["xdp_firewall"])
    pair.driver.map_update_elem(loaded.maps["blocked_v4"], socket.inet_aton("10.0.0.66"),
                                bytes(8))
    p = VhostUserPort(pair.device, tmp_path / "vu.sock").start()
    p.maps = loaded.maps
    p.driver = pair.driver
    yield p
    p.close()


def test_the_program_decides_what_the_guest_receives(port):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(port.server.path)
    front = Frontend(sock)
    try:
        front.handshake()
        front.post_rx(8)
        device = port.device
        ok, blocked = frame("10.0.0.1"), frame("10.0.0.66")
        with port.lock:
            device.receive(ok)
            device.receive(blocked)
            device.receive(ok)
        assert wait_for(front.received) == [ok, ok]
        assert device.ports.rx_to_guest == 2
        hits = port.driver.map_lookup_elem(port.maps["blocked_v4"],
                                           socket.inet_aton("10.0.0.66"))
        assert struct.unpack("<Q", hits)[0] == 1
        front.transmit(b"\x33" * 70)
        wait_for(lambda: len(device.wire) == 1)
        assert device.wire[0] == b"\x33" * 70 and device.ports.tx_from_guest == 1
    finally:
        front.close()


def test_without_a_front_end_frames_for_the_guest_are_counted_as_dropped(port):
    with port.lock:
        port.device.receive(frame("10.0.0.1"))
    assert port.device.ports.rx_no_buffer == 1 and port.device.ports.rx_to_guest == 0
