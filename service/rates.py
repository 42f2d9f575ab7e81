"""Packet rates per program and action, from counters sampled over a short window."""

from __future__ import annotations

from collections import deque

WINDOW = 2.0  # seconds of samples kept
MIN_INTERVAL = 0.2  # seconds between samples


class RateMeter:
    """``sample(now, {program: counters})`` on every beat; ``rates(program)`` in frames/s."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._samples: deque[tuple[float, dict[int, dict[str, int]]]] = deque()

    def sample(self, now: float, counters: dict[int, dict[str, int]]) -> None:
        if self._samples and now - self._samples[-1][0] < MIN_INTERVAL:
            return
        self._samples.append((now, counters))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rates(self, program: int) -> dict[str, float]:
        if len(self._samples) < 2:
            return {}
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        if t1 <= t0 or program not in last:
            return {}
        before = first.get(program, {})
        return {name: round((value - before.get(name, 0)) / (t1 - t0), 1)
                for name, value in last[program].items() if name != "bytes"}
