"""Freshness: whether a snapshot is recent enough to restore, from its signed source stamp.

A signature says who sealed a snapshot, not when: an old, genuinely signed snapshot replays
as well as a new one. The container (version 2) therefore carries, under the signature, a
:class:`SourceStamp` - the source device's identity, its name, and a generation that grows by
one with every checkpoint the device hands out - and the snapshot's creation time. A reader
refuses what is too old (:class:`Freshness`: ``--max-age``, ``--min-generation``), and a
target refuses to go back to an older generation of a source than the last it restored
(:func:`check_rollback`, ``--no-rollback``). Each refusal names both values it compared.
"""

from __future__ import annotations

import datetime
import errno
import re
from dataclasses import dataclass
from typing import Any

from .errors import SnapshotError
from .schema import MAX_NAME, U64, Fields, SnapshotFormatError

#: A source's identity: 16 random bytes as 32 lowercase hex digits, made once per device.
DEVICE_ID = re.compile(r"[0-9a-f]{32}")
#: How far in the future a creation time may lie (clocks of two hosts differ) under --max-age.
CLOCK_SKEW_NS = 300 * 10**9
_UNITS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")


class StaleSnapshot(SnapshotError):
    """A snapshot the freshness policy refuses (exit 1: refused, not damaged)."""

    errno = errno.ESTALE


class SnapshotTooOld(StaleSnapshot):
    """Created longer ago than ``--max-age`` allows (or too far in the future)."""


class GenerationTooOld(StaleSnapshot):
    """A generation below ``--min-generation``."""


class RollbackRefused(StaleSnapshot):
    """A generation older than the last one the target restored from the same source."""


class FreshnessUnknown(StaleSnapshot):
    """A snapshot without a source stamp, where a check needs one."""


@dataclass(frozen=True, slots=True)
class SourceStamp:
    """Which device a snapshot comes from and how late in that device's life it was taken."""

    device_id: str
    name: str
    generation: int

    def __post_init__(self) -> None:
        if not isinstance(self.device_id, str) or not DEVICE_ID.fullmatch(self.device_id):
            raise SnapshotError(f"a device id is 32 lowercase hex digits, not "
                                f"{self.device_id!r}.")
        if not isinstance(self.name, str) or not 0 < len(self.name) <= MAX_NAME:
            raise SnapshotError(f"a source name is 1 to {MAX_NAME} characters.")
        if isinstance(self.generation, bool) or not isinstance(self.generation, int) or \
                not 0 <= self.generation <= U64:
            raise SnapshotError(f"a generation is an integer in 0..{U64}.")

    def as_dict(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "name": self.name, "generation": self.generation}

    @classmethod
    def parse(cls, raw: object, where: str) -> SourceStamp:
        """From a msgpack map (a seal header's ``source``, a request parameter)."""
        f = Fields(raw, where)
        device_id = f.str("device_id", 32)
        name = f.str("name", MAX_NAME)
        generation = f.int("generation")
        f.done()
        try:
            return cls(device_id, name, generation)
        except SnapshotError as exc:
            raise SnapshotFormatError(f"{where}: {exc}") from None

    def __str__(self) -> str:
        return f"device {self.name} (id {self.device_id})"


@dataclass(frozen=True, slots=True)
class Freshness:
    """What a reader requires of a snapshot's age; None leaves a check out."""

    max_age_ns: int | None = None
    min_generation: int | None = None
    need_stamp: bool = False  # the target's rollback guard will compare the stamp

    @property
    def active(self) -> bool:
        return self.max_age_ns is not None or self.min_generation is not None or \
            self.need_stamp


def when(ns: int) -> str:
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.UTC).isoformat(timespec="seconds")


def duration(ns: int) -> str:
    """``3m 12s``, ``250ms``: a span as people read it."""
    if ns < 10**9:
        return f"{ns // 10**6}ms"
    seconds = ns // 10**9
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def parse_duration(text: str) -> int:
    """Nanoseconds from ``90``, ``90s``, ``250ms``, ``15m``, ``2h``, ``7d`` (ValueError else)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: give a number with ms, s, m, h or d.")
    ns = int(float(match.group(1)) * _UNITS[match.group(2) or "s"])
    if ns <= 0 or ns > U64:
        raise ValueError(f"the duration {text!r} must be positive.")
    return ns


def check_freshness(created_ns: int, source: SourceStamp | None, policy: Freshness,
                    now_ns: int) -> None:
    """Refuse a snapshot (created ``created_ns``, stamped ``source``) the policy finds stale."""
    if policy.max_age_ns is not None:
        age = now_ns - created_ns
        if age > policy.max_age_ns:
            raise SnapshotTooOld(f"the snapshot was created {when(created_ns)}, {duration(age)} "
                                 f"ago: older than --max-age {duration(policy.max_age_ns)}.")
        if -age > CLOCK_SKEW_NS:
            raise SnapshotTooOld(f"the snapshot's creation time {when(created_ns)} lies "
                                 f"{duration(-age)} in the future, more than the "
                                 f"{duration(CLOCK_SKEW_NS)} allowed for clock skew: "
                                 f"--max-age {duration(policy.max_age_ns)} cannot vouch for it.")
    if policy.min_generation is not None or policy.need_stamp:
        option = "--min-generation" if policy.min_generation is not None else "--no-rollback"
        if source is None:
            raise FreshnessUnknown(f"the snapshot carries no generation (it was sealed without "
                                   f"a source stamp, or by container version 1): {option} "
                                   f"cannot be checked.")
    if policy.min_generation is not None and source is not None and \
            source.generation < policy.min_generation:
        raise GenerationTooOld(f"the snapshot has generation {source.generation} of {source}, "
                               f"below --min-generation {policy.min_generation}.")


def check_rollback(source: SourceStamp, last: int | None, target: str) -> None:
    """Refuse going back: ``last`` is the newest generation of ``source`` ``target`` restored."""
    if last is not None and source.generation < last:
        raise RollbackRefused(f"device {target} last restored generation {last} of {source}; "
                              f"this snapshot has generation {source.generation}, older "
                              f"(--no-rollback refuses going back).")
