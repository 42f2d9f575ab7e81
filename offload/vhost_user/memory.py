"""Guest memory shared by a vhost-user front-end: regions mapped from their file descriptors.

SET_MEM_TABLE names up to 8 regions, each with its guest-physical base, its base in the
front-end's address space (the user address vring addresses are given in), its size and its
offset in the file descriptor sent beside it. This back-end maps guest memory as one linear
window - guest-physical address ``a`` at window offset ``a`` - which is what QEMU gives for a
guest whose RAM is one shared memory backend (``-object memory-backend-memfd,share=on``): every
region comes from the same file, at file offset ``guest address + delta`` for one ``delta``.
Other layouts are refused with the reason. The holes between regions (the PC's VGA window,
for one) lie inside the window but are not guest RAM: every address the guest gives is checked
against the regions, never only against the window (:meth:`GuestRam.in_regions`).

While the front-end asks for dirty logging (VHOST_F_LOG_ALL, for live migration), every write
the device makes into guest memory marks its 4 KiB pages in the shared log bitmap
(:meth:`GuestRam.log_write`), so the front-end copies them again.
"""

from __future__ import annotations

import mmap
import os
import stat
from collections.abc import Sequence

from ..virtio.memory import GuestMemory, GuestMemoryError
from .protocol import LOG_PAGE, LogArea, Region, VhostUserError

#: The largest guest this back-end maps (the window spans guest-physical 0 to the last region).
MAX_WINDOW = 64 << 30


def _file_id(fd: int) -> tuple[int, int, int]:
    try:
        info = os.fstat(fd)
    except OSError as err:
        raise VhostUserError(f"a memory region's descriptor cannot be examined: {err}") from None
    if not stat.S_ISREG(info.st_mode):
        raise VhostUserError("a memory region's descriptor is not a memory file (memfd, "
                             "hugetlbfs or shared-memory file) that can be mapped")
    return info.st_dev, info.st_ino, info.st_size


def check_table(regions: Sequence[Region], fds: Sequence[int]) -> tuple[int, int]:
    """Validate a memory table against its descriptors; return (delta, window size).

    Refused: a descriptor count other than the region count, empty or overflowing regions,
    regions that overlap in guest or user addresses, regions from different files or not laid
    out linearly in one file, a region past the end of its file, a window over MAX_WINDOW.
    """
    if len(fds) != len(regions):
        raise VhostUserError(f"VHOST_USER_SET_MEM_TABLE: {len(regions)} regions came with "
                             f"{len(fds)} file descriptors")
    ids = [_file_id(fd) for fd in fds]
    if len({(dev, inode) for dev, inode, _ in ids}) != 1:
        raise VhostUserError("VHOST_USER_SET_MEM_TABLE: the regions come from several memory "
                             "files; this back-end maps guest RAM from one shared memory "
                             "backend")
    deltas = {r.mmap_offset - r.guest_addr for r in regions}
    if len(deltas) != 1:
        raise VhostUserError("VHOST_USER_SET_MEM_TABLE: the regions are not laid out linearly "
                             "in their file (guest address minus file offset differs)")
    delta = deltas.pop()
    if delta < 0 or delta % mmap.ALLOCATIONGRANULARITY:
        raise VhostUserError(f"VHOST_USER_SET_MEM_TABLE: guest address 0 lies at file offset "
                             f"{delta}, which cannot be mapped (negative or not page-aligned)")
    end = 0
    for i, region in enumerate(regions):
        if region.size == 0 or region.guest_addr + region.size > 1 << 64 or \
                region.user_addr + region.size > 1 << 64:
            raise VhostUserError(f"VHOST_USER_SET_MEM_TABLE: region {i} is empty or wraps "
                                 f"around the address space")
        end = max(end, region.guest_addr + region.size)
        size = ids[i][2]
        if region.mmap_offset + region.size > size:
            raise VhostUserError(f"VHOST_USER_SET_MEM_TABLE: region {i} ends at file offset "
                                 f"{region.mmap_offset + region.size:#x}, past its file's "
                                 f"{size:#x} bytes")
    for key in ("guest_addr", "user_addr"):
        spans = sorted((getattr(r, key), getattr(r, key) + r.size) for r in regions)
        for (_, first_end), (start, _) in zip(spans, spans[1:]):
            if start < first_end:
                what = "guest" if key == "guest_addr" else "user"
                raise VhostUserError(f"VHOST_USER_SET_MEM_TABLE: regions overlap in {what} "
                                     f"addresses at {start:#x}")
    if end > MAX_WINDOW:
        raise VhostUserError(f"VHOST_USER_SET_MEM_TABLE: guest RAM reaches {end:#x}, beyond "
                             f"the {MAX_WINDOW >> 30} GiB this back-end maps")
    return delta, end


class GuestRam(GuestMemory):
    """The front-end's guest memory, mapped: a :class:`GuestMemory` whose buffer is the
    shared mapping, so the split-virtqueue code runs over it unchanged."""

    __slots__ = ("regions", "_map", "_holes", "_log", "_log_size")

    def __init__(self, regions: Sequence[Region], fds: Sequence[int]) -> None:
        delta, end = check_table(regions, fds)
        try:
            self._map = mmap.mmap(fds[0], end, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=delta)
        except (OSError, ValueError) as err:
            raise VhostUserError(f"VHOST_USER_SET_MEM_TABLE: the guest memory cannot be "
                                 f"mapped: {err}") from None
        self._buf = self._map  # type: ignore[assignment]  # an mmap is a writable buffer too
        self._view = memoryview(self._map)
        self._size = end
        self.regions = tuple(sorted(regions, key=lambda r: r.guest_addr))
        holes = []
        cursor = 0
        for region in self.regions:
            if region.guest_addr > cursor:
                holes.append((cursor, region.guest_addr))
            cursor = region.guest_addr + region.size
        self._holes = tuple(holes)
        self._log: mmap.mmap | None = None
        self._log_size = 0

    @property
    def holes(self) -> tuple[tuple[int, int], ...]:
        """Guest-physical ranges inside the window that no region covers."""
        return self._holes

    def in_regions(self, addr: int, length: int) -> bool:
        """``[addr, addr + length)`` lies inside the window and touches no hole."""
        if addr < 0 or length < 0 or addr + length > self._size:
            return False
        end = addr + length
        return not any(start < end and addr < stop for start, stop in self._holes)

    def user_to_guest(self, user_addr: int, length: int, what: str) -> int:
        """The guest address of a front-end (user) address range that lies in one region."""
        for region in self.regions:
            offset = user_addr - region.user_addr
            if 0 <= offset and offset + length <= region.size:
                return region.guest_addr + offset
        raise VhostUserError(f"{what}: the user address range [{user_addr:#x}, +{length}) lies "
                             f"in no memory region")

    # -- dirty logging --------------------------------------------------------------------
    def set_log(self, area: LogArea | None, fd: int | None) -> None:
        """Map the front-end's dirty bitmap (SET_LOG_BASE with LOG_SHMFD), or drop it."""
        if self._log is not None:
            self._log.close()
            self._log = None
        if area is None or fd is None:
            return
        pages = (self._size + LOG_PAGE - 1) // LOG_PAGE
        if area.size * 8 < pages:
            raise VhostUserError(f"VHOST_USER_SET_LOG_BASE: a {area.size}-byte log covers "
                                 f"{area.size * 8} pages; guest memory has {pages}")
        if area.offset % mmap.ALLOCATIONGRANULARITY or area.size > MAX_WINDOW // LOG_PAGE:
            raise VhostUserError("VHOST_USER_SET_LOG_BASE: the log's offset is not page-aligned "
                                 "or its size is absurd")
        try:
            self._log = mmap.mmap(fd, area.size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=area.offset)
        except (OSError, ValueError) as err:
            raise VhostUserError(f"VHOST_USER_SET_LOG_BASE: the log cannot be mapped: "
                                 f"{err}") from None
        self._log_size = area.size

    @property
    def logging(self) -> bool:
        return self._log is not None

    def log_write(self, addr: int, length: int) -> None:
        """Mark the pages of ``[addr, addr + length)`` dirty in the shared bitmap."""
        log = self._log
        if log is None or length <= 0:
            return
        first, last = addr // LOG_PAGE, (addr + length - 1) // LOG_PAGE
        for page in range(first, last + 1):
            byte = page >> 3
            if byte < self._log_size:
                log[byte] |= 1 << (page & 7)

    def write(self, addr: int, data: bytes | bytearray | memoryview) -> None:
        length = len(data)
        if not self.in_regions(addr, length):
            raise GuestMemoryError(f"write of {length} bytes at {addr:#x} lies outside guest "
                                   f"RAM", addr=addr, length=length)
        self._map[addr:addr + length] = data
        if self._log is not None:
            self.log_write(addr, length)

    def read(self, addr: int, length: int) -> bytes:
        if not self.in_regions(addr, length):
            raise GuestMemoryError(f"read of {length} bytes at {addr:#x} lies outside guest "
                                   f"RAM", addr=addr, length=length)
        return bytes(self._view[addr:addr + length])

    def close(self) -> None:
        self.set_log(None, None)
        self._view.release()
        self._map.close()
