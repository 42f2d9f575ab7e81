"""What every wire of a device shares, whatever carries its frames (a UDP tunnel, a tap
interface): where it plugs in - the device's own wire, or one port's - and the receiving side.

A frame that arrives is checked for size (shorter than an Ethernet header or longer than a
jumbo frame is not a frame: counted and dropped), counted, and run through the device under
its lock, entering at the port's ifindex when the wire is a port's. Sending never takes the
lock, so two devices wired to each other cannot deadlock.
"""

from __future__ import annotations

import threading
from typing import Self

from .device import Device
from .interfaces import Interface

MIN_FRAME = 14
MAX_FRAME = 9216 + 18  # a jumbo frame and its Ethernet header and tag


class Cable:
    """The shared half of a wire; a subclass sends frames and feeds ``arrived`` from its
    receiving thread (``_run``), and closes what carries them in ``_release``."""

    def __init__(self, device: Device, lock: threading.Lock | threading.RLock,
                 port: Interface | None, thread_name: str) -> None:
        self.device = device
        self.lock = lock
        self.port = port
        self.ingress = None if port is None else port.ifindex
        self.received = self.sent = self.malformed = 0
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)
        if port is None:
            device.set_wire(self.send)
        else:
            port.wire = self.send

    def start(self) -> Self:
        self._thread.start()
        return self

    def send(self, frame: bytes) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        """Make the receiving thread look at ``_closing`` now (it may also poll)."""

    def _release(self) -> None:
        """Close what carries the frames, once the receiving thread has stopped."""

    def arrived(self, frame: bytes) -> None:
        if not MIN_FRAME <= len(frame) <= MAX_FRAME:
            self.malformed += 1
            return
        self.received += 1
        with self.lock:
            self.device.receive(frame, ingress=self.ingress)

    def close(self) -> None:
        self._closing = True
        if self.port is not None and self.port.wire == self.send:
            self.port.wire = None
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._release()
