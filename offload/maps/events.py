"""Event streams: what bpf_perf_event_output and bpf_ringbuf_output leave for a reader.

In the kernel both write into memory user space maps and reads (a perf ring per CPU, one BPF
ring buffer per map). On a device there is no such shared memory: the device keeps each
stream as a bounded buffer of :class:`Event` records and hands them to whoever reads the
device's events (``offload-migrate events``). The bound is counted in the bytes the kernel
would use for the record, so a stream fills up after as many records as the kernel's would,
and a record that does not fit is dropped and counted (``lost``), as perf counts lost
samples and a ring buffer refuses a reservation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    """One record as the reader gets it.

    ``stream`` is the perf event array index (the CPU) or 0 for a ring buffer; ``cpu`` the
    CPU the program ran on; ``seq`` counts records of the stream from 0 (dropped ones too, so
    a gap shows where records were lost); ``time_ns`` the device clock at output.
    """

    map_name: str
    kind: str  # "perf" or "ringbuf"
    stream: int
    cpu: int
    seq: int
    time_ns: int
    data: bytes

    def as_dict(self) -> dict[str, object]:
        return {"map": self.map_name, "kind": self.kind, "stream": self.stream, "cpu": self.cpu,
                "seq": self.seq, "time_ns": self.time_ns, "size": len(self.data),
                "data": self.data.hex()}


class Reservation:
    """Room for one record set aside in a stream (a ring buffer reservation): it keeps its
    place in the stream and its seq, and becomes a record when committed (``event``), or
    room the reader skips when discarded. The reader stops at one still being written, as
    the kernel's consumer stops at a busy record."""

    __slots__ = ("cost", "seq", "event", "discarded")

    def __init__(self, cost: int, seq: int) -> None:
        self.cost = cost
        self.seq = seq
        self.event: Event | None = None
        self.discarded = False

    @property
    def busy(self) -> bool:
        return self.event is None and not self.discarded


#: Records one stream holds at most, whatever their size: the device's own bound on the
#: memory tiny records take (a 16 MiB ring of empty records would hold two million).
MAX_RECORDS = 1 << 16


class EventBuffer:
    """A bounded FIFO of records, sized in bytes.

    ``push`` takes a record of ``cost`` bytes if ``used + cost`` stays within ``limit``
    (``limit`` is what a full buffer may hold) and fewer than MAX_RECORDS wait, else counts
    it lost. ``take`` hands records out oldest first and frees their bytes.
    """

    __slots__ = ("limit", "used", "lost", "produced", "_records")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lost = 0
        self.produced = 0  # records offered, kept or lost: the next record's seq
        self._records: deque[tuple[int, Event | Reservation]] = deque()

    def __len__(self) -> int:
        return len(self._records)

    def fits(self, cost: int) -> bool:
        return self.used + cost <= self.limit and len(self._records) < MAX_RECORDS

    def push(self, cost: int, event: Event) -> bool:
        self.produced += 1
        if not self.fits(cost):
            self.lost += 1
            return False
        self._records.append((cost, event))
        self.used += cost
        return True

    def reserve(self, cost: int) -> Reservation | None:
        """Set room for a record aside at the end of the stream, or None (counted lost)."""
        seq = self.produced
        self.produced += 1
        if not self.fits(cost):
            self.lost += 1
            return None
        reservation = Reservation(cost, seq)
        self._records.append((cost, reservation))
        self.used += cost
        return reservation

    def take(self, most: int | None = None) -> list[Event]:
        out: list[Event] = []
        records = self._records
        while records and (most is None or len(out) < most):
            cost, item = records[0]
            if isinstance(item, Reservation):
                if item.busy:
                    break
                if item.event is None:  # discarded: only its room to free
                    records.popleft()
                    self.used -= cost
                    continue
                item = item.event
            records.popleft()
            self.used -= cost
            out.append(item)
        return out

    def clear(self) -> None:
        self._records.clear()
        self.used = 0
