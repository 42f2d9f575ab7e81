"""A daemon's device on real ports: a QEMU guest over vhost-user, the wire as a UDP tunnel.

``device serve --vhost-user SOCKET`` serves the device's guest side to a QEMU front-end
(docs/vhost-user.md); ``--wire udp:LOCAL=REMOTE`` joins the device's wire to another device's
(or anything speaking one Ethernet frame per datagram, as QEMU's ``-netdev dgram``). Both take
the device service's lock around the device, as its traffic loop and migrations do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from offload.device.udp_wire import UdpWire, parse_endpoint
from offload.vhost_user.port import VhostUserPort

from .device_service import DeviceService
from .errors import UsageError


def parse_wire(text: str) -> tuple[tuple[str, int], tuple[str, int], bool]:
    """``udp:LOCAL_HOST:PORT=REMOTE_HOST:PORT[,learn]`` as two socket addresses and whether
    the far end follows the peer last heard from (offload/device/udp_wire.py)."""
    body, comma, option = text.partition(",")
    kind, _, rest = body.partition(":")
    local, sep, remote = rest.partition("=")
    if kind != "udp" or not sep or (comma and option != "learn"):
        raise UsageError(f"--wire {text!r}: expected udp:LOCAL_HOST:PORT=REMOTE_HOST:PORT "
                         f"with an optional ,learn (udp:127.0.0.1:5001=127.0.0.1:5002).")
    try:
        return parse_endpoint(local), parse_endpoint(remote), bool(comma)
    except ValueError as exc:
        raise UsageError(f"--wire {text!r}: {exc}.") from None


@dataclass
class Ports:
    """The ports a daemon opened for its device; closed together."""

    vhost_user: VhostUserPort | None = None
    wire: UdpWire | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, service: DeviceService, *, vhost_user: str | None,
             wire: str | None) -> Ports:
        ports = cls()
        try:
            if wire is not None:
                local, remote, learn = parse_wire(wire)
                try:
                    ports.wire = UdpWire(service.device, local, remote, service.lock,
                                         learn).start()
                except OSError as exc:
                    raise UsageError(f"--wire: cannot bind {local[0]}:{local[1]}: "
                                     f"{exc.strerror or exc}.") from None
                ports.notes.append(f"wire udp {local[0]}:{local[1]} -> {remote[0]}:{remote[1]}"
                                   + (" (learning)" if learn else ""))
            if vhost_user is not None:
                try:
                    ports.vhost_user = VhostUserPort(service.device, Path(vhost_user),
                                                     service.lock).start()
                except OSError as exc:
                    raise UsageError(f"--vhost-user: cannot listen on {vhost_user}: "
                                     f"{exc.strerror or exc}.") from None
                ports.notes.append(f"guest over vhost-user on {vhost_user}")
        except BaseException:
            ports.close()
            raise
        return ports

    def close(self) -> None:
        if self.vhost_user is not None:
            self.vhost_user.close()
            self.vhost_user = None
        if self.wire is not None:
            self.wire.close()
            self.wire = None
