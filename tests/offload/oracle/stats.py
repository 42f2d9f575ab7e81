"""Counts of the generated-program tests in this process, for the session summary."""

from __future__ import annotations

from collections import Counter

COUNTS: Counter[str] = Counter()
