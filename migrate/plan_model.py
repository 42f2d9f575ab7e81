"""A compatibility plan as data: what becomes of each object of a snapshot on a target.

``migrate.compat`` computes plans (and re-exports these names); whoever only shows one - the
client rendering a daemon's answer - reads it from here without importing the checks, the
lowering and the offload layers behind them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from offload.program import ProgramSpec


class Outcome(IntEnum):
    COMPATIBLE = 0
    REWRITABLE = 1
    FALLBACK = 2
    INCOMPATIBLE = 3


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason: ``code`` is stable for scripts ("helper", "map-type", "isa", ...)."""

    outcome: Outcome
    code: str
    reason: str
    slot: int | None = None


@dataclass(frozen=True, slots=True)
class Report:
    """What becomes of one object (kind "program", "map" or "device") on the target."""

    kind: str
    name: str
    outcome: Outcome
    findings: tuple[Finding, ...] = ()
    rewritten: ProgramSpec | None = None  # the re-resolved or lowered program when REWRITABLE


@dataclass(frozen=True, slots=True)
class Plan:
    target: str
    reports: tuple[Report, ...] = field(default=())

    @property
    def outcome(self) -> Outcome:
        return max((r.outcome for r in self.reports), default=Outcome.COMPATIBLE)

    @property
    def ok(self) -> bool:
        """Whether a restore may go ahead (nothing INCOMPATIBLE)."""
        return self.outcome < Outcome.INCOMPATIBLE

    def report(self, kind: str, name: str) -> Report:
        for r in self.reports:
            if (r.kind, r.name) == (kind, name):
                return r
        raise KeyError((kind, name))
