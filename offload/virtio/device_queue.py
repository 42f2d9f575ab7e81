"""The device side of a split virtqueue: pop validated chains, push used buffers, notify.

Every guest-controlled value is checked in :meth:`DeviceQueue.pop` before it is used, in the
spirit of QEMU's ``virtqueue_pop``: the available index may run ahead by at most the queue size,
a head is below the queue size, every buffer lies inside guest memory, a chain visits at most
queue-size descriptors (so loops end), device-readable buffers never follow device-writable
ones, and indirect tables are well formed (2.7.5.3). Any violation raises one
:class:`~.ring.VirtqueueError` naming the field; the queue then stays broken and repeats that
error, so a device cannot be talked into processing past a corrupted ring. The only guest memory
the device writes is the used ring and, through :meth:`Chain.write`, device-writable buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import VirtioError
from .memory import GuestMemory
from .ring import DESC_SIZE, Descriptor, DescFlags, UsedFlags, VirtqueueError, VringLayout, \
    vring_need_event

MAX_CHAIN_BYTES = 1 << 32  # 2.7.5.2: a chain is not longer than 2**32 bytes in total


@dataclass(frozen=True, slots=True)
class Segment:
    """One buffer of a chain: ``length`` bytes at guest address ``addr``."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class Chain:
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
        return sum(s.length for s in self.writable)

    def read(self, memory: GuestMemory, limit: int | None = None) -> bytes:
        """Gather the device-readable bytes (at most ``limit``) in chain order."""
        out = bytearray()
        for seg in self.readable:
            take = seg.length if limit is None else min(seg.length, limit - len(out))
            out += memory.read(seg.addr, take)
            if limit is not None and len(out) >= limit:
                break
        return bytes(out)

    def write(self, memory: GuestMemory, data: bytes) -> int:
        """Scatter ``data`` over the device-writable buffers; return the bytes written."""
        if len(data) > self.writable_len:
            raise VirtioError(f"cannot write {len(data)} bytes into chain {self.head}: its "
                              f"device-writable buffers hold only {self.writable_len} bytes")
        done = 0
        for seg in self.writable:
            if done == len(data):
                break
            take = min(seg.length, len(data) - done)
            memory.write(seg.addr, data[done:done + take])
            done += take
        return done


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
        self._in_flight: dict[int, tuple[Chain, frozenset[int]]] = {}
        self._busy: set[int] = set()  # descriptor-table entries owned by popped chains
        self.broken: VirtqueueError | None = None

    @property
    def size(self) -> int:
        return self.layout.size

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
        avail_idx = self.memory.read_u16(self.layout.avail_idx)
        count = (avail_idx - self.last_avail_idx) & 0xFFFF
        if count > self.size:
            raise VirtqueueError("avail.idx", f"the driver moved avail.idx to {avail_idx} while "
                                 f"the device is at {self.last_avail_idx & 0xFFFF}: that is "
                                 f"{count} buffers, more than the queue size {self.size}")
        return count

    def pop(self) -> Chain | None:
        """Take the next available chain, fully validated; ``None`` when the ring is empty."""
        self._check_usable()
        try:
            if not self._pending():
                return None
            slot = self.last_avail_idx % self.size
            head = self.memory.read_u16(self.layout.avail_ring(slot))
            field = f"avail.ring[{slot}]"
            if head >= self.size:
                raise VirtqueueError(field, f"head {head} is not below the queue size {self.size}")
            if head in self._in_flight:
                raise VirtqueueError(field, f"head {head} is still in use by the device")
            chain, used = self._walk(head)
        except VirtqueueError as err:
            self.broken = err
            raise
        self.last_avail_idx = (self.last_avail_idx + 1) & 0xFFFF
        self._in_flight[head] = (chain, frozenset(used))
        self._busy |= used
        if self.event_idx:
            # Ask to be notified when the driver makes the next buffer available (2.7.10).
            self.memory.write_u16(self.layout.avail_event, self.last_avail_idx)
        return chain

    def _walk(self, head: int) -> tuple[Chain, set[int]]:
        readable: list[Segment] = []
        writable: list[Segment] = []
        used: set[int] = set()
        table, entries, prefix = self.layout.desc, self.size, "desc"
        index = head
        steps = 0  # descriptors visited in the current table (loop guard)
        buffers = 0  # buffer descriptors in the whole chain (2.7.5.3.1: at most the queue size)
        total = 0
        in_indirect = False
        while True:
            field = f"{prefix}[{index}]"
            steps += 1
            if steps > entries:
                raise VirtqueueError(f"{field}.next", f"the chain visits more than {entries} "
                                     "descriptors of one table: the next fields form a loop")
            if not in_indirect:
                if index in self._busy:
                    raise VirtqueueError(field, f"descriptor {index} belongs to a chain the "
                                         "device has not returned yet")
                used.add(index)
            desc = Descriptor.decode(self.memory.read(table + DESC_SIZE * index, DESC_SIZE))
            if desc.flags & DescFlags.INDIRECT:
                self._check_indirect(field, desc, in_indirect)
                table, entries, prefix = desc.addr, desc.len // DESC_SIZE, "indirect"
                index, steps, in_indirect = 0, 0, True
                continue
            if not self.memory.contains(desc.addr, desc.len):
                raise VirtqueueError(f"{field}.addr", f"buffer [{desc.addr:#x}, +{desc.len}) "
                                     f"lies outside guest memory of {self.memory.size} bytes")
            buffers += 1
            if buffers > self.size:
                raise VirtqueueError(field, f"the chain has more than {self.size} buffers, the "
                                     "queue size")
            total += desc.len
            if total > MAX_CHAIN_BYTES:
                raise VirtqueueError(f"{field}.len", "the chain is longer than 2**32 bytes in "
                                     "total")
            if desc.flags & DescFlags.WRITE:
                writable.append(Segment(desc.addr, desc.len))
            elif writable:
                raise VirtqueueError(f"{field}.flags", "a device-readable descriptor follows a "
                                     "device-writable one")
            else:
                readable.append(Segment(desc.addr, desc.len))
            if not desc.flags & DescFlags.NEXT:
                break
            if desc.next >= entries:
                raise VirtqueueError(f"{field}.next", f"next {desc.next} is outside the table of "
                                     f"{entries} descriptors")
            index = desc.next
        return Chain(head, tuple(readable), tuple(writable), in_indirect), used

    def _check_indirect(self, field: str, desc: Descriptor, in_indirect: bool) -> None:
        if in_indirect:
            raise VirtqueueError(f"{field}.flags", "INDIRECT inside an indirect table (only one "
                                 "table per descriptor is allowed)")
        if not self.indirect:
            raise VirtqueueError(f"{field}.flags", "INDIRECT is set but VIRTIO_F_INDIRECT_DESC "
                                 "was not negotiated")
        if desc.flags & DescFlags.NEXT:
            raise VirtqueueError(f"{field}.flags", "INDIRECT and NEXT are both set; an indirect "
                                 "descriptor must end the chain")
        if desc.len == 0 or desc.len % DESC_SIZE:
            raise VirtqueueError(f"{field}.len", f"indirect table length {desc.len} is not a "
                                 f"positive multiple of {DESC_SIZE}")
        if not self.memory.contains(desc.addr, desc.len):
            raise VirtqueueError(f"{field}.addr", f"indirect table [{desc.addr:#x}, +{desc.len}) "
                                 f"lies outside guest memory of {self.memory.size} bytes")

    # -- returning buffers ---------------------------------------------------------------

    def push_used(self, head: int, written: int) -> None:
        """Return chain ``head`` with ``written`` bytes put in its device-writable buffers."""
        self._check_usable()
        entry = self._in_flight.get(head)
        if entry is None:
            raise VirtioError(f"push_used of head {head}, which the device has not popped")
        chain, used = entry
        if not 0 <= written <= chain.writable_len:
            raise VirtioError(f"push_used of head {head} with {written} bytes written, but its "
                              f"device-writable buffers hold {chain.writable_len} bytes")
        slot = self.used_idx % self.size
        addr = self.layout.used_ring(slot)
        self.memory.write_u32(addr, head)
        self.memory.write_u32(addr + 4, written)
        # 2.7.8: the element is complete before idx makes it visible.
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        self.memory.write_u16(self.layout.used_idx, self.used_idx)
        del self._in_flight[head]
        self._busy -= used

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
            return not self.memory.read_u16(self.layout.avail_flags) & 1
        valid = self._signalled_valid
        self._signalled_used, self._signalled_valid = new, True
        event = self.memory.read_u16(self.layout.used_event)
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
