"""A device's guest side served over vhost-user.

The device runs its attached XDP program on frames from the wire as always; a frame the
program passes goes into the QEMU guest's receive queue, and the frames the guest transmits go
out on the device's wire, as the simulated guest driver's would. The offload itself (program
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
from .server import VhostUserServer


class VhostUserPort:
    def __init__(self, device: Device, path: str | Path,
                 lock: threading.Lock | threading.RLock | None = None) -> None:
        self.device = device
        self.lock = lock if lock is not None else threading.RLock()
        self.server = VhostUserServer(path, self._transmit)
        device.guest = self.server.deliver

    def start(self) -> VhostUserPort:
        self.server.start()
        return self

    def _transmit(self, frame: bytes) -> None:
        with self.lock:
            self.device.from_guest(frame)

    def close(self) -> None:
        if self.device.guest == self.server.deliver:
            self.device.guest = None
        self.server.close()
