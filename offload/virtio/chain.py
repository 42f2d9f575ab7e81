"""What the device pops from a virtqueue: a validated chain of guest buffers (virtio 1.2 2.7.5).

A chain is its head (the index the device returns in the used ring), the device-readable
segments, then the device-writable ones. :class:`~.device_queue.DeviceQueue` builds chains only
after checking every descriptor, so :meth:`Chain.read` and :meth:`Chain.write` touch nothing but
the guest's own buffers; guest memory still checks each access, so a chain made by hand cannot
reach outside it either.

Both types are named tuples rather than frozen dataclasses: a few are made per packet, and a
tuple is several times cheaper to build while just as immutable.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import VirtioError
from .memory import GuestMemory


class Segment(NamedTuple):
    """One buffer of a chain: ``length`` bytes at guest address ``addr``."""

    addr: int
    length: int


class Chain(NamedTuple):
    """A validated descriptor chain: device-readable then device-writable segments."""

    head: int
    readable: tuple[Segment, ...]
    writable: tuple[Segment, ...]
    indirect: bool = False

    @property
    def readable_len(self) -> int:
        return sum(s.length for s in self.readable)

    @property
    def writable_len(self) -> int:
        writable = self.writable
        return writable[0].length if len(writable) == 1 else sum(s.length for s in writable)

    def read(self, memory: GuestMemory, limit: int | None = None) -> bytes:
        """Gather the device-readable bytes (at most ``limit``) in chain order."""
        readable = self.readable
        if len(readable) == 1:
            addr, length = readable[0]
            return memory.read(addr, length if limit is None else min(length, limit))
        out = bytearray()
        for seg in readable:
            take = seg.length if limit is None else min(seg.length, limit - len(out))
            out += memory.read(seg.addr, take)
            if limit is not None and len(out) >= limit:
                break
        return bytes(out)

    def write(self, memory: GuestMemory, data: bytes) -> int:
        """Scatter ``data`` over the device-writable buffers; return the bytes written."""
        writable = self.writable
        size = len(data)
        if len(writable) == 1 and size <= writable[0].length:
            if size:
                memory.write(writable[0].addr, data)
            return size
        if size > self.writable_len:
            raise VirtioError(f"cannot write {size} bytes into chain {self.head}: its "
                              f"device-writable buffers hold only {self.writable_len} bytes")
        done = 0
        for seg in writable:
            if done == size:
                break
            take = min(seg.length, size - done)
            memory.write(seg.addr, data[done:done + take])
            done += take
        return done
