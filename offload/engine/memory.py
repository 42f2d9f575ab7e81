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
from typing import Any

from ..errors import OffloadError

REGION_SHIFT = 32
REGION_SPAN = 1 << REGION_SHIFT


class RegionKind(Enum):
    STACK = "stack"
    CONTEXT = "context"
    PACKET = "packet"
    MAP_VALUE = "map value"
    INPUT = "input memory"
    RINGBUF = "ring buffer record"  # a bpf_ringbuf_reserve reservation, until released
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
        super().__init__(self._message())

    def at(self, insn_index: int) -> MemoryFault:
        """The same fault (of the same type), attributed to an instruction."""
        fault = type(self).__new__(type(self))
        fault.__dict__.update(self.__dict__)
        fault.insn_index = insn_index
        Exception.__init__(fault, fault._message())
        return fault

    def _message(self) -> str:
        where = f" at insn {self.insn_index}" if self.insn_index is not None else ""
        return (f"invalid {'write' if self.write else 'read'} of {self.size} byte(s) at "
                f"{self.address:#x}: {self.reason}{where}")


class ProvenanceFault(MemoryFault):
    """An access through an address that does not lie in the region its pointer was derived
    from, or through a number no pointer was derived into (defence in depth against a wrong
    verifier: a program reaches only memory it was given)."""


#: ``reader(offset, size)`` of computed memory: the value a load sees, and the region that value
#: points into (None for a plain number), so a pointer read from the context keeps provenance.
Reader = Callable[[int, int], "tuple[int, Region | None]"]


class Region:
    """A buffer mapped at ``base``; accesses are allowed within ``[start, end)`` of it.

    ``start``/``end`` may move (``bpf_xdp_adjust_head`` grows the packet into its headroom),
    the buffer itself is never replaced, so map values written by a program land in the map.
    ``owner`` says whose memory it is (the live map of a map value), for engines that check
    an access reaches the map the verifier proved it for.
    """

    __slots__ = ("kind", "buffer", "base", "start", "end", "writable", "name", "reader",
                 "owner")

    def __init__(self, kind: RegionKind, buffer: bytearray | memoryview, base: int, *,
                 writable: bool,
                 name: str, start: int = 0, end: int | None = None,
                 reader: Reader | None = None, owner: Any = None) -> None:
        self.kind = kind
        self.buffer = buffer
        self.base = base
        self.start = start
        self.end = len(buffer) if end is None else end
        self.writable = writable
        self.name = name
        #: For computed memory (the XDP context, whose 32-bit ``data`` field reads as a
        #: 64-bit pointer into the packet).
        self.reader = reader
        self.owner = owner

    @property
    def slot(self) -> int:
        """The region's number: its address >> 32, the provenance tag of pointers into it."""
        return self.base >> REGION_SHIFT

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

    def add_region(self, kind: RegionKind, buffer: bytearray | memoryview, *,
                   writable: bool = True,
                   name: str = "", start: int = 0, end: int | None = None,
                   reader: Reader | None = None, owner: Any = None) -> Region:
        if len(buffer) >= REGION_SPAN:
            raise ValueError("a region must be smaller than 4 GiB")
        slot = self._free.pop() if self._free else len(self._regions) + 1
        region = Region(kind, buffer, slot << REGION_SHIFT, writable=writable, name=name,
                        start=start, end=end, reader=reader, owner=owner)
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
            return region.reader(offset, size)[0]
        return int.from_bytes(region.buffer[offset:offset + size], "little")

    def load_tagged(self, address: int, size: int) -> tuple[int, int]:
        """``load``, with the provenance tag of the value: the region slot a pointer read from
        computed memory points into, else 0."""
        region, offset = self.resolve(address, size, False)
        if region.reader is not None:
            value, into = region.reader(offset, size)
            return value, (0 if into is None else into.base >> REGION_SHIFT)
        return int.from_bytes(region.buffer[offset:offset + size], "little"), 0

    def store(self, address: int, size: int, value: int) -> Region:
        """A little-endian store of the low ``size`` bytes of value; the region written."""
        region, offset = self.resolve(address, size, True)
        region.buffer[offset:offset + size] = (value & ((1 << (size * 8)) - 1)).to_bytes(
            size, "little")
        return region

    # --------------------------------------------------------------- provenance
    def tag_of(self, value: int) -> int:
        """The provenance tag of a pointer the host or a helper hands to a program: the slot
        of the region it points into; an address outside every region is an opaque object
        pointer (a map pointer) whose tag is the value itself; NULL is a number."""
        if not value:
            return 0
        slot = value >> REGION_SHIFT
        return slot if slot in self._regions else value

    def describe_tag(self, tag: int) -> str:
        """What a tag says a value was derived from, for fault messages."""
        if not tag:
            return "a number"
        if tag >= REGION_SPAN:
            return f"the object pointer {tag:#x}"
        region = self._regions.get(tag)
        return region.name or region.kind.value if region is not None else \
            f"region {tag}, no longer mapped"

    def provenance_fault(self, who: str, tag: int, address: int, size: int, write: bool,
                         context: str = "") -> ProvenanceFault:
        """The fault for an access by ``who`` (``R3``) whose address is not in the region its
        tag names."""
        if not tag:
            reason = f"{who} invalid mem access 'scalar': dereference of a number"
        else:
            target = self._regions.get(address >> REGION_SHIFT)
            reaches = "unmapped memory" if target is None else target.name or \
                target.kind.value
            reason = f"{who} derived from {self.describe_tag(tag)} reaches {reaches}"
        return ProvenanceFault(reason + context, address=address, size=size, write=write)

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
