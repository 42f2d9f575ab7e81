"""A device's guest side served over vhost-user: one port of the device.

The device runs its attached XDP program on frames from the wire as always; a frame the
program passes on this port, or redirects to its ifindex, goes into the QEMU guest's receive
queue, and the frames the guest transmits go out on the port's wire or the device's, as the
simulated guest driver's would (offload/device/interfaces.py). The offload itself (program
load, maps, attach) stays on the device's control socket: a stock guest kernel has no driver
for the offload control class, so the host's operator offloads on the guest's behalf.

``lock`` is the lock the caller holds around ``device.receive`` (a daemon's device lock): the
guest's transmissions take it too. Lock order is device, then server: ``device.receive`` calls
the server's ``deliver`` under the device lock, and the server hands transmitted frames over
only after releasing its own.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ..device.device import Device
from ..device.interfaces import Interface
from .server import VhostUserServer


class VhostUserPort:
    """Port ``ifindex`` (the device's own by default) of ``device``, served on ``path``."""

    def __init__(self, device: Device, path: str | Path,
                 lock: threading.Lock | threading.RLock | None = None, *,
                 ifindex: int | None = None, name: str | None = None) -> None:
        self.device = device
        self.lock = lock if lock is not None else threading.RLock()
        index = device.ifindex if ifindex is None else ifindex
        self.server = VhostUserServer(path, self._transmit)
        self.interface = Interface(index, name or f"port{index}", self.server,
                                   served=f"vhost-user {path}")
        try:
            device.add_interface(self.interface)
        except ValueError:
            self.server.close()
            raise

    @property
    def ifindex(self) -> int:
        return self.interface.ifindex

    def start(self) -> VhostUserPort:
        self.server.start()
        return self

    def _transmit(self, frame: bytes) -> None:
        with self.lock:
            self.device.from_guest(frame, self.interface.ifindex)

    def close(self) -> None:
        with self.lock:
            self.device.remove_interface(self.interface)
        self.server.close()
