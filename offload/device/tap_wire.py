"""The device's wire as a Linux tap device: frames the program or a guest sends out appear on
the host as received on the tap interface, and what the host sends out of it arrives here.

A tap interface (``/dev/net/tun`` with IFF_TAP, no packet information header) needs
CAP_NET_ADMIN to create; the device opens it with the name given and sets it up. One frame
per read and write, as the tun driver gives them; what arriving frames go through, and where
the wire plugs in, is :class:`~offload.device.cable.Cable`'s.
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import threading

from .cable import MAX_FRAME, Cable
from .device import Device
from .interfaces import Interface

TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
IFNAMSIZ = 16


def check_name(name: str) -> str:
    """A Linux interface name: 1 to 15 bytes, no '/', ':' or whitespace."""
    if not 0 < len(name.encode()) < IFNAMSIZ or any(c in name for c in "/: \t\n") \
            or name in (".", ".."):
        raise ValueError(f"{name!r} is not an interface name (1 to {IFNAMSIZ - 1} bytes, "
                         f"no '/', ':' or spaces)")
    return name


class TapWire(Cable):
    """Frames between ``device`` (or its ``port``) and the tap interface ``name``."""

    def __init__(self, device: Device, name: str, lock: threading.Lock | threading.RLock,
                 port: Interface | None = None) -> None:
        self.name = check_name(name)
        self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            ifreq = struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI)
            fcntl.ioctl(self.fd, TUNSETIFF, ifreq)
            _set_up(name)
        except OSError:
            os.close(self.fd)
            raise
        self.learn = False
        self._wake_r, self._wake_w = os.pipe()
        super().__init__(device, lock, port, f"tap {name}")

    def send(self, frame: bytes) -> None:
        try:
            os.write(self.fd, frame)
            self.sent += 1
        except OSError:
            pass  # the interface is down or its queue full: the frame is lost, as on a cable

    def _run(self) -> None:
        while not self._closing:
            ready, _, _ = select.select([self.fd, self._wake_r], [], [])
            if self._closing or self.fd not in ready:
                continue
            try:
                frame = os.read(self.fd, MAX_FRAME + 1)
            except OSError:
                return
            self.arrived(frame)

    def _wake(self) -> None:
        os.write(self._wake_w, b"x")

    def _release(self) -> None:
        for fd in (self.fd, self._wake_r, self._wake_w):
            os.close(fd)


def _set_up(name: str) -> None:
    """``ip link set NAME up``, by SIOCSIFFLAGS on any socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))
