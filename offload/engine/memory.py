"""The engine's memory model: one 64-bit address space made of typed, bounds-checked regions.

Programs only ever hold addresses; every load, store and helper access is resolved here to a
region (stack frame, context, packet, map value, input memory) and an offset, and anything
outside a region's live window is a :class:`MemoryFault`. Region ``k`` lives at
``k << 32``, so an address names its region in one shift and no arithmetic a program can do
within 4 GiB of a pointer reaches another region by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from ..errors import OffloadError

REGION_SHIFT = 32
REGION_SPAN = 1 << REGION_SHIFT


class RegionKind(Enum):
    STACK = "stack"
    CONTEXT = "context"
    PACKET = "packet"
    MAP_VALUE = "map value"
    INPUT = "input memory"
    DATA = "data"


class MemoryFault(OffloadError):
    """An access outside every region, past a region's bounds, or a write to read-only memory.

    ``insn_index`` is filled in by the engine with the instruction that made the access.
    """

    def __init__(self, reason: str, *, address: int, size: int, write: bool,
                 insn_index: int | None = None) -> None:
        self.reason = reason
        self.address = address
        self.size = size
        self.write = write
        self.insn_index = insn_index
        where = f" at insn {insn_index}" if insn_index is not None else ""
        super().__init__(f"invalid {'write' if write else 'read'} of {size} byte(s) at "
                         f"{address:#x}: {reason}{where}")

    def at(self, insn_index: int) -> MemoryFault:
        """The same fault, attributed to an instruction."""
        return MemoryFault(self.reason, address=self.address, size=self.size, write=self.write,
                           insn_index=insn_index)


class Region:
    """A buffer mapped at ``base``; accesses are allowed within ``[start, end)`` of it.

    ``start``/``end`` may move (``bpf_xdp_adjust_head`` grows the packet into its headroom),
    the buffer itself is never replaced, so map values written by a program land in the map.
    """

    __slots__ = ("kind", "buffer", "base", "start", "end", "writable", "name", "reader")

    def __init__(self, kind: RegionKind, buffer: bytearray, base: int, *, writable: bool,
                 name: str, start: int = 0, end: int | None = None,
                 reader: Callable[[int, int], int] | None = None) -> None:
        self.kind = kind
        self.buffer = buffer
        self.base = base
        self.start = start
        self.end = len(buffer) if end is None else end
        self.writable = writable
        self.name = name
        #: For computed memory (the XDP context, whose 32-bit ``data`` field reads as a
        #: 64-bit pointer): ``reader(offset, size)`` gives the value a load sees.
        self.reader = reader

    @property
    def address(self) -> int:
        """Address of the first accessible byte."""
        return self.base + self.start

    @property
    def end_address(self) -> int:
        return self.base + self.end

    def describe(self) -> str:
        return f"{self.name or self.kind.value} [{self.address:#x}, {self.end_address:#x})"


class Memory:
    """The address space of one execution: regions added by the host side, then accessed by
    the program through :meth:`load`/:meth:`store` and by helpers through :meth:`read`/:meth:`write`."""

    __slots__ = ("_regions", "_free", "_stacks")

    def __init__(self) -> None:
        self._regions: dict[int, Region] = {}
        self._free: list[int] = []
        self._stacks: list[Region] = []

    def stack(self, depth: int, size: int) -> Region:
        """The stack frame region for call depth ``depth``, made once and reused by every run
        on this memory (runs are sequential; each run zeroes a frame when it enters it)."""
        while len(self._stacks) <= depth:
            self._stacks.append(self.add_region(RegionKind.STACK, bytearray(size),
                                                name=f"stack frame {len(self._stacks)}"))
        return self._stacks[depth]

    def add_region(self, kind: RegionKind, buffer: bytearray, *, writable: bool = True,
                   name: str = "", start: int = 0, end: int | None = None,
                   reader: Callable[[int, int], int] | None = None) -> Region:
        if len(buffer) >= REGION_SPAN:
            raise ValueError("a region must be smaller than 4 GiB")
        slot = self._free.pop() if self._free else len(self._regions) + 1
        region = Region(kind, buffer, slot << REGION_SHIFT, writable=writable, name=name,
                        start=start, end=end, reader=reader)
        self._regions[slot] = region
        return region

    def remove_region(self, region: Region) -> None:
        slot = region.base >> REGION_SHIFT
        if self._regions.get(slot) is region:
            del self._regions[slot]
            self._free.append(slot)

    def region_at(self, address: int) -> Region | None:
        return self._regions.get(address >> REGION_SHIFT)

    def regions(self) -> list[Region]:
        return list(self._regions.values())

    def resolve(self, address: int, size: int, write: bool) -> tuple[Region, int]:
        """The region and buffer offset of ``size`` bytes at ``address``, or a MemoryFault."""
        region = self._regions.get(address >> REGION_SHIFT)
        if region is None:
            raise MemoryFault("no memory is mapped there", address=address, size=size,
                              write=write)
        offset = address - region.base
        if offset < region.start or offset + size > region.end:
            raise MemoryFault(f"outside {region.describe()}", address=address, size=size,
                              write=write)
        if write and not region.writable:
            raise MemoryFault(f"{region.describe()} is read-only", address=address, size=size,
                              write=write)
        return region, offset

    # --------------------------------------------------------------- program accesses
    def load(self, address: int, size: int) -> int:
        """An unsigned little-endian load of 1, 2, 4 or 8 bytes."""
        region, offset = self.resolve(address, size, False)
        if region.reader is not None:
            return region.reader(offset, size)
        return int.from_bytes(region.buffer[offset:offset + size], "little")

    def store(self, address: int, size: int, value: int) -> None:
        """A little-endian store of the low ``size`` bytes of value."""
        region, offset = self.resolve(address, size, True)
        region.buffer[offset:offset + size] = (value & ((1 << (size * 8)) - 1)).to_bytes(
            size, "little")

    # --------------------------------------------------------------- helper accesses
    def read(self, address: int, size: int) -> bytes:
        if size == 0:
            return b""
        region, offset = self.resolve(address, size, False)
        return bytes(region.buffer[offset:offset + size])

    def write(self, address: int, data: bytes) -> None:
        if not data:
            return
        region, offset = self.resolve(address, len(data), True)
        region.buffer[offset:offset + len(data)] = data

    def read_cstring(self, address: int, limit: int) -> bytes:
        """Bytes up to (not including) a NUL, reading at most ``limit`` bytes."""
        region, offset = self.resolve(address, 1, False)
        window = bytes(region.buffer[offset:min(region.end, offset + limit)])
        nul = window.find(b"\0")
        if nul < 0:
            raise MemoryFault("string is not NUL-terminated within its region",
                              address=address, size=len(window), write=False)
        return window[:nul]
