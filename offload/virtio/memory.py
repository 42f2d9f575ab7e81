"""Guest memory: one flat, bounds-checked address space shared by driver and device.

Both sides of a virtio device see the same guest-physical memory (virtio 1.2 section 2.7: ring
and buffer addresses are guest-physical). Here it is a ``bytearray`` addressed from 0; every
access is checked, including ``addr + length`` overflow, so a hostile address can never reach
outside it. Integers are little-endian, as virtio 1.x requires for every modern device.
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

    __slots__ = ("_buf",)

    def __init__(self, size: int) -> None:
        if not 0 < size <= 1 << 40:
            raise GuestMemoryError(f"guest memory size {size} must be between 1 byte and 1 TiB",
                                   addr=0, length=size)
        self._buf = bytearray(size)

    @property
    def size(self) -> int:
        return len(self._buf)

    def contains(self, addr: int, length: int) -> bool:
        """True when ``[addr, addr + length)`` lies inside guest memory (length 0 included)."""
        return 0 <= addr and 0 <= length and addr + length <= len(self._buf)

    def _check(self, addr: int, length: int) -> None:
        if not self.contains(addr, length):
            raise GuestMemoryError(
                f"access of {length} bytes at {addr:#x} is outside guest memory "
                f"of {len(self._buf)} bytes", addr=addr, length=length)

    def read(self, addr: int, length: int) -> bytes:
        self._check(addr, length)
        return bytes(self._buf[addr:addr + length])

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        self._check(addr, len(data))
        self._buf[addr:addr + len(data)] = data

    def fill(self, addr: int, length: int, byte: int = 0) -> None:
        self._check(addr, length)
        self._buf[addr:addr + length] = bytes([byte]) * length

    def read_u16(self, addr: int) -> int:
        self._check(addr, 2)
        return _U16.unpack_from(self._buf, addr)[0]

    def read_u32(self, addr: int) -> int:
        self._check(addr, 4)
        return _U32.unpack_from(self._buf, addr)[0]

    def read_u64(self, addr: int) -> int:
        self._check(addr, 8)
        return _U64.unpack_from(self._buf, addr)[0]

    def write_u16(self, addr: int, value: int) -> None:
        self._check(addr, 2)
        _U16.pack_into(self._buf, addr, value & 0xFFFF)

    def write_u32(self, addr: int, value: int) -> None:
        self._check(addr, 4)
        _U32.pack_into(self._buf, addr, value & 0xFFFFFFFF)

    def write_u64(self, addr: int, value: int) -> None:
        self._check(addr, 8)
        _U64.pack_into(self._buf, addr, value & 0xFFFFFFFFFFFFFFFF)

    def snapshot(self) -> bytes:
        """A copy of the whole address space (tests compare snapshots to find stray writes)."""
        return bytes(self._buf)
