"""Liveness of whole registers and of upper halves, and the scratch choices they allow."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa import assemble
from offload.isa.liveness import live_out, uses_defs
from offload.isa.structure import build_layout
from offload.lowering import lower, lower_with_report
from offload.lowering.upper_halves import uses_upper

from .differential import assert_equivalent, harness, memory_for, values64


def regs_of(mask: int) -> set[int]:
    return {reg for reg in range(11) if mask >> reg & 1}


def live_after(program: str) -> list[set[int]]:
    layout = build_layout(assemble(program))
    out = live_out(layout)
    return [regs_of(out[slot]) for slot in sorted(out)]


@pytest.mark.parametrize(("text", "uses", "defs"), [
    ("add %r2, %r3", {2, 3}, {2}),
    ("mov %r2, %r3", {3}, {2}),
    ("mov32 %r2, 7", set(), {2}),
    ("neg %r4", {4}, {4}),
    ("be16 %r4", {4}, {4}),
    ("ldxw %r2, [%r3+4]", {3}, {2}),
    ("stw [%r3+4], 1", {3}, set()),
    ("stxdw [%r3+4], %r5", {3, 5}, set()),
    ("call 1", {1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 5}),
    ("callx %r7", {1, 2, 3, 4, 5, 7}, {0, 1, 2, 3, 4, 5}),
    ("exit", {0}, set()),
    ("jlt32 %r2, %r3, +0", {2, 3}, set()),
    ("ja +0", set(), set()),
    ("lddw %r6, 0x1122334455", set(), {6}),
    ("lock fetch add [%r2+0], %r3", {2, 3}, {3}),
    ("lock xchg32 [%r2+0], %r3", {2, 3}, {3}),
    ("lock cmpxchg [%r2+0], %r3", {0, 2, 3}, {0}),
    ("lock add [%r2+0], %r3", {2, 3}, set()),
])
def test_uses_and_defs(text, uses, defs):
    got_uses, got_defs = uses_defs(assemble(text)[0])
    assert (regs_of(got_uses), regs_of(got_defs)) == (uses, defs)


@pytest.mark.parametrize(("text", "upper"), [
    ("add32 %r2, %r3", set()),
    ("add %r2, %r3", {2, 3}),
    ("jgt32 %r2, %r3, +0", set()),
    ("jgt %r2, %r3, +0", {2, 3}),
    ("stxw [%r2+0], %r3", {2}),
    ("stxw [%r3+0], %r3", {3}),
    ("stxdw [%r2+0], %r3", {2, 3}),
    ("movsx3264 %r2, %r3", set()),
    ("bswap32 %r2", set()),
    ("bswap64 %r2", {2}),
    ("be64 %r2", {2}),
    ("lock cmpxchg32 [%r2+0], %r3", {2}),
    ("lock cmpxchg [%r2+0], %r3", {0, 2, 3}),
    ("exit", {0}),
])
def test_upper_half_reads(text, upper):
    assert regs_of(uses_upper(assemble(text)[0])) == upper


def test_calls_clobber_r0_to_r5_and_keep_r6_to_r9():
    live = live_after("""
        mov %r6, 1
        mov %r2, 2
        mov %r1, 3
        call 1
        add %r0, %r6
        exit
    """)
    assert live[3] == {0, 6}  # after the call: its result and the callee-saved r6
    assert live[2] == {1, 2, 3, 4, 5, 6}  # before it: every argument register


def test_callee_reads_on_entry_are_live_at_the_call():
    """A subprogram reading r7 before writing it makes r7 live at its call sites."""
    live = live_after("""
        mov %r7, 5
        call local fn
        exit
    fn:
        mov %r0, %r7
        exit
    """)
    assert 7 in live[0]


def test_jmp32_uses_a_dead_register_and_extends_in_place_when_the_upper_half_is_dead():
    program = assemble("""
        ldxdw %r2, [%r1]
        ldxdw %r3, [%r1+8]
        jgt32 %r2, %r3, +1
        mov32 %r2, 7
        mov32 %r0, %r2
        add %r0, %r3
        exit
    """)
    # r2: on both paths only a 32-bit read or a write follows, so it is zero-extended in
    # place; r3's upper half is read by the 64-bit add, so it is copied, into r0 (dead).
    lowered = [str(i) for i in lower(program, 1)]
    assert lowered[2:5] == ["mov32 %r2, %r2", "mov32 %r0, %r3", "jgt %r2, %r0, +1"]


FOLLOWERS = ["jgt %r2, 100, out", "mov32 %r2, %r2", "stxw [%r1+40], %r2",
             "stxdw [%r1+40], %r2", "add %r0, %r2", "add32 %r0, %r2", "mov %r2, 1",
             "lsh %r2, 1\nstxdw [%r1+40], %r2", "be64 %r2\nmov %r0, %r2",
             "be32 %r2\nmov %r0, %r2", "jset %r2, %r2, out", "mov %r0, %r2"]


@settings(max_examples=250, deadline=None)
@given(op=st.sampled_from(["jeq", "jgt", "jslt", "jset", "jsge", "jle"]), a=values64,
       b=values64, imm=st.sampled_from([5, -5, 0x7FFFFFFF, -0x80000000]),
       use_imm=st.booleans(), follow=st.sampled_from(FOLLOWERS))
def test_upper_half_changes_are_never_observed(op, a, b, imm, use_imm, follow):
    """Whatever reads the operands next, an in-place extension never shows: the registers
    die after ``follow``, so only what it does with them can reveal a difference."""
    operand = str(imm) if use_imm else "%r3"
    body = f"""
        ldxdw %r2, [%r1+16]
        ldxdw %r3, [%r1+24]
        mov %r0, 0
        {op}32 %r2, {operand}, taken
        {follow}
        stxdw [%r1+32], %r0
        mov %r0, 1
        ja out
    taken:
        {follow.replace("%r2", "%r3") if not use_imm else follow}
        stxdw [%r1+32], %r0
        mov %r0, 2
    out:
    """
    assert_equivalent(harness(body, {0}), memory_for({2: a, 3: b}), 1)


def test_no_spill_when_dead_registers_suffice():
    program = assemble("ldxdw %r2, [%r1]\nldxdw %r3, [%r1+8]\nsdiv32 %r2, %r3\n"
                       "mov %r0, %r2\nadd %r0, %r3\nexit")
    report = lower_with_report(program, 1).report
    assert report.spills == 0 and report.stack_growth == 0
