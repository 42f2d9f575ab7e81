"""The golden snapshot x target profile matrix (.ci/matrix.py) agrees with its checked-in
table, and the checker reports every kind of difference."""

from __future__ import annotations

import copy
import importlib.util
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ci_matrix", ROOT / ".ci" / "matrix.py")
assert _spec is not None and _spec.loader is not None
matrix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(matrix)

EXPECTED = tomllib.loads((ROOT / ".ci" / "matrix-expected.toml").read_text())


@pytest.fixture(scope="module")
def measured():
    return matrix.run_matrix()


def test_the_table_covers_every_golden_and_profile() -> None:
    cells = {f"{p.parent.name}/{p.stem}" for p in matrix.goldens()}
    assert set(EXPECTED) == cells
    for row in EXPECTED.values():
        assert set(row) == set(matrix.PROFILES)


def test_the_matrix_matches_the_table(measured) -> None:
    results, skipped = measured
    assert set(skipped) <= {"host-kernel"}  # only the probed kernel may be missing here
    assert matrix.compare(results, EXPECTED, skipped) == []


def test_every_outcome_occurs_and_restores_follow_the_plan(measured) -> None:
    results, _ = measured
    overall = {out["overall"] for row in results.values() for out in row.values()}
    assert overall >= {"COMPATIBLE", "REWRITABLE", "FALLBACK", "INCOMPATIBLE"}
    for row in results.values():
        for out in row.values():
            assert (out["restore"] == "refused") == (out["overall"] == "INCOMPATIBLE")


def test_differences_are_reported_by_cell_profile_and_object(measured) -> None:
    results, skipped = measured
    wrong = copy.deepcopy(EXPECTED)
    wrong["v1/firewall_v4"]["smartnic"]["objects"]["program xdp_firewall"] = "COMPATIBLE"
    wrong["v2/tailcall"]["full"]["restore"] = "refused"
    del wrong["v2/lpm"]
    problems = matrix.compare(results, wrong, skipped)
    assert "v1/firewall_v4 on smartnic: program xdp_firewall is REWRITABLE, expected " \
           "COMPATIBLE" in problems
    assert "v2/tailcall on full: restore is restored, expected refused" in problems
    assert any(p.startswith("v2/lpm: a golden without rows") for p in problems)
    assert len(problems) == 3
