"""Sparklines: a series of numbers as one line of block characters, for the status view."""

from __future__ import annotations

from collections.abc import Sequence

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int, top: float | None = None) -> str:
    """The newest ``width`` values, each as one of eight blocks scaled to ``top`` (by default
    the largest shown), padded on the left with spaces where the series is shorter; a value
    of zero is the lowest block, so an idle series still reads as a line."""
    shown = list(values)[-width:] if width > 0 else []
    scale = max(shown, default=0.0) if top is None else top
    levels = len(BLOCKS)
    line = "".join(BLOCKS[0] if scale <= 0 or value <= 0
                   else BLOCKS[min(levels - 1, int(value / scale * levels))] for value in shown)
    return " " * (max(width, 0) - len(shown)) + line


def rate_text(value: float) -> str:
    """A frames-per-second figure in at most six characters: 950/s, 12.3k/s, 4.5M/s."""
    if value >= 1e6:
        return f"{value / 1e6:.1f}M/s"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k/s"
    return f"{value:.0f}/s"


def size_text(value: float) -> str:
    """Bytes in at most six characters: 512 B, 12.0K, 3.4M, 1.2G."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f} B"
