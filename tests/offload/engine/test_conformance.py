"""The external judges: every program of the bpf_conformance and uBPF suites, assembled by
``offload.isa`` and run by the reference interpreter with the suites' helper table."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.conformance.suite import (
    EXCEPTIONS,
    all_cases,
    case_program,
    conformance_root,
    judge,
    outcome,
    parse_case,
)
from offload.errors import OffloadError
from offload.isa import assemble, decode, encode, encode_words, to_asm

CASES = all_cases()


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_conformance_case(path):
    case = parse_case(path)
    verdict = judge(case)
    if verdict.status == "exception":
        pytest.xfail(verdict.detail)
    assert verdict.status == "pass", verdict.detail


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_exceptions_still_differ(name):
    """An exception stays listed only while the engine really differs on it."""
    root = conformance_root()
    case = parse_case(root.joinpath(*name.split("/")[0:1], *name.split("/")[1:]))
    kind, value = outcome(case)
    if case.error is not None:
        assert kind == "result"
    else:
        assert (kind, value) != ("result", case.result)


def test_every_case_is_judged():
    """The suites are all there: 313 bpf_conformance files and 78 uBPF tests."""
    names = [parse_case(path).name for path in CASES]
    assert sum(name.startswith("bpf_conformance") for name in names) == 313
    assert sum(name.startswith("ubpf") for name in names) == 78
    assert set(EXCEPTIONS) <= set(names)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_round_trip(path):
    """asm -> instructions -> bytes -> instructions -> asm -> instructions is the identity,
    and matches the suite's ``raw`` words where a file gives both."""
    case = parse_case(path)
    try:
        program = case_program(case)
    except OffloadError:
        assert case.error is not None, "only negative tests may fail to assemble or decode"
        return
    assert decode(encode(program)) == program
    assert assemble(to_asm(program)) == program
    if case.asm is not None and case.raw is not None:
        assert encode_words(program) == case.raw


def test_the_suites_travel_with_the_tree():
    """The suites are part of the source tree (with their licences), so no case can vanish
    because a folder outside the repository is missing."""
    data = Path(__file__).resolve().parents[2] / "conformance_data"
    assert len(list((data / "bpf_conformance" / "tests").glob("*.data"))) == 313
    assert len(list((data / "ubpf" / "tests").rglob("*.data"))) == 78
    assert (data / "bpf_conformance" / "LICENSE").is_file()
    assert (data / "ubpf" / "LICENSE.txt").is_file()
    assert len(CASES) == len(all_cases(data))
