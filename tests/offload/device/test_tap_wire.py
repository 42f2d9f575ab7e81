"""The device's wire as a tap interface: what the host sends out of the tap runs through the
device's program; what the device sends appears on the host as received on the tap. Needs
/dev/net/tun and CAP_NET_ADMIN; skips with the reason without them."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from offload.caps.profiles import load_profile
from offload.device.interfaces import Interface
from offload.device.pair import build_device
from offload.device.tap_wire import TapWire, check_name
from service.frames import ether, udp_packet

from .test_interfaces import FakeGuest

PACKET_OUTGOING = 4
NAME = f"omtap{os.getpid() % 100000}"


def tap_or_skip(device, lock, port=None) -> TapWire:
    try:
        return TapWire(device, NAME, lock, port).start()
    except OSError as exc:  # no /dev/net/tun, or no CAP_NET_ADMIN
        pytest.skip(f"no tap interface here: {exc.strerror or exc}")


def test_frames_cross_a_tap_both_ways():
    device = build_device("t", load_profile("full")).device
    guest = FakeGuest()
    device.add_interface(Interface(1, "g", guest))
    wire = tap_or_skip(device, threading.Lock())
    host = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    try:
        host.bind((NAME, 0))
        host.settimeout(5)
        frame = ether(udp_packet("10.9.0.1", "10.9.0.2", 1, 2), dst=b"\x02" + bytes(4) + b"\x07")
        host.send(frame)  # out of the tap on the host: into the device
        deadline = time.monotonic() + 5
        while frame not in guest.frames and time.monotonic() < deadline:
            time.sleep(0.01)
        assert frame in guest.frames and device.ports.rx_frames >= 1

        sent = ether(udp_packet("10.9.0.2", "10.9.0.1", 2, 1), src=b"\x02" + bytes(4) + b"\x07")
        device.from_guest(sent)  # the guest transmits: the host receives it on the tap
        while True:
            data, address = host.recvfrom(65536)
            if address[2] != PACKET_OUTGOING and data == sent:
                break
        assert wire.sent == 1
    finally:
        host.close()
        wire.close()


def test_tap_names_are_checked():
    assert check_name("tap0") == "tap0"
    for bad in ("", "x" * 16, "a/b", "a:b", "a b", ".."):
        with pytest.raises(ValueError, match="not an interface name"):
            check_name(bad)
