"""Recent frames the device received, kept for a restore's proof.

A snapshot can carry a sample of the traffic its program saw, so a restore onto another device
can show that the restored program treats those frames as the source's did (migrate/proof.py).
The device keeps them in a ring: off by default, bounded in frames and in bytes, the oldest
frame dropped first. Frames are kept as they arrived, before the program ran.
"""

from __future__ import annotations

import errno
from collections import deque

from ..errors import ErrnoError

#: Frames a ring may hold at most, and bytes of one frame (a jumbo frame and its headroom).
MAX_SAMPLES = 4096
MAX_SAMPLE_BYTES = 16384


class FrameSampler:
    """The last ``capacity`` frames received, at most ``max_bytes`` bytes in all."""

    __slots__ = ("capacity", "max_bytes", "frames", "bytes", "seen")

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        if not 0 < capacity <= MAX_SAMPLES:
            raise ErrnoError(errno.EINVAL,
                             f"a sample ring holds 1 to {MAX_SAMPLES} frames, not {capacity}")
        self.capacity = capacity
        self.max_bytes = max_bytes if max_bytes is not None else capacity * MAX_SAMPLE_BYTES
        self.frames: deque[bytes] = deque()
        self.bytes = 0
        self.seen = 0

    def add(self, frame: bytes) -> None:
        """Keep ``frame`` (cut to MAX_SAMPLE_BYTES), dropping the oldest past either bound."""
        kept = bytes(frame[:MAX_SAMPLE_BYTES])
        self.seen += 1
        self.frames.append(kept)
        self.bytes += len(kept)
        while len(self.frames) > self.capacity or self.bytes > self.max_bytes:
            self.bytes -= len(self.frames.popleft())

    def recent(self, count: int | None = None) -> tuple[bytes, ...]:
        """The newest ``count`` frames (all when None), oldest first: the order they arrived."""
        frames = tuple(self.frames)
        if count is None or count >= len(frames):
            return frames
        return frames[len(frames) - count:] if count > 0 else ()
