"""Freshness checks on their own: age, generation, rollback, and the stamp's validation."""

from __future__ import annotations

import pytest

from migrate.errors import SnapshotError
from migrate.freshness import (
    CLOCK_SKEW_NS,
    Freshness,
    FreshnessUnknown,
    GenerationTooOld,
    RollbackRefused,
    SnapshotTooOld,
    SourceStamp,
    check_freshness,
    check_rollback,
    parse_duration,
)
from migrate.schema import SnapshotFormatError

NOW = 1_800_000_000 * 10**9
STAMP = SourceStamp("a1" * 16, "A", 7)


def test_durations() -> None:
    assert parse_duration("90") == parse_duration("90s") == 90 * 10**9
    assert parse_duration("250ms") == 250 * 10**6
    assert parse_duration("1.5h") == 5400 * 10**9 and parse_duration("7d") == 7 * 86400 * 10**9
    for bad in ("", "-1s", "0s", "5 weeks", "1e9", "s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_max_age() -> None:
    policy = Freshness(max_age_ns=60 * 10**9)
    check_freshness(NOW - 59 * 10**9, None, policy, NOW)
    with pytest.raises(SnapshotTooOld, match=r"1m 1s ago: older than --max-age 1m"):
        check_freshness(NOW - 61 * 10**9, None, policy, NOW)
    check_freshness(NOW + CLOCK_SKEW_NS, None, policy, NOW)  # a clock a little ahead
    with pytest.raises(SnapshotTooOld, match="in the future"):
        check_freshness(NOW + CLOCK_SKEW_NS + 10**9, None, policy, NOW)
    check_freshness(0, None, Freshness(), NOW)  # no policy, no check


def test_min_generation_and_missing_stamps() -> None:
    check_freshness(NOW, STAMP, Freshness(min_generation=7), NOW)
    with pytest.raises(GenerationTooOld, match="generation 7 of device A .* --min-generation 8"):
        check_freshness(NOW, STAMP, Freshness(min_generation=8), NOW)
    with pytest.raises(FreshnessUnknown, match="no generation.*--min-generation"):
        check_freshness(NOW, None, Freshness(min_generation=0), NOW)
    with pytest.raises(FreshnessUnknown, match="--no-rollback"):
        check_freshness(NOW, None, Freshness(need_stamp=True), NOW)


def test_rollback() -> None:
    check_rollback(STAMP, None, "B")
    check_rollback(STAMP, 7, "B")  # the same generation again is no rollback
    with pytest.raises(RollbackRefused, match="last restored generation 8 .* generation 7"):
        check_rollback(STAMP, 8, "B")


def test_stamps_are_validated() -> None:
    for bad in (("A1" * 16, "A", 1), ("a1" * 15, "A", 1), ("a1" * 16, "", 1),
                ("a1" * 16, "A", -1), ("a1" * 16, "A", True)):
        with pytest.raises(SnapshotError):
            SourceStamp(*bad)
    assert SourceStamp.parse(STAMP.as_dict(), "x") == STAMP
    for raw in ({**STAMP.as_dict(), "extra": 1}, {"device_id": "zz", "name": "A",
                                                   "generation": 1}, [1, 2]):
        with pytest.raises(SnapshotFormatError):
            SourceStamp.parse(raw, "x")
