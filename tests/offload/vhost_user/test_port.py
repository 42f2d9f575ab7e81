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
from service.frames import IPPROTO_UDP, ether, ipv4, udp

from .frontend import Frontend
from .test_server import wait_for

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "xdp"


GUEST_MAC, PEER_MAC = bytes.fromhex("525400000002"), bytes.fromhex("525400000001")


def frame(src: str) -> bytes:
    """A UDP datagram to the guest, padded to Ethernet's 60-byte minimum."""
    return ether(ipv4(src, "10.0.0.2", IPPROTO_UDP, udp(1000, 53)), src=PEER_MAC,
                 dst=GUEST_MAC) + bytes(18)


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
