"""What the live status view remembers between refreshes: per program and action the frame
rate of each interval, per map its fill, so the view can draw them over time.

Rates come from the counters of consecutive answers over the daemon's own clock (its
``uptime``), so a slow refresh or a busy terminal does not distort them; a counter that went
backwards (a program replaced under the same id, a restarted daemon) starts the series over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

POINTS = 60  # samples kept per series (the widest sparkline)
RATE_ACTIONS = ("pass", "drop", "tx", "redirect", "aborted")


@dataclass
class DeviceHistory:
    """One device's series; ``uptime`` and ``counters`` are those of the last answer."""

    uptime: float | None = None
    counters: dict[int, dict[str, int]] = field(default_factory=dict)
    rates: dict[int, dict[str, deque[float]]] = field(default_factory=dict)
    fill: dict[int, deque[float]] = field(default_factory=dict)


class History:
    """Series per device path, ``points`` samples each."""

    def __init__(self, points: int = POINTS) -> None:
        self.points = points
        self.devices: dict[str, DeviceHistory] = {}

    def device(self, path: str) -> DeviceHistory:
        return self.devices.setdefault(path, DeviceHistory())

    def record(self, path: str, status: dict[str, Any]) -> None:
        """One answer of ``status``: a rate per program and action for the interval since
        the previous answer, and each map's fill now."""
        history = self.device(path)
        uptime = float(status.get("uptime", 0.0))
        programs = {int(p["id"]): dict(p.get("counters", {})) for p in status.get("programs", [])}
        previous, last = history.counters, history.uptime
        if last is not None and uptime < last:  # another daemon at the same path
            history.rates.clear()
            previous, last = {}, None
        for handle, counters in programs.items():
            series = history.rates.get(handle)
            if series is None:
                series = history.rates[handle] = {a: deque(maxlen=self.points)
                                                  for a in RATE_ACTIONS}
            before = previous.get(handle)
            if last is None or before is None or uptime <= last:
                continue
            seconds = uptime - last
            if any(counters.get(a, 0) < before.get(a, 0) for a in RATE_ACTIONS):
                for values in series.values():
                    values.clear()
                continue
            for action in RATE_ACTIONS:
                series[action].append((counters.get(action, 0) - before.get(action, 0))
                                      / seconds)
        for gone in set(history.rates) - set(programs):
            del history.rates[gone]
        history.counters, history.uptime = programs, uptime
        maps = {int(m["id"]): m for m in status.get("maps", [])}
        for handle, entry in maps.items():
            events = entry.get("events")
            used, size = ((events["bytes"], events["size"]) if events
                          else (entry.get("entries", 0), entry.get("max_entries", 0)))
            history.fill.setdefault(handle, deque(maxlen=self.points)).append(
                used / size if size else 0.0)
        for gone in set(history.fill) - set(maps):
            del history.fill[gone]
