"""What a live migration did: rounds, bytes, entries per round, time and downtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class MigrationOutcome(Enum):
    COMPLETED = "completed"  # the destination runs the state; the source released it
    REFUSED = "refused"  # the destination declined; the source runs on
    FAILED = "failed"  # connection, timeout or protocol failure; the source runs on
    CANCELLED = "cancelled"  # cancelled on the source before the cut; the source runs on


@dataclass(frozen=True, slots=True)
class RoundStats:
    """One transfer: round 0 is the full copy, the last one the final delta (while paused)."""

    round: int
    entries: int
    bytes: int
    seconds: float
    estimate: float | None = None  # the downtime predicted for sending this round paused


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """``downtime`` runs from the pause to the destination's acknowledgement (source side) or
    from FINAL to COMMITTED (destination side); None when the migration never paused."""

    role: str
    outcome: MigrationOutcome
    rounds: int  # pre-copy rounds after the full copy, the final delta not counted
    bytes_sent: int
    bytes_received: int
    entries_per_round: tuple[int, ...]  # full copy, rounds..., final delta
    total_time: float
    downtime: float | None
    downtime_target: float | None = None
    protocol: int | None = None
    format: int | None = None
    peer: str = ""
    reason: str = ""
    details: tuple[RoundStats, ...] = field(default=())
    proof: dict[str, Any] | None = None  # the proofs' figures (migrate/live/proving.py)

    @property
    def bytes(self) -> int:
        return self.bytes_sent

    def as_dict(self) -> dict[str, object]:
        """Plain values for ``--json`` output."""
        return {"role": self.role, "outcome": self.outcome.value, "rounds": self.rounds,
                "bytes_sent": self.bytes_sent, "bytes_received": self.bytes_received,
                "entries_per_round": list(self.entries_per_round),
                "total_time": self.total_time, "downtime": self.downtime,
                "downtime_target": self.downtime_target, "protocol": self.protocol,
                "format": self.format, "peer": self.peer, "reason": self.reason,
                "proof": self.proof}
