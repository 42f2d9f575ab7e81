"""The device side of a split virtqueue: pop validated chains, push used buffers, notify.

Every guest-controlled value is checked in :meth:`DeviceQueue.pop` before it is used, in the
spirit of QEMU's ``virtqueue_pop``: the available index may run ahead by at most the queue size,
a head is below the queue size, every buffer lies inside guest memory, a chain visits at most
queue-size descriptors (so loops end), device-readable buffers never follow device-writable
ones, and indirect tables are well formed (2.7.5.3). Any violation raises one
:class:`~.ring.VirtqueueError` naming the field; the queue then stays broken and repeats that
error, so a device cannot be talked into processing past a corrupted ring. The only guest memory
the device writes is the used ring and, through :meth:`Chain.write`, device-writable buffers.

This runs once per packet, so the checks are written for speed without dropping any: the ring
areas were checked against guest memory when the queue was set up (the memory never changes
size), so ring fields and descriptor-table entries below the queue size are read straight from
the memory's buffer with precompiled structs; a buffer's ``addr`` (le64) and ``len`` (le32)
are never negative, so one comparison with the memory size checks its whole range; flags are
plain ints; and a chain of one direct descriptor, the common case, skips the general walk
after the very same checks.
"""

from __future__ import annotations

from .chain import Chain, Segment
from .errors import VirtioError
from .memory import GuestMemory
from .ring import (
    DESC,
    DESC_SIZE,
    U16,
    USED_ELEM,
    VIRTQ_DESC_F_INDIRECT,
    VIRTQ_DESC_F_NEXT,
    VIRTQ_DESC_F_WRITE,
    UsedFlags,
    VirtqueueError,
    VringLayout,
    vring_need_event,
)

MAX_CHAIN_BYTES = 1 << 32  # 2.7.5.2: a chain is not longer than 2**32 bytes in total
_NEXT, _WRITE, _INDIRECT = VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT
_CHAINED = _NEXT | _INDIRECT
_unpack_desc, _unpack_u16, _pack_u16 = DESC.unpack_from, U16.unpack_from, U16.pack_into
_pack_used = USED_ELEM.pack_into
_new = tuple.__new__  # builds a Segment or Chain without the named tuple's Python-level __new__

__all__ = ["Chain", "DeviceQueue", "MAX_CHAIN_BYTES", "Segment"]


def _name(indirect: bool, index: int) -> str:
    return f"{'indirect' if indirect else 'desc'}[{index}]"


class DeviceQueue:
    """Device view of one split virtqueue laid out at ``layout`` in ``memory``."""

    def __init__(self, memory: GuestMemory, layout: VringLayout, *, event_idx: bool = False,
                 indirect: bool = False) -> None:
        layout.validate(memory.size)
        self.memory = memory
        self.layout = layout
        self.event_idx = event_idx
        self.indirect = indirect
        self.last_avail_idx = 0  # next available-ring entry to consume (free-running)
        self.used_idx = 0  # the device's copy of used.idx (free-running)
        self._signalled_used = 0
        self._signalled_valid = False
        # head -> (descriptor-table entries its chain owns, its device-writable bytes)
        self._in_flight: dict[int, tuple[tuple[int, ...], int]] = {}
        self._busy: set[int] = set()  # descriptor-table entries owned by popped chains
        self.broken: VirtqueueError | None = None
        # Fixed by the validated layout: ring addresses and the limits the walk checks against.
        self._buf = memory.buffer
        self._mem_size = memory.size
        #: ranges inside the memory that are not guest RAM (a vhost-user front-end's holes):
        #: buffers and tables touching them are refused like buffers outside memory
        self._holes: tuple[tuple[int, int], ...] = getattr(memory, "holes", ())
        self._size = layout.size
        self._mask = layout.size - 1  # a power of two (2.7)
        self._desc = layout.desc
        self._avail_idx = layout.avail_idx
        self._avail_ring = layout.avail_ring(0)
        self._avail_event = layout.avail_event
        self._used_idx = layout.used_idx
        self._used_ring = layout.used_ring(0)

    @property
    def size(self) -> int:
        return self._size

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- consuming the available ring ---------------------------------------------------

    def pending(self) -> int:
        """How many available heads wait to be popped (validated like :meth:`pop`)."""
        self._check_usable()
        try:
            return self._pending()
        except VirtqueueError as err:
            self.broken = err
            raise

    def _pending(self) -> int:
        avail_idx = _unpack_u16(self._buf, self._avail_idx)[0]
        count = (avail_idx - self.last_avail_idx) & 0xFFFF
        if count > self._size:
            raise self._avail_idx_error(avail_idx, count)
        return count

    def _avail_idx_error(self, avail_idx: int, count: int) -> VirtqueueError:
        return VirtqueueError("avail.idx", f"the driver moved avail.idx to {avail_idx} while "
                              f"the device is at {self.last_avail_idx & 0xFFFF}: that is "
                              f"{count} buffers, more than the queue size {self._size}")

    def pop(self) -> Chain | None:
        """Take the next available chain, fully validated; ``None`` when the ring is empty."""
        if self.broken is not None:
            raise self.broken
        buf, size = self._buf, self._size
        try:
            last = self.last_avail_idx
            avail_idx = _unpack_u16(buf, self._avail_idx)[0]
            count = (avail_idx - last) & 0xFFFF
            if count > size:
                raise self._avail_idx_error(avail_idx, count)
            if not count:
                return None
            slot = last & self._mask
            head = _unpack_u16(buf, self._avail_ring + 2 * slot)[0]
            if head >= size:
                raise VirtqueueError(f"avail.ring[{slot}]", f"head {head} is not below the "
                                     f"queue size {size}")
            if head in self._in_flight:
                raise VirtqueueError(f"avail.ring[{slot}]", f"head {head} is still in use by "
                                     "the device")
            addr, length, flags, _ = _unpack_desc(buf, self._desc + DESC_SIZE * head)
            if flags & _CHAINED or head in self._busy:
                chain, used, writable_len = self._walk(head)
            else:  # one direct descriptor: the walk's checks for its only step
                if addr + length > self._mem_size or (self._holes and
                                                      self._in_hole(addr, length)):
                    raise self._outside("desc", head, addr, length)
                if flags & _WRITE:
                    chain = _new(Chain, (head, (), (_new(Segment, (addr, length)),), False))
                    writable_len = length
                else:
                    chain = _new(Chain, (head, (_new(Segment, (addr, length)),), (), False))
                    writable_len = 0
                used = (head,)
        except VirtqueueError as err:
            self.broken = err
            raise
        self.last_avail_idx = last = (last + 1) & 0xFFFF
        self._in_flight[head] = (used, writable_len)
        if len(used) == 1:
            self._busy.add(head)
        else:
            self._busy.update(used)
        if self.event_idx:
            # Ask to be notified when the driver makes the next buffer available (2.7.10).
            _pack_u16(buf, self._avail_event, last)
        return chain

    def _in_hole(self, addr: int, length: int) -> bool:
        end = addr + length
        return any(start < end and addr < stop for start, stop in self._holes)

    def _outside(self, prefix: str, index: int, addr: int, length: int) -> VirtqueueError:
        where = "in a hole of" if addr + length <= self._mem_size else "outside"
        return VirtqueueError(f"{prefix}[{index}].addr", f"buffer [{addr:#x}, +{length}) lies "
                              f"{where} guest memory of {self._mem_size} bytes")

    def _walk(self, head: int) -> tuple[Chain, tuple[int, ...], int]:
        """Follow a chain from ``head`` (2.7.5.2, 2.7.5.3), checking every rule on the way."""
        buf, size, mem_size, busy = self._buf, self._size, self._mem_size, self._busy
        readable: list[Segment] = []
        writable: list[Segment] = []
        used: list[int] = []
        table, entries = self._desc, size
        index = head
        steps = 0  # descriptors visited in the current table (loop guard)
        buffers = 0  # buffer descriptors in the whole chain (2.7.5.3.1: at most the queue size)
        total = 0
        writable_len = 0
        in_indirect = False
        while True:
            steps += 1
            if steps > entries:
                raise VirtqueueError(f"{_name(in_indirect, index)}.next", f"the chain visits "
                                     f"more than {entries} descriptors of one table: the next "
                                     "fields form a loop")
            if not in_indirect:
                if index in busy:
                    raise VirtqueueError(_name(False, index), f"descriptor {index} belongs to a "
                                         "chain the device has not returned yet")
                used.append(index)
            # In range: index < entries, and the table was checked against guest memory.
            addr, length, flags, nxt = _unpack_desc(buf, table + DESC_SIZE * index)
            if flags & _INDIRECT:
                self._check_indirect(_name(in_indirect, index), addr, length, flags,
                                     in_indirect)
                table, entries = addr, length // DESC_SIZE
                index, steps, in_indirect = 0, 0, True
                continue
            if addr + length > mem_size or (self._holes and self._in_hole(addr, length)):
                raise self._outside("indirect" if in_indirect else "desc", index, addr, length)
            buffers += 1
            if buffers > size:
                raise VirtqueueError(_name(in_indirect, index), f"the chain has more than {size} "
                                     "buffers, the queue size")
            total += length
            if total > MAX_CHAIN_BYTES:
                raise VirtqueueError(f"{_name(in_indirect, index)}.len", "the chain is longer "
                                     "than 2**32 bytes in total")
            if flags & _WRITE:
                writable.append(Segment(addr, length))
                writable_len += length
            elif writable:
                raise VirtqueueError(f"{_name(in_indirect, index)}.flags", "a device-readable "
                                     "descriptor follows a device-writable one")
            else:
                readable.append(Segment(addr, length))
            if not flags & _NEXT:
                break
            if nxt >= entries:
                raise VirtqueueError(f"{_name(in_indirect, index)}.next", f"next {nxt} is "
                                     f"outside the table of {entries} descriptors")
            index = nxt
        return (Chain(head, tuple(readable), tuple(writable), in_indirect), tuple(used),
                writable_len)

    def _check_indirect(self, field: str, addr: int, length: int, flags: int,
                        in_indirect: bool) -> None:
        if in_indirect:
            raise VirtqueueError(f"{field}.flags", "INDIRECT inside an indirect table (only one "
                                 "table per descriptor is allowed)")
        if not self.indirect:
            raise VirtqueueError(f"{field}.flags", "INDIRECT is set but VIRTIO_F_INDIRECT_DESC "
                                 "was not negotiated")
        if flags & _NEXT:
            raise VirtqueueError(f"{field}.flags", "INDIRECT and NEXT are both set; an indirect "
                                 "descriptor must end the chain")
        if length == 0 or length % DESC_SIZE:
            raise VirtqueueError(f"{field}.len", f"indirect table length {length} is not a "
                                 f"positive multiple of {DESC_SIZE}")
        if addr + length > self._mem_size or (self._holes and self._in_hole(addr, length)):
            raise VirtqueueError(f"{field}.addr", f"indirect table [{addr:#x}, +{length}) "
                                 f"lies outside guest memory of {self._mem_size} bytes")

    # -- returning buffers ---------------------------------------------------------------

    def push_used(self, head: int, written: int) -> None:
        """Return chain ``head`` with ``written`` bytes put in its device-writable buffers."""
        if self.broken is not None:
            raise self.broken
        entry = self._in_flight.get(head)
        if entry is None:
            raise VirtioError(f"push_used of head {head}, which the device has not popped")
        used, writable_len = entry
        if not 0 <= written <= writable_len:
            raise VirtioError(f"push_used of head {head} with {written} bytes written, but its "
                              f"device-writable buffers hold {writable_len} bytes")
        buf = self._buf
        _pack_used(buf, self._used_ring + 8 * (self.used_idx & self._mask), head, written)
        # 2.7.8: the element is complete before idx makes it visible.
        self.used_idx = used_idx = (self.used_idx + 1) & 0xFFFF
        _pack_u16(buf, self._used_idx, used_idx)
        del self._in_flight[head]
        if len(used) == 1:
            self._busy.discard(head)
        else:
            self._busy.difference_update(used)

    def needs_interrupt(self) -> bool:
        """Should the device send a used-buffer notification now? Resets the batch.

        Without VIRTIO_F_EVENT_IDX the driver's NO_INTERRUPT flag decides (2.7.7); with it,
        ``vring_need_event(used_event, new, old)`` over the entries pushed since the last
        notification (2.7.10).
        """
        self._check_usable()
        new, old = self.used_idx, self._signalled_used
        if new == old:
            return False
        if not self.event_idx:
            self._signalled_used, self._signalled_valid = new, True
            return not _unpack_u16(self._buf, self.layout.avail_flags)[0] & 1
        valid = self._signalled_valid
        self._signalled_used, self._signalled_valid = new, True
        event = _unpack_u16(self._buf, self.layout.used_event)[0]
        return not valid or vring_need_event(event, new, old)

    def set_notifications(self, enabled: bool) -> None:
        """Ask the driver to (not) notify on new available buffers (2.7.7, 2.7.10)."""
        self._check_usable()
        if self.event_idx:
            if enabled:
                self.memory.write_u16(self.layout.avail_event,
                                      self.memory.read_u16(self.layout.avail_idx))
            return
        self.memory.write_u16(self.layout.used_flags, 0 if enabled else UsedFlags.NO_NOTIFY)

    def _check_usable(self) -> None:
        if self.broken is not None:
            raise self.broken
