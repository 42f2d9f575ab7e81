"""The device's guest-facing ports: one interface per guest, each with its own ifindex.

A device with real ports (a daemon's ``--vhost-user``/``--port``) is a small switch: every
port is an interface the device's XDP program can name - ``ingress_ifindex`` of a frame that
arrived on the port's own wire, the ifindex a DEVMAP/DEVMAP_HASH entry or ``bpf_redirect``
gives. A frame redirected to a port leaves "out of that netdev" as the kernel's devmap
redirect transmits out of its target device: for a port whose far side is a guest, that is
into the guest's receive ring. A port has a wire of its own or none; without one, what its
guest transmits leaves on the device's wire.

The redirect fails - counted on the device as ``redirect_errors``, the frame dropped, as the
kernel drops it and fires ``xdp_redirect_err`` - when no port has the ifindex or the port's
guest is not connected (the kernel's ``xdp_ok_fwd_dev`` refuses a target that is down with
ENETDOWN). A connected guest without a free receive buffer drops the frame on that port
(``rx_no_buffer``), as a driver's ``ndo_xdp_xmit`` drops what its ring cannot take.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

#: Interfaces a port may be given: the ifindexes a devmap entry accepts on this device
#: (offload.backends.builtin.DEFAULT_INTERFACES).
MIN_IFINDEX, MAX_IFINDEX = 1, 64


class GuestLink(Protocol):
    """A guest's receive side outside this process (a vhost-user back-end's server)."""

    @property
    def connected(self) -> bool: ...

    def deliver(self, frame: bytes) -> bool: ...


@dataclass(slots=True)
class InterfaceCounters:
    """Frames seen at one port."""

    rx_from_wire: int = 0  # arrived on this port's own wire
    rx_to_guest: int = 0  # into the guest's receive ring (PASS here, or redirected here)
    rx_no_buffer: int = 0  # ... dropped: the guest had posted no receive buffer
    redirected_in: int = 0  # frames another run's REDIRECT sent to this port
    tx_from_guest: int = 0
    tx_to_wire: int = 0


@dataclass(eq=False)
class Interface:
    """One port: its ifindex and name, its guest, and its own wire if it has one."""

    ifindex: int
    name: str
    guest: GuestLink
    wire: Callable[[bytes], None] | None = None
    counters: InterfaceCounters = field(default_factory=InterfaceCounters)
    served: str = ""  # what serves the guest side, for people ("vhost-user /tmp/b.vhost")
    wire_label: str = ""  # the port's own wire, for people; empty: the device's wire

    def picture(self) -> dict[str, object]:
        """The port as plain data (a device's status lists its ports so)."""
        return {"ifindex": self.ifindex, "name": self.name, "served": self.served,
                "connected": self.guest.connected, "wire": self.wire_label or "device",
                "counters": {k: getattr(self.counters, k) for k in self.counters.__slots__}}

    def __post_init__(self) -> None:
        if not MIN_IFINDEX <= self.ifindex <= MAX_IFINDEX:
            raise ValueError(f"port {self.name}: ifindex {self.ifindex} is outside "
                             f"{MIN_IFINDEX}..{MAX_IFINDEX}")
