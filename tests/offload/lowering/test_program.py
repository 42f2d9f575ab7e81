"""lower_program: relocation records, line info and function starts follow their
instructions; calls and function addresses are remapped; refusals are typed."""

from __future__ import annotations

import pytest

from offload.isa import PseudoSrc, assemble
from offload.isa.versions import program_version
from offload.lowering import (
    LoweringError,
    lower,
    lower_program,
    lower_program_with_report,
    lower_with_report,
)
from offload.program import FuncInfo, LineInfo, MapReference, ProgramSpec
from offload.uapi import ProgType

from .differential import assert_equivalent, memory_for

SOURCE = """
    ldxdw %r6, [%r1+16]
    jslt32 %r6, 0, negative
    lddw %r2, map_fd(1)
    sdiv %r6, 3
    call local helper
    lddw %r3, map_value(2)+8
    exit
negative:
    mov %r0, 0
    exit
helper:
    movsx864 %r0, %r6
    exit
"""


def spec() -> ProgramSpec:
    insns = tuple(assemble(SOURCE))
    return ProgramSpec(
        name="demo", type=ProgType.XDP, instructions=insns, license="GPL",
        map_refs=(MapReference(2, "counters"),
                  MapReference(6, "config", PseudoSrc.MAP_VALUE, 8)),
        line_info=(LineInfo(0, "demo.c", 10, 1, "x = load()"),
                   LineInfo(4, "demo.c", 12, 5, "x /= 3"),
                   LineInfo(11, "demo.c", 20, 1, "return x")),
        functions=(FuncInfo(0, "demo"), FuncInfo(11, "helper")),
    )


def test_slots_follow_their_instructions():
    original = spec()
    lowered, report = lower_program_with_report(original, 1)
    assert program_version(lowered.instructions) == 1
    assert report.counts == {"jslt32": 1, "movsx864": 1, "sdiv64": 1}
    slots = {}
    slot = 0
    for insn in lowered.instructions:
        slots[slot] = insn
        slot += insn.width
    old = {}
    slot = 0
    for insn in original.instructions:
        old[slot] = insn
        slot += insn.width
    for before, after in zip(original.map_refs, lowered.map_refs):
        assert slots[after.slot] == old[before.slot]  # the very same lddw
        assert (after.map_name, after.kind, after.offset) == (
            before.map_name, before.kind, before.offset)
    assert [str(slots[info.slot]) for info in lowered.line_info] == [
        "ldxdw %r6, [%r1+16]", "jsge %r6, 0, +4", "mov %r0, %r6"]
    assert [info.text for info in lowered.line_info] == [i.text for i in original.line_info]
    helper = lowered.functions[1]
    assert helper.name == "helper" and str(slots[helper.slot]) == "mov %r0, %r6"
    call = next(at for at, insn in slots.items() if insn is not None and insn.is_local_call)
    assert call + 1 + slots[call].imm == helper.slot
    assert lowered.name == original.name and lowered.license == "GPL"


def test_already_compatible_program_is_returned_as_is():
    insns = assemble("mov %r0, 1\njlt %r0, 2, +0\nexit")
    original = ProgramSpec("p", ProgType.XDP, tuple(insns), map_refs=(), line_info=())
    lowered, report = lower_program_with_report(original, 2)
    assert lowered == original and not report.changed
    assert "nothing rewritten" in str(report)


def test_reference_to_the_middle_of_an_instruction_is_refused():
    bad = ProgramSpec("p", ProgType.XDP, tuple(assemble("lddw %r1, map_fd(1)\nsdiv %r0, 2\n"
                                                        "exit")),
                      map_refs=(MapReference(1, "m"),))
    with pytest.raises(LoweringError, match="does not start an instruction"):
        lower_program(bad, 1)


CALLS = """
    mov %r9, %r1
    ldxdw %r6, [%r1+16]
    sdiv32 %r6, -7
    mov %r1, %r6
    call local first
    mov %r7, %r0
    smod %r6, 5
    call local second
    add %r0, %r6
    add %r0, %r7
    stxdw [%r9], %r6
    exit
first:
    jsle32 %r1, 3, small
    movsx832 %r0, %r1
    exit
small:
    mov %r0, 77
    exit
second:
    stxdw [%r10-8], %r6
    ldxsb %r0, [%r10-1]
    bswap16 %r0
    exit
"""


@pytest.mark.parametrize("value", [0, 3, 4, 21, -1000, 1 << 40, -(1 << 63)])
def test_calls_across_expansions(value):
    """call local reaches the same code after rewrites before, inside and after it."""
    assert_equivalent(CALLS, memory_for({2: value}), 1)


def test_function_addresses_across_expansions():
    """``lddw rX, func`` is remapped like a call (running it needs a device: check where
    it points)."""
    program = assemble("lddw %r2, func fn\nsdiv %r0, 3\ncall 1\nexit\n"
                       "fn:\nbswap32 %r1\nmov %r0, %r1\nexit")
    lowered = lower(program, 1)
    starts, slot = [], 0
    for insn in lowered:
        starts.append(slot)
        slot += insn.width
    target = 1 + lowered[0].imm
    assert target in starts and str(lowered[starts.index(target)]) == "be32 %r1"


def test_unknown_target_version_is_refused():
    with pytest.raises(LoweringError, match="does not exist"):
        lower(assemble("exit"), 0)
    with pytest.raises(LoweringError, match="does not exist"):
        lower(assemble("exit"), 5)


def test_malformed_programs_are_refused_with_the_index():
    with pytest.raises(LoweringError) as err:
        lower(assemble("mov %r0, 1\nja +5\nexit"), 1)
    assert err.value.insn_index == 1 and "malformed" in err.value.reason
    with pytest.raises(LoweringError):
        lower([], 1)


def test_identity_keeps_slots():
    result = lower_with_report(assemble("lddw %r0, 5\nexit"), 1)
    assert result.slot_map == (0, 1, 2, 3)
