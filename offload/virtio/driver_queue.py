"""The driver side of a split virtqueue: add buffers, decide on kicks, collect used buffers.

Mirrors what a guest kernel does (virtio 1.2 sections 2.7.13 and 2.7.14): descriptors come from
a free list the driver keeps privately, chains are written to the descriptor table (or to an
indirect table when VIRTIO_F_INDIRECT_DESC is negotiated), the head goes into the available
ring and ``avail.idx`` is published. The driver distrusts the device as much as the device
distrusts the driver: used entries naming unknown heads or overlong lengths are refused with a
:class:`~.ring.VirtqueueError`.

The per-packet operations (adding one buffer, collecting a used one) read and write the rings
through the memory's buffer with precompiled structs: the ring areas were checked against guest
memory when the queue was set up, and buffers are checked with one range comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .allocator import GuestAllocator
from .errors import VirtioError
from .memory import GuestMemory
from .ring import (
    AVAIL_ALIGN,
    DESC,
    DESC_ALIGN,
    DESC_SIZE,
    U16,
    USED_ALIGN,
    USED_ELEM,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
    AvailFlags,
    UsedFlags,
    VirtqueueError,
    VringLayout,
    is_valid_queue_size,
    vring_need_event,
)

Buffer = tuple[int, int]  # (guest address, length)
_NEXT, _WRITE, _INDIRECT = VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT
_NO_NOTIFY = int(UsedFlags.NO_NOTIFY)
_pack_desc, _pack_u16, _unpack_u16 = DESC.pack_into, U16.pack_into, U16.unpack_from
_unpack_used = USED_ELEM.unpack_from
_new = tuple.__new__  # builds a UsedBuffer without the named tuple's Python-level __new__


class QueueFullError(VirtioError):
    """Not enough free descriptors for the buffers being added (Linux returns ENOSPC)."""


class UsedBuffer(NamedTuple):
    """A chain the device returned: its head and the bytes it wrote (``virtq_used_elem``).

    A named tuple: one is made per packet, and a tuple is cheaper to build than a frozen
    dataclass while just as immutable.
    """

    head: int
    length: int


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
        # head -> (its descriptors, its indirect table or None, its device-writable bytes)
        self._outstanding: dict[int, tuple[tuple[int, ...], int | None, int]] = {}
        self.avail_idx = 0  # the driver's copy of avail.idx
        self.last_used_idx = 0
        self._num_added = 0
        # Fixed by the validated layout.
        self._buf = memory.buffer
        self._mem_size = memory.size
        self._size = layout.size
        self._mask = layout.size - 1  # a power of two (2.7)
        self._desc = layout.desc
        self._avail_idx = layout.avail_idx
        self._avail_ring = layout.avail_ring(0)
        self._used_idx = layout.used_idx
        self._used_ring = layout.used_ring(0)
        self._avail_event = layout.avail_event

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
        return self._size

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
        if len(out_bufs) + len(in_bufs) == 1 and not indirect:
            if out_bufs:
                return self._add_one(*out_bufs[0], 0)
            return self._add_one(*in_bufs[0], _WRITE)
        bufs = [(addr, length, 0) for addr, length in out_bufs]
        bufs += [(addr, length, _WRITE) for addr, length in in_bufs]
        if not bufs:
            raise VirtioError("a chain needs at least one buffer")
        if len(bufs) > self._size:
            raise VirtioError(f"a chain of {len(bufs)} buffers is longer than the queue size "
                              f"{self._size}")
        for addr, length, _ in bufs:
            self._check_buffer(addr, length)
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
            _pack_desc(self._buf, self._desc + DESC_SIZE * head, table, DESC_SIZE * len(bufs),
                       _INDIRECT, 0)
            descs: tuple[int, ...] = (head,)
        else:
            descs = tuple(self._free.pop() for _ in bufs)
            self._write_chain(self._desc, list(descs), bufs)
            head = descs[0]
        self._outstanding[head] = (descs, table, in_len)
        self._publish(head)
        return head

    def add_outbuf(self, addr: int, length: int) -> int:
        """One device-readable buffer in one descriptor (Linux's ``virtqueue_add_outbuf``)."""
        return self._add_one(addr, length, 0)

    def add_inbuf(self, addr: int, length: int) -> int:
        """One device-writable buffer in one descriptor (Linux's ``virtqueue_add_inbuf``)."""
        return self._add_one(addr, length, _WRITE)

    def _add_one(self, addr: int, length: int, flags: int) -> int:
        """A chain of one direct descriptor: the per-packet case, kept short."""
        if not 0 <= length <= 0xFFFFFFFF or addr < 0 or addr + length > self._mem_size:
            raise self._bad_buffer(addr, length)
        if not self._free:
            raise QueueFullError("the queue has 0 free descriptors, the chain needs 1")
        head = self._free.pop()
        buf = self._buf
        _pack_desc(buf, self._desc + DESC_SIZE * head, addr, length, flags, 0)
        self._outstanding[head] = ((head,), None, length if flags else 0)
        # As _publish, inline.
        _pack_u16(buf, self._avail_ring + 2 * (self.avail_idx & self._mask), head)
        self.avail_idx = avail_idx = (self.avail_idx + 1) & 0xFFFF
        _pack_u16(buf, self._avail_idx, avail_idx)
        self._num_added += 1
        return head

    def _publish(self, head: int) -> None:
        buf = self._buf
        _pack_u16(buf, self._avail_ring + 2 * (self.avail_idx & self._mask), head)
        # 2.7.13.3: the ring entry is written before idx makes it visible.
        self.avail_idx = avail_idx = (self.avail_idx + 1) & 0xFFFF
        _pack_u16(buf, self._avail_idx, avail_idx)
        self._num_added += 1

    def _check_buffer(self, addr: int, length: int) -> None:
        if not 0 <= length <= 0xFFFFFFFF or addr < 0 or addr + length > self._mem_size:
            raise self._bad_buffer(addr, length)

    @staticmethod
    def _bad_buffer(addr: int, length: int) -> VirtioError:
        return VirtioError(f"buffer [{addr:#x}, +{length}) is not inside guest memory")

    def _write_chain(self, table: int, indices: list[int],
                     bufs: list[tuple[int, int, int]]) -> None:
        last = len(bufs) - 1
        for pos, (index, (addr, length, flags)) in enumerate(zip(indices, bufs)):
            if pos == last:
                self.memory.write(table + DESC_SIZE * index, DESC.pack(addr, length, flags, 0))
            else:
                self.memory.write(table + DESC_SIZE * index, DESC.pack(
                    addr, length, flags | _NEXT, indices[pos + 1]))

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
            return vring_need_event(_unpack_u16(self._buf, self._avail_event)[0], new, old)
        return not _unpack_u16(self._buf, self.layout.used_flags)[0] & _NO_NOTIFY

    # -- collecting used buffers ----------------------------------------------------------

    def has_used(self) -> bool:
        return self._used_ahead() > 0

    def _used_ahead(self) -> int:
        used_idx = _unpack_u16(self._buf, self._used_idx)[0]
        ahead = (used_idx - self.last_used_idx) & 0xFFFF
        if ahead > len(self._outstanding):
            raise VirtqueueError("used.idx", f"the device moved used.idx to {used_idx}, "
                                 f"{ahead} entries ahead, but only {len(self._outstanding)} "
                                 "buffers are outstanding")
        return ahead

    def get_used(self) -> UsedBuffer | None:
        """Take the next used buffer and free its descriptors; ``None`` when there is none."""
        buf, last = self._buf, self.last_used_idx
        used_idx = _unpack_u16(buf, self._used_idx)[0]
        if used_idx == last:
            return None
        if (used_idx - last) & 0xFFFF > len(self._outstanding):
            self._used_ahead()  # raises, naming the field
        slot = last & self._mask
        head, length = _unpack_used(buf, self._used_ring + 8 * slot)
        entry = self._outstanding.get(head)
        if entry is None:
            raise VirtqueueError(f"used.ring[{slot}].id", f"{head} is not the head of a chain "
                                 "the driver made available")
        descs, table, in_len = entry
        if length > in_len:
            raise VirtqueueError(f"used.ring[{slot}].len", f"the device claims {length} bytes "
                                 f"written, but the chain has {in_len} writable bytes")
        del self._outstanding[head]
        if len(descs) == 1:
            self._free.append(head)
        else:
            self._free.extend(reversed(descs))
        if table is not None and self.allocator is not None:
            self.allocator.free(table)
        self.last_used_idx = (last + 1) & 0xFFFF
        return _new(UsedBuffer, (head, length))

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
