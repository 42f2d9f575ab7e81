"""The conformance suites lowered: every program that has an expected result and that the
engine passes still gives that result once lowered to v1 and to v2. Atomics other than
``lock add`` are refused unless ``allow_non_atomic``, and then pass too."""

from __future__ import annotations

from functools import cache

import pytest

from offload.conformance.helpers import CONFORMANCE_HELPERS
from offload.conformance.suite import all_cases, case_program, judge, parse_case
from offload.engine import Interpreter
from offload.engine.harness import run_on_memory
from offload.errors import OffloadError
from offload.isa import InsnClass, Mode
from offload.isa.versions import program_version
from offload.lowering import LoweringError, lower_with_report


@cache
def _runnable_cases() -> tuple:
    """(name, program, memory, expected r0) of the cases the engine itself passes."""
    cases = []
    for path in all_cases():
        case = parse_case(path)
        if case.result is None or case.error is not None or judge(case).status != "pass":
            continue
        cases.append((case.name, tuple(case_program(case)), case.memory, case.result))
    return tuple(cases)


def _has_v3_atomics(program) -> bool:
    return any(i.cls == InsnClass.STX and i.mode == Mode.ATOMIC and i.imm != 0 for i in program)


def _lower_all(target: int, allow_non_atomic: bool) -> dict[str, list[str]]:
    outcome: dict[str, list[str]] = {"rewritten": [], "unchanged": [], "refused": [],
                                     "wrong": []}
    for name, program, memory, expected in _runnable_cases():
        try:
            lowered = lower_with_report(program, target, allow_non_atomic=allow_non_atomic)
        except LoweringError as err:
            outcome["refused"].append(f"{name}: {err.reason}")
            continue
        assert program_version(lowered.instructions) <= target
        try:
            result, _ = run_on_memory(Interpreter(lowered.instructions, CONFORMANCE_HELPERS),
                                      memory)
            good = result.r0 == expected
        except OffloadError as err:
            good, result = False, err
        if not good:
            outcome["wrong"].append(f"{name}: {result}")
        else:
            outcome["rewritten" if lowered.report.changed else "unchanged"].append(name)
    return outcome


@pytest.mark.parametrize("target", [1, 2])
def test_conformance_programs_lowered(target):
    outcome = _lower_all(target, allow_non_atomic=False)
    assert outcome["wrong"] == []
    atomics = sum(_has_v3_atomics(program) for _, program, _, _ in _runnable_cases())
    assert len(outcome["refused"]) == atomics > 0
    assert all("atomic" in line for line in outcome["refused"])
    assert len(outcome["rewritten"]) > 100


@pytest.mark.parametrize("target", [1, 2])
def test_conformance_programs_lowered_with_non_atomic_atomics(target):
    outcome = _lower_all(target, allow_non_atomic=True)
    assert outcome["wrong"] == [] and outcome["refused"] == []
    newer = sum(program_version(program) > target for _, program, _, _ in _runnable_cases())
    assert len(outcome["rewritten"]) == newer
