"""A first-fit allocator over guest memory, for the driver's rings, tables and buffers.

A guest kernel allocates virtqueue memory from its own page allocator; the driver model needs
the same: regions that do not overlap, with the alignment the split ring demands (16 for the
descriptor table, 4 for the used ring; virtio 1.2 section 2.7.2). Address 0 is never handed
out so that 0 can keep meaning "no buffer".

A driver allocates and frees buffers of the same few sizes per packet (a transmitted frame, an
indirect table), so freed regions are first kept aside by size and handed out again as they
are, like a slab cache in front of the page allocator; they go back into the first-fit list,
merged with their neighbours, whenever the list alone cannot satisfy a request.
"""

from __future__ import annotations

import bisect

from .memory import GuestMemory, GuestMemoryError

RECYCLED_BYTES = 1 << 20  # at most this much freed memory is kept aside; the rest goes back


class GuestAllocator:
    """Hands out aligned, non-overlapping regions of ``memory`` from ``start`` upward."""

    def __init__(self, memory: GuestMemory, start: int = 0x1000) -> None:
        if not 0 < start < memory.size:
            raise GuestMemoryError(f"allocator start {start:#x} is outside guest memory",
                                   addr=start, length=0)
        self.memory = memory
        self._free: list[tuple[int, int]] = [(start, memory.size - start)]  # sorted (addr, len)
        self._used: dict[int, int] = {}
        self._recycled: dict[int, list[int]] = {}  # size -> freed regions of that size
        self._recycled_bytes = 0

    @property
    def free_bytes(self) -> int:
        return sum(length for _, length in self._free) + self._recycled_bytes

    def alloc(self, size: int, align: int = 8, *, zero: bool = True) -> int:
        """Return the address of ``size`` fresh bytes aligned to ``align`` (a power of two)."""
        if size <= 0:
            raise GuestMemoryError(f"cannot allocate {size} bytes: the size must be positive",
                                   addr=0, length=size)
        if align <= 0 or align & (align - 1):
            raise GuestMemoryError(f"alignment {align} is not a power of two", addr=0, length=size)
        start = self._reuse(size, align)
        if start is None:
            start = self._first_fit(size, align)
            if start is None and self._recycled:
                self._give_back()
                start = self._first_fit(size, align)
            if start is None:
                raise GuestMemoryError(
                    f"out of guest memory: no free region of {size} bytes aligned to {align} "
                    f"({self.free_bytes} bytes free in total)", addr=0, length=size)
        self._used[start] = size
        if zero:
            self.memory.fill(start, size)
        return start

    def _reuse(self, size: int, align: int) -> int | None:
        addrs = self._recycled.get(size)
        if not addrs:
            return None
        for i in range(len(addrs) - 1, -1, -1):
            if not addrs[i] & (align - 1):
                self._recycled_bytes -= size
                return addrs.pop(i)
        return None

    def _first_fit(self, size: int, align: int) -> int | None:
        for i, (addr, length) in enumerate(self._free):
            if length < size:
                continue
            start = (addr + align - 1) & ~(align - 1)
            end = start + size
            if end > addr + length:
                continue
            pieces = []
            if start > addr:
                pieces.append((addr, start - addr))
            if end < addr + length:
                pieces.append((end, addr + length - end))
            self._free[i:i + 1] = pieces
            return start
        return None

    def free(self, addr: int) -> None:
        """Give back a region returned by :meth:`alloc`."""
        size = self._used.pop(addr, None)
        if size is None:
            raise GuestMemoryError(f"free of {addr:#x}, which is not an allocated region",
                                   addr=addr, length=0)
        if self._recycled_bytes + size <= RECYCLED_BYTES:
            self._recycled.setdefault(size, []).append(addr)
            self._recycled_bytes += size
        else:
            self._release(addr, size)

    def _give_back(self) -> None:
        """Every recycled region back into the first-fit list, merged with its neighbours."""
        recycled, self._recycled, self._recycled_bytes = self._recycled, {}, 0
        for size, addrs in recycled.items():
            for addr in addrs:
                self._release(addr, size)

    def _release(self, addr: int, size: int) -> None:
        i = bisect.bisect_left(self._free, (addr, 0))
        self._free.insert(i, (addr, size))
        # Merge with the right, then the left neighbour.
        if i + 1 < len(self._free) and addr + size == self._free[i + 1][0]:
            self._free[i] = (addr, size + self._free[i + 1][1])
            del self._free[i + 1]
        if i > 0 and self._free[i - 1][0] + self._free[i - 1][1] == addr:
            prev_addr, prev_len = self._free[i - 1]
            self._free[i - 1] = (prev_addr, prev_len + self._free[i][1])
            del self._free[i]
