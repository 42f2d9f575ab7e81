"""The driver side of a split virtqueue: add buffers, decide on kicks, collect used buffers.

Mirrors what a guest kernel does (virtio 1.2 sections 2.7.13 and 2.7.14): descriptors come from
a free list the driver keeps privately, chains are written to the descriptor table (or to an
indirect table when VIRTIO_F_INDIRECT_DESC is negotiated), the head goes into the available
ring and ``avail.idx`` is published. The driver distrusts the device as much as the device
distrusts the driver: used entries naming unknown heads or overlong lengths are refused with a
:class:`~.ring.VirtqueueError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .allocator import GuestAllocator
from .errors import VirtioError
from .memory import GuestMemory
from .ring import AVAIL_ALIGN, DESC_ALIGN, DESC_SIZE, USED_ALIGN, AvailFlags, Descriptor, \
    DescFlags, UsedFlags, VirtqueueError, VringLayout, is_valid_queue_size, vring_need_event

Buffer = tuple[int, int]  # (guest address, length)


class QueueFullError(VirtioError):
    """Not enough free descriptors for the buffers being added (Linux returns ENOSPC)."""


@dataclass(frozen=True, slots=True)
class UsedBuffer:
    """A chain the device returned: its head and the bytes it wrote (``virtq_used_elem``)."""

    head: int
    length: int


@dataclass(slots=True)
class _Outstanding:
    descs: tuple[int, ...]
    indirect_table: int | None
    in_len: int


class DriverQueue:
    """Driver view of one split virtqueue laid out at ``layout`` in ``memory``."""

    def __init__(self, memory: GuestMemory, layout: VringLayout, *, event_idx: bool = False,
                 indirect: bool = False, allocator: GuestAllocator | None = None) -> None:
        layout.validate(memory.size)
        self.memory = memory
        self.layout = layout
        self.event_idx = event_idx
        self.indirect = indirect and allocator is not None
        self.allocator = allocator
        for _, addr, length, _ in layout.areas():
            memory.fill(addr, length)
        self._free = list(range(layout.size - 1, -1, -1))  # pop() hands out 0, 1, 2, ...
        self._outstanding: dict[int, _Outstanding] = {}
        self.avail_idx = 0  # the driver's copy of avail.idx
        self.last_used_idx = 0
        self._num_added = 0

    @classmethod
    def allocate(cls, allocator: GuestAllocator, size: int, *, event_idx: bool = False,
                 indirect: bool = False) -> DriverQueue:
        """Allocate the three ring areas for ``size`` entries and set up the queue."""
        if not is_valid_queue_size(size):
            raise VirtioError(f"queue size {size} is not a power of two between 1 and 32768")
        layout = VringLayout(
            size,
            allocator.alloc(VringLayout.desc_bytes(size), DESC_ALIGN),
            allocator.alloc(VringLayout.avail_bytes(size), AVAIL_ALIGN),
            allocator.alloc(VringLayout.used_bytes(size), USED_ALIGN))
        return cls(allocator.memory, layout, event_idx=event_idx, indirect=indirect,
                   allocator=allocator)

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    # -- adding buffers -------------------------------------------------------------------

    def add_buffer(self, out_bufs: Sequence[Buffer], in_bufs: Sequence[Buffer] = (), *,
                   indirect: bool | None = None) -> int:
        """Expose device-readable ``out_bufs`` then device-writable ``in_bufs``; return the head.

        ``indirect=None`` uses an indirect table when it is negotiated and the chain has more
        than one buffer (as Linux does); ``True`` insists on one, ``False`` forbids it.
        """
        bufs = [(addr, length, 0) for addr, length in out_bufs]
        bufs += [(addr, length, DescFlags.WRITE) for addr, length in in_bufs]
        if not bufs:
            raise VirtioError("a chain needs at least one buffer")
        if len(bufs) > self.size:
            raise VirtioError(f"a chain of {len(bufs)} buffers is longer than the queue size "
                              f"{self.size}")
        for addr, length, _ in bufs:
            if not 0 <= length <= 0xFFFFFFFF or not self.memory.contains(addr, length):
                raise VirtioError(f"buffer [{addr:#x}, +{length}) is not inside guest memory")
        if indirect is None:
            indirect = self.indirect and len(bufs) > 1
        if indirect and not self.indirect:
            raise VirtioError("indirect descriptors need VIRTIO_F_INDIRECT_DESC and an allocator")
        needed = 1 if indirect else len(bufs)
        if needed > len(self._free):
            raise QueueFullError(f"the queue has {len(self._free)} free descriptors, the chain "
                                 f"needs {needed}")
        in_len = sum(length for _, length, flags in bufs if flags)
        table = None
        if indirect:
            assert self.allocator is not None
            table = self.allocator.alloc(DESC_SIZE * len(bufs), DESC_ALIGN)
            self._write_chain(table, list(range(len(bufs))), bufs)
            head = self._free.pop()
            self.memory.write(self.layout.desc_addr(head), Descriptor(
                table, DESC_SIZE * len(bufs), DescFlags.INDIRECT, 0).encode())
            descs: tuple[int, ...] = (head,)
        else:
            descs = tuple(self._free.pop() for _ in bufs)
            self._write_chain(self.layout.desc, list(descs), bufs)
            head = descs[0]
        self._outstanding[head] = _Outstanding(descs, table, in_len)
        self.memory.write_u16(self.layout.avail_ring(self.avail_idx % self.size), head)
        # 2.7.13.3: the ring entry is written before idx makes it visible.
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.memory.write_u16(self.layout.avail_idx, self.avail_idx)
        self._num_added += 1
        return head

    def _write_chain(self, table: int, indices: list[int],
                     bufs: list[tuple[int, int, int]]) -> None:
        for pos, (index, (addr, length, flags)) in enumerate(zip(indices, bufs)):
            last = pos == len(bufs) - 1
            desc = Descriptor(addr, length, flags | (0 if last else DescFlags.NEXT),
                              0 if last else indices[pos + 1])
            self.memory.write(table + DESC_SIZE * index, desc.encode())

    def kick_prepare(self) -> bool:
        """After a batch of :meth:`add_buffer`: must the driver notify the device? (2.7.13.4)

        With VIRTIO_F_EVENT_IDX: ``vring_need_event(avail_event, new, old)``; without it:
        unless the device set NO_NOTIFY in ``used.flags``. Starts a new batch.
        """
        new = self.avail_idx
        old = (new - self._num_added) & 0xFFFF
        self._num_added = 0
        if new == old:
            return False
        if self.event_idx:
            return vring_need_event(self.memory.read_u16(self.layout.avail_event), new, old)
        return not self.memory.read_u16(self.layout.used_flags) & UsedFlags.NO_NOTIFY

    # -- collecting used buffers ----------------------------------------------------------

    def has_used(self) -> bool:
        used_idx = self.memory.read_u16(self.layout.used_idx)
        ahead = (used_idx - self.last_used_idx) & 0xFFFF
        if ahead > len(self._outstanding):
            raise VirtqueueError("used.idx", f"the device moved used.idx to {used_idx}, "
                                 f"{ahead} entries ahead, but only {len(self._outstanding)} "
                                 "buffers are outstanding")
        return ahead > 0

    def get_used(self) -> UsedBuffer | None:
        """Take the next used buffer and free its descriptors; ``None`` when there is none."""
        if not self.has_used():
            return None
        slot = self.last_used_idx % self.size
        addr = self.layout.used_ring(slot)
        head, length = self.memory.read_u32(addr), self.memory.read_u32(addr + 4)
        entry = self._outstanding.get(head)
        if entry is None:
            raise VirtqueueError(f"used.ring[{slot}].id", f"{head} is not the head of a chain "
                                 "the driver made available")
        if length > entry.in_len:
            raise VirtqueueError(f"used.ring[{slot}].len", f"the device claims {length} bytes "
                                 f"written, but the chain has {entry.in_len} writable bytes")
        del self._outstanding[head]
        self._free.extend(reversed(entry.descs))
        if entry.indirect_table is not None and self.allocator is not None:
            self.allocator.free(entry.indirect_table)
        self.last_used_idx = (self.last_used_idx + 1) & 0xFFFF
        return UsedBuffer(head, length)

    def disable_interrupts(self) -> None:
        """Ask the device not to send used-buffer notifications (2.7.7)."""
        if self.event_idx:
            # An event index half the ring space away is never crossed before re-enabling.
            self.memory.write_u16(self.layout.used_event, self.last_used_idx + 0x8000)
        else:
            self.memory.write_u16(self.layout.avail_flags, AvailFlags.NO_INTERRUPT)

    def enable_interrupts(self) -> bool:
        """Re-enable notifications; True if used buffers already wait (poll them first)."""
        if self.event_idx:
            self.memory.write_u16(self.layout.used_event, self.last_used_idx)
        else:
            self.memory.write_u16(self.layout.avail_flags, 0)
        return self.has_used()

    def set_used_event(self, idx: int) -> None:
        """Request a notification once the device's used.idx passes ``idx`` (EVENT_IDX only)."""
        if not self.event_idx:
            raise VirtioError("used_event is only meaningful with VIRTIO_F_EVENT_IDX")
        self.memory.write_u16(self.layout.used_event, idx)
