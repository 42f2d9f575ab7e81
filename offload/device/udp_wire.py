"""The device's wire as a UDP tunnel: one Ethernet frame per datagram, as QEMU's
``-netdev dgram`` (or the older ``-netdev socket,udp=``) carries frames between hosts.

Two devices whose tunnels point at each other are two NICs on one cable: what one transmits
(XDP_TX, a frame its guest sent) the other receives from the wire and runs through its
program. What arriving frames go through, and where the wire plugs in, is
:class:`~offload.device.cable.Cable`'s.

A learning tunnel (``learn``) sends to whoever it last heard from, as a switch port learns
where a MAC address went: when the peer's guest migrates to another device, that device's
first frame - the RARP the vhost-user back-end sends after the switch - moves the tunnel's far
end there. Anyone who can send to the local port can then take the tunnel over, so learn only
on a network whose senders are trusted (loopback, a host-only network).
"""

from __future__ import annotations

import socket
import threading

from .cable import MAX_FRAME, MIN_FRAME, Cable
from .device import Device
from .interfaces import Interface


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv4 or a name; ``[v6]:PORT`` for IPv6) as a socket address."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class UdpWire(Cable):
    """Frames between ``device`` and the peer at ``remote``, from ``local``: the device's
    wire, or with ``port`` that port's own (frames from it enter at the port's ifindex)."""

    def __init__(self, device: Device, local: tuple[str, int], remote: tuple[str, int],
                 lock: threading.Lock | threading.RLock, learn: bool = False,
                 port: Interface | None = None) -> None:
        family = socket.AF_INET6 if ":" in local[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(local)
        self.sock.settimeout(0.2)  # the receiving thread looks at _closing this often
        self.remote = remote
        self.learn = learn
        self.moves = 0  # times a learning tunnel's far end moved
        super().__init__(device, lock, port, f"wire {local}")

    @property
    def local(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def send(self, frame: bytes) -> None:
        try:
            self.sock.sendto(frame, self.remote)  # never blocks: a full buffer drops
            self.sent += 1
        except OSError:
            pass  # the peer is not there: a cable with nobody at the other end

    def _run(self) -> None:
        while not self._closing:
            try:
                frame, peer = self.sock.recvfrom(MAX_FRAME + 1)
            except TimeoutError:
                continue
            except OSError:
                return
            if (self.learn and peer[:2] != self.remote
                    and MIN_FRAME <= len(frame) <= MAX_FRAME):  # only a frame moves the far end
                self.remote = peer[:2]
                self.moves += 1
            self.arrived(frame)

    def _release(self) -> None:
        self.sock.close()
