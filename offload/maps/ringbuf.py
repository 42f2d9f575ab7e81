"""BPF_MAP_TYPE_RINGBUF (kernel/bpf/ringbuf.c): one bounded stream of records per map.

Creation follows ``ringbuf_map_alloc()``: key_size and value_size 0, max_entries (the data
size in bytes) a power of 2 and a multiple of the page size, only BPF_F_NUMA_NODE. The map
has no elements: every element and batch command is ENOTSUPP, as in the kernel.

Programs write with bpf_ringbuf_output(); each record costs its length plus the 8-byte record
header, rounded up to 8, and a record is refused (-EAGAIN, counted as lost on the device)
when the producer would get ``max_entries - 1`` bytes or more ahead of the consumer - the
kernel's own rule, so a ring fills after the same number of records. bpf_ringbuf_query()
reports the same positions the kernel does. The consumer is whoever reads the device's events:
taking records advances the consumer position.

bpf_ringbuf_reserve() sets the room for a record aside at once, in its place in the stream
(the producer position moves, as in the kernel), and hands the program a buffer;
bpf_ringbuf_submit() makes it a record like one bpf_ringbuf_output() writes, and
bpf_ringbuf_discard() leaves room the reader skips (freed when the reader passes it, as the
kernel's consumer does). A reservation that fails is NULL, and counted as lost like a refused
output.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import MapFlags
from .base import Map, enotsupp
from .events import Event, EventBuffer, Reservation
from .spec import MapSpec

PAGE_SIZE = 4096
RINGBUF_HDR_SZ = 8
RINGBUF_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE)
RINGBUF_MAX_RECORD_SZ = (1 << 32) // 4 - 1  # UINT_MAX / 4
#: bpf_ringbuf_output flags (BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP): wake-ups only
RB_WAKEUP_FLAGS = 1 | 2
#: bpf_ringbuf_query flags
RB_AVAIL_DATA, RB_RING_SIZE, RB_CONS_POS, RB_PROD_POS = 0, 1, 2, 3


def record_cost(size: int) -> int:
    """Bytes a record of ``size`` takes in the ring: header plus data, rounded up to 8."""
    return (size + RINGBUF_HDR_SZ + 7) & ~7


def check_ringbuf_spec(spec: MapSpec) -> None:
    """``ringbuf_map_alloc()``'s checks."""
    problems = []
    if spec.flags & ~RINGBUF_CREATE_FLAG_MASK:
        problems.append(f"map_flags {spec.flags & ~RINGBUF_CREATE_FLAG_MASK:#x} are not valid "
                        "(only BPF_F_NUMA_NODE)")
    if spec.key_size or spec.value_size:
        problems.append(f"key_size and value_size must be 0, not {spec.key_size} and "
                        f"{spec.value_size}")
    size = spec.max_entries
    if size == 0 or size & (size - 1) or size % PAGE_SIZE:
        problems.append(f"max_entries is the data size in bytes: a power of 2 and a multiple "
                        f"of the {PAGE_SIZE}-byte page, not {size}")
    if problems:
        raise ErrnoError(errno.EINVAL, f"Invalid {spec.type.name} map: " + "; ".join(problems) + ".")


class RingBufMap(Map):
    """A ring buffer: records in, records out; no elements."""

    batch_lookup = batch_update = batch_delete = False
    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        # used + cost <= size - 1, in multiples of 8: at most size - 8 bytes held
        self.buffer = EventBuffer(self.max_entries - RINGBUF_HDR_SZ)
        self.producer_pos = 0

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_ringbuf_spec(spec)

    # -- uAPI: no elements -------------------------------------------------------------------
    def _no_elements(self) -> ErrnoError:
        return enotsupp("A ring buffer has no elements: read its records with "
                        "'offload-migrate events'.")

    def _count(self) -> int:
        return 0

    def _lookup(self, key: bytes) -> bytes | None:
        raise self._no_elements()

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        raise self._no_elements()

    def _delete(self, key: bytes) -> None:
        raise self._no_elements()

    def _next_key(self, key: bytes | None) -> bytes | None:
        raise self._no_elements()

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(())

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        raise ErrnoError(errno.EINVAL, f"cannot pass map_type {int(self.spec.type)} into func "
                                       "bpf_map_lookup_elem")

    def _exact(self, key: bytes) -> tuple[bytes, bytes] | None:
        return None

    # -- programs ----------------------------------------------------------------------------
    @property
    def consumer_pos(self) -> int:
        return self.producer_pos - self.buffer.used

    def output(self, data: bytes, flags: int, *, cpu: int = 0, time_ns: int = 0) -> int:
        """bpf_ringbuf_output(): 0, -EINVAL for unknown flags, -EAGAIN when the record does
        not fit (counted in ``lost``)."""
        if flags & ~RB_WAKEUP_FLAGS:
            return -errno.EINVAL
        size = len(data)
        cost = record_cost(size)
        seq = self.buffer.produced
        if size > RINGBUF_MAX_RECORD_SZ or cost > self.max_entries:
            self.buffer.produced += 1
            self.buffer.lost += 1
            return -errno.EAGAIN
        if not self.buffer.push(cost, Event(self.spec.name, "ringbuf", 0, cpu, seq, time_ns,
                                            bytes(data))):
            return -errno.EAGAIN
        self.producer_pos += cost
        return 0

    def query(self, flags: int) -> int:
        """bpf_ringbuf_query(): available bytes, ring size, consumer or producer position;
        0 for any other flag, as the kernel answers."""
        if flags == RB_AVAIL_DATA:
            return self.buffer.used
        if flags == RB_RING_SIZE:
            return self.max_entries
        if flags == RB_CONS_POS:
            return self.consumer_pos
        if flags == RB_PROD_POS:
            return self.producer_pos
        return 0

    def reserve(self, size: int, flags: int) -> Reservation | None:
        """bpf_ringbuf_reserve(): room for a record of ``size`` bytes set aside; None (NULL)
        for flags (the kernel takes none), a record larger than the ring, or no room."""
        cost = record_cost(size)
        if flags or size > RINGBUF_MAX_RECORD_SZ or cost > self.max_entries:
            self.buffer.produced += 1
            self.buffer.lost += 1
            return None
        reservation = self.buffer.reserve(cost)
        if reservation is not None:
            self.producer_pos += cost
        return reservation

    def commit(self, reservation: Reservation, data: bytes, *, cpu: int = 0,
               time_ns: int = 0) -> None:
        """bpf_ringbuf_submit(): the reserved room becomes a record with ``data``."""
        reservation.event = Event(self.spec.name, "ringbuf", 0, cpu, reservation.seq,
                                  time_ns, bytes(data))

    def cancel(self, reservation: Reservation) -> None:
        """bpf_ringbuf_discard(), or a reservation its run left behind: no record; the room
        is free once the reader passes it."""
        reservation.discarded = True

    # -- the reader ----------------------------------------------------------------------------
    def take_events(self) -> list[Event]:
        """Records oldest first; taking them frees their room (the consumer moves on)."""
        return self.buffer.take()

    @property
    def pending(self) -> int:
        return len(self.buffer)

    @property
    def lost(self) -> int:
        return self.buffer.lost

    def stream_stats(self) -> dict[str, int]:
        return {"pending": len(self.buffer), "lost": self.buffer.lost,
                "bytes": self.buffer.used, "size": self.max_entries}
