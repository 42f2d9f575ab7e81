"""Frames recorded at the device's edges, with what became of them, for a packet capture.

A capture taps the receive path and the wire: ``rx`` frames as they arrive (before the
program runs) with the program's verdict, ``tx`` frames as they leave on the wire (XDP_TX,
or the guest's transmit queue), ``drop`` the arriving frames the program dropped or aborted.
A reader takes the records now and then; until it does they wait in a buffer bounded in
records and bytes, and records that do not fit are counted as lost, not kept (a slow reader
costs frames, never the device's memory). After ``count`` records the capture is full and
stops recording.
"""

from __future__ import annotations

import errno
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ErrnoError

#: What a capture may record: arriving frames, leaving frames, dropped arriving frames.
KINDS = ("rx", "tx", "drop")
#: Records one capture may hold unread at most, and their bytes.
MAX_RECORDS = 65536
MAX_BYTES = 64 << 20
MAX_SNAPLEN = 65535
DROPPED = ("drop", "aborted")


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One frame: when (wall clock, seconds), which way, its verdict (``pass``, ``drop``,
    ``tx``, ``redirect``, ``aborted`` for arriving frames, ``paused`` for one dropped while a
    live migration's cut held the receive path; ``tx`` or ``guest`` for leaving ones: who
    sent it), its length on the wire and its first ``snaplen`` bytes."""

    time: float
    direction: str
    verdict: str
    length: int
    data: bytes


class FrameCapture:
    """Records what ``kinds`` name until ``count`` records (None: no end)."""

    __slots__ = ("kinds", "count", "snaplen", "max_records", "max_bytes", "clock", "records",
                 "bytes", "recorded", "lost")

    def __init__(self, kinds: frozenset[str], *, count: int | None = None,
                 snaplen: int = MAX_SNAPLEN, max_records: int = 4096,
                 max_bytes: int = 16 << 20, clock: Callable[[], float] = time.time) -> None:
        unknown = sorted(kinds - set(KINDS))
        if not kinds or unknown:
            raise ErrnoError(errno.EINVAL, f"a capture records {', '.join(KINDS)}, not "
                                           f"{', '.join(unknown) or 'nothing'}")
        if not 0 < snaplen <= MAX_SNAPLEN or not 0 < max_records <= MAX_RECORDS \
                or not 0 < max_bytes <= MAX_BYTES or (count is not None and count <= 0):
            raise ErrnoError(errno.EINVAL, "a capture's snap length, buffer and count must be "
                                           f"positive (snap length at most {MAX_SNAPLEN}, "
                                           f"{MAX_RECORDS} records, {MAX_BYTES} bytes)")
        self.kinds = kinds
        self.count = count
        self.snaplen = snaplen
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.clock = clock
        self.records: deque[CapturedFrame] = deque()
        self.bytes = 0
        self.recorded = 0  # records kept, taken ones included
        self.lost = 0  # records the buffer had no room for

    @property
    def full(self) -> bool:
        return self.count is not None and self.recorded >= self.count

    def arrived(self, frame: bytes, verdict: str) -> None:
        """A frame from the wire and the program's verdict on it."""
        if "rx" in self.kinds or ("drop" in self.kinds and verdict in DROPPED):
            self._keep("rx", verdict, frame)

    def left(self, frame: bytes, sender: str) -> None:
        """A frame leaving on the wire; ``sender`` is ``tx`` (XDP_TX) or ``guest``."""
        if "tx" in self.kinds:
            self._keep("tx", sender, frame)

    def _keep(self, direction: str, verdict: str, frame: bytes) -> None:
        if self.full:
            return
        data = bytes(frame[:self.snaplen])
        if len(self.records) >= self.max_records or self.bytes + len(data) > self.max_bytes:
            self.lost += 1
            return
        self.records.append(CapturedFrame(self.clock(), direction, verdict, len(frame), data))
        self.bytes += len(data)
        self.recorded += 1

    def take(self, most: int, max_bytes: int) -> list[CapturedFrame]:
        """Up to ``most`` records, oldest first, of at most ``max_bytes`` bytes together
        (always at least one when any waits); taking them frees their room."""
        taken: list[CapturedFrame] = []
        size = 0
        records = self.records
        while records and len(taken) < most:
            record = records[0]
            if taken and size + len(record.data) > max_bytes:
                break
            taken.append(records.popleft())
            size += len(record.data)
            self.bytes -= len(record.data)
        return taken
