"""Guest memory: one flat, bounds-checked address space shared by driver and device.

Both sides of a virtio device see the same guest-physical memory (virtio 1.2 section 2.7: ring
and buffer addresses are guest-physical). Here it is a ``bytearray`` addressed from 0; every
access is checked, including ``addr + length`` overflow, so a hostile address can never reach
outside it. Integers are little-endian, as virtio 1.x requires for every modern device.

The queues read and write their rings through :attr:`GuestMemory.buffer` directly with
precompiled structs: the ring areas are checked against the memory's size once, when the queue
is set up (:meth:`~.ring.VringLayout.validate`), and the size never changes afterwards.
"""

from __future__ import annotations

import struct

from .errors import VirtioError

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GuestMemoryError(VirtioError):
    """An access outside guest memory."""

    def __init__(self, message: str, *, addr: int, length: int) -> None:
        super().__init__(message)
        self.addr = addr
        self.length = length


class GuestMemory:
    """``size`` bytes of guest-physical memory, zero-filled."""

    __slots__ = ("_buf", "_view", "_size")

    def __init__(self, size: int) -> None:
        if not 0 < size <= 1 << 40:
            raise GuestMemoryError(f"guest memory size {size} must be between 1 byte and 1 TiB",
                                   addr=0, length=size)
        self._buf = bytearray(size)
        self._view = memoryview(self._buf)  # reads copy once, not twice
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    @property
    def buffer(self) -> bytearray:
        """The backing bytes, for code that checked its addresses against :attr:`size`."""
        return self._buf

    def contains(self, addr: int, length: int) -> bool:
        """True when ``[addr, addr + length)`` lies inside guest memory (length 0 included)."""
        return 0 <= addr and 0 <= length and addr + length <= self._size

    def _outside(self, addr: int, length: int) -> GuestMemoryError:
        return GuestMemoryError(f"access of {length} bytes at {addr:#x} is outside guest memory "
                                f"of {self._size} bytes", addr=addr, length=length)

    def read(self, addr: int, length: int) -> bytes:
        if addr < 0 or length < 0 or addr + length > self._size:
            raise self._outside(addr, length)
        return bytes(self._view[addr:addr + length])

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        length = len(data)
        if addr < 0 or addr + length > self._size:
            raise self._outside(addr, length)
        self._buf[addr:addr + length] = data

    def fill(self, addr: int, length: int, byte: int = 0) -> None:
        if addr < 0 or length < 0 or addr + length > self._size:
            raise self._outside(addr, length)
        self._buf[addr:addr + length] = bytes(length) if byte == 0 else bytes([byte]) * length

    def read_u16(self, addr: int) -> int:
        if addr < 0 or addr + 2 > self._size:
            raise self._outside(addr, 2)
        return _U16.unpack_from(self._buf, addr)[0]

    def read_u32(self, addr: int) -> int:
        if addr < 0 or addr + 4 > self._size:
            raise self._outside(addr, 4)
        return _U32.unpack_from(self._buf, addr)[0]

    def read_u64(self, addr: int) -> int:
        if addr < 0 or addr + 8 > self._size:
            raise self._outside(addr, 8)
        return _U64.unpack_from(self._buf, addr)[0]

    def write_u16(self, addr: int, value: int) -> None:
        if addr < 0 or addr + 2 > self._size:
            raise self._outside(addr, 2)
        _U16.pack_into(self._buf, addr, value & 0xFFFF)

    def write_u32(self, addr: int, value: int) -> None:
        if addr < 0 or addr + 4 > self._size:
            raise self._outside(addr, 4)
        _U32.pack_into(self._buf, addr, value & 0xFFFFFFFF)

    def write_u64(self, addr: int, value: int) -> None:
        if addr < 0 or addr + 8 > self._size:
            raise self._outside(addr, 8)
        _U64.pack_into(self._buf, addr, value & 0xFFFFFFFFFFFFFFFF)

    def snapshot(self) -> bytes:
        """A copy of the whole address space (tests compare snapshots to find stray writes)."""
        return bytes(self._buf)
