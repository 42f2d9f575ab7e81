"""sdiv/smod (32 and 64 bit, register and immediate) through unsigned div/mod: RFC 9669
results for every operand, including division by zero and INT_MIN / -1."""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from offload.engine.harness import run_on_memory
from offload.isa import assemble
from offload.lowering import lower, lower_with_report

from .differential import REGS, assert_equivalent, harness, imms, memory_for, regs, values64

M64 = (1 << 64) - 1
OPS = ["sdiv", "smod", "sdiv32", "smod32"]


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(OPS), a=values64, b=values64, d=regs, s=regs,
       target=st.sampled_from([1, 3]), others=st.sets(st.sampled_from(REGS)))
@example(op="sdiv", a=1 << 63, b=M64, d=2, s=3, target=1, others=set())
@example(op="smod", a=1 << 63, b=M64, d=2, s=3, target=1, others=set())
@example(op="sdiv32", a=0x80000000, b=0xFFFFFFFF, d=2, s=3, target=1, others=set())
@example(op="smod32", a=0xDEAD_BEEF_8000_0000, b=0x1234_FFFF_FFFF, d=2, s=3, target=1,
         others=set())
@example(op="smod32", a=0xDEAD_BEEF_8000_0005, b=0x1234_0000_0000, d=2, s=3, target=1,
         others=set())
def test_register_divisor(op, a, b, d, s, target, others):
    body = f"{op} %r{d}, %r{s}\nmov %r0, %r{d}"
    values = {reg: (a if reg == d else b if reg == s else 0x0F0F0F0F0F0F0F0F ^ reg)
              for reg in REGS}
    assert_equivalent(harness(body, {d, s} | others), memory_for(values), target)


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(OPS), a=values64, k=imms, d=regs, others=st.sets(st.sampled_from(REGS)))
@example(op="sdiv", a=1 << 63, k=-1, d=2, others=set())
@example(op="smod", a=1 << 63, k=-1, d=2, others=set())
@example(op="sdiv", a=1 << 63, k=-(1 << 31), d=2, others=set())
@example(op="smod32", a=0xFFFF_FFFF_8000_0000, k=-(1 << 31), d=2, others=set())
@example(op="smod32", a=0xFFFF_FFFF_8000_0001, k=0, d=2, others=set())
def test_immediate_divisor(op, a, k, d, others):
    body = f"{op} %r{d}, {k}\nmov %r0, %r{d}"
    assert_equivalent(harness(body, {d} | others), memory_for({d: a}), 1)


def _run(program: str, *values: int) -> int:
    data = struct.pack(f"<{len(values)}Q", *(v & M64 for v in values))
    return run_on_memory(lower(assemble(program), 1), data)[0].r0


@pytest.mark.parametrize(("op", "a", "b", "expected"), [
    ("sdiv", -7, 2, -3), ("sdiv", 7, -2, -3), ("sdiv", -7, -2, 3), ("sdiv", 5, 0, 0),
    ("smod", -7, 2, -1), ("smod", 7, -2, 1), ("smod", -7, -2, -1), ("smod", -5, 0, -5),
    ("sdiv", -(1 << 63), -1, -(1 << 63)), ("smod", -(1 << 63), -1, 0),
    ("sdiv32", -7, 2, 0xFFFFFFFD), ("smod32", -7, 0, 0xFFFFFFF9),
    ("sdiv32", -(1 << 31), -1, 0x80000000), ("smod32", -(1 << 31), -1, 0),
])
def test_rfc_corner_cases(op, a, b, expected):
    """The RFC's stated results, checked against the numbers rather than the interpreter."""
    program = f"ldxdw %r0, [%r1]\nldxdw %r2, [%r1+8]\n{op} %r0, %r2\nexit"
    assert _run(program, a, b) == expected & M64


@settings(max_examples=100, deadline=None)
@given(op=st.sampled_from(OPS), a=values64, d=regs)
def test_divisor_is_dividend(op, a, d):
    assert_equivalent(harness(f"{op} %r{d}, %r{d}\nmov %r0, %r{d}", {d}), memory_for({d: a}), 1)


def test_dead_divisor_is_used_in_place():
    """When the divisor register dies with the division, no copy and no spill are needed."""
    program = assemble("ldxdw %r0, [%r1]\nldxdw %r2, [%r1+8]\nsdiv %r0, %r2\nexit")
    result = lower_with_report(program, 1)
    assert result.report.spills == 0
    assert not any(str(i).startswith("mov %r") and i.src == 2 for i in result.instructions)


def test_division_by_zero_immediate_needs_no_division():
    assert [str(i) for i in lower(assemble("sdiv %r0, 0\nexit"), 1)] == ["mov %r0, 0", "exit"]
    assert [str(i) for i in lower(assemble("smod32 %r0, 0\nexit"), 1)] == [
        "mov32 %r0, %r0", "exit"]
