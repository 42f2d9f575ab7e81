"""The external judges: every program of the bpf_conformance and uBPF suites, assembled by
``offload.isa`` and run by the reference interpreter with the suites' helper table."""

from __future__ import annotations

import pytest

from offload.engine import Interpreter
from offload.engine.harness import run_on_memory
from offload.errors import OffloadError
from offload.helpers.conformance import CONFORMANCE_HELPERS
from offload.isa import assemble, decode, encode, encode_words, to_asm, words_to_bytes
from tests.support.conformance import all_cases, conformance_root, parse_case

#: Cases where this engine deliberately differs from the suite; each is listed in README.md.
EXCEPTIONS = {
    "ubpf/tests/errors/err-unknown-opcode.data":
        "0x06 is gotol (JMP32 | JA), defined by ISA v4 (RFC 9669) and run by bpf_conformance's "
        "ja32 tests; uBPF predates it",
    "ubpf/tests/errors/err-too-many-instructions.data":
        "the program limit is the kernel's 1,000,000 slots, not uBPF's 65,536",
    "ubpf/tests/reload.data":
        "tests uBPF's VM object API (loading twice into one VM), which has no counterpart here",
}

CASES = all_cases()
pytestmark = pytest.mark.skipif(
    conformance_root() is None,
    reason="conformance suites not found (set OFFLOAD_CONFORMANCE_DIR or provide "
           "../shared/conformance)")


def _program(case):
    if case.asm is not None:
        return assemble(case.asm)
    return decode(words_to_bytes(case.raw or []))


def _outcome(case):
    """('result', r0) or ('error', message)."""
    try:
        program = Interpreter(_program(case), CONFORMANCE_HELPERS)
        result, _ = run_on_memory(program, case.memory)
    except OffloadError as err:
        return "error", str(err)
    return "result", result.r0


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_conformance_case(path):
    case = parse_case(path)
    if case.name in EXCEPTIONS:
        pytest.xfail(EXCEPTIONS[case.name])
    if case.result is None and case.error is None:
        # An assembler test: the text must produce exactly the given words.
        assert encode_words(assemble(case.asm)) == case.raw
        return
    kind, value = _outcome(case)
    if case.error is not None:
        assert kind == "error", f"expected a refusal ({case.error}), got r0={value:#x}"
    else:
        assert kind == "result", f"expected r0={case.result:#x}, got error: {value}"
        assert value == case.result, f"r0={value:#x}, expected {case.result:#x}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_exceptions_still_differ(path):
    """An exception stays listed only while the engine really differs on it."""
    case = parse_case(path)
    if case.name not in EXCEPTIONS:
        pytest.skip("not an exception")
    kind, value = _outcome(case)
    if case.error is not None:
        assert kind == "result"
    else:
        assert (kind, value) != ("result", case.result)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.name)
def test_round_trip(path):
    """asm -> instructions -> bytes -> instructions -> asm -> instructions is the identity,
    and matches the suite's ``raw`` words where a file gives both."""
    case = parse_case(path)
    try:
        program = _program(case)
    except OffloadError:
        assert case.error is not None, "only negative tests may fail to assemble or decode"
        return
    assert decode(encode(program)) == program
    assert assemble(to_asm(program)) == program
    if case.asm is not None and case.raw is not None:
        assert encode_words(program) == case.raw
