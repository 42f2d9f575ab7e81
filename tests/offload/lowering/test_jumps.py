"""v2 jumps, JMP32 and gotol lowered to v1/v2: same decisions for every operand value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa import InsnClass, Instruction, JmpOp, assemble
from offload.isa.instruction import JMP_NAMES
from offload.isa.versions import program_version
from offload.lowering import LoweringError, lower, lower_with_report

from .differential import REGS, assert_equivalent, harness, imms, memory_for, regs, values64

V2_OPS = ["jlt", "jle", "jslt", "jsle"]
ALL_OPS = list(JMP_NAMES.values())


def _branch(jump: str) -> str:
    return f"""
    {jump}, taken
    mov %r0, 1
    ja out
taken:
    mov %r0, 2
out:
    """


@settings(max_examples=150, deadline=None)
@given(op=st.sampled_from(V2_OPS), a=values64, b=values64, imm=imms, use_imm=st.booleans(),
       d=regs, s=regs)
def test_v2_jumps_to_v1(op, a, b, imm, use_imm, d, s):
    operand = str(imm) if use_imm else f"%r{s}"
    body = _branch(f"{op} %r{d}, {operand}")
    insns = assert_equivalent(harness(body, {d, s}), memory_for({d: a, s: b}), 1)
    assert all(i.jmp_op not in (JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE)
               for i in insns if i.cls == InsnClass.JMP)


def test_v2_jump_shapes():
    """Register form: mirrored with swapped operands; immediate form: inverted around ja."""
    reg = lower(assemble("jlt %r2, %r3, +1\nmov %r0, 0\nexit"), 1)
    assert str(reg[0]) == "jgt %r3, %r2, +1"
    imm = lower(assemble("jsle %r2, 5, +1\nmov %r0, 0\nexit"), 1)
    assert [str(i) for i in imm[:2]] == ["jsgt %r2, 5, +1", "ja +1"]
    assert len(imm) == 4


@settings(max_examples=300, deadline=None)
@given(op=st.sampled_from(ALL_OPS), a=values64, b=values64, imm=imms, use_imm=st.booleans(),
       d=regs, s=regs, target=st.sampled_from([1, 2]),
       others=st.sets(st.sampled_from(REGS)))
def test_jmp32_lowered(op, a, b, imm, use_imm, d, s, target, others):
    """Random live sets: scratch registers come from dead ones, or are spilled and restored
    when every register is live."""
    operand = str(imm) if use_imm else f"%r{s}"
    body = _branch(f"{op}32 %r{d}, {operand}")
    values = {reg: (a if reg == d else b if reg == s else 0x1111111111111111 * reg)
              for reg in REGS}
    assert_equivalent(harness(body, {d, s} | others), memory_for(values), target)


def test_jmp32_uses_dead_registers_and_spills_only_when_all_live():
    program = harness(_branch("jgt32 %r2, %r3"), {2, 3})
    result = lower_with_report(assemble(program), 1)
    assert result.report.spills == 0
    crowded = harness(_branch("jgt32 %r2, %r3"), set(REGS))
    result = lower_with_report(assemble(crowded), 1)
    assert result.report.spills == 1
    # r0 is written on both paths after the jump, so it is dead there and holds one copy;
    # the other copy borrows a live register through one slot below the unused frame.
    assert result.report.stack_growth == 8
    assert any(i.dst == 10 and i.cls == InsnClass.STX for i in result.instructions)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 20), a=values64)
def test_gotol_in_loops_and_forward(n, a):
    """gotol backward (a counted loop) and forward, across rewritten instructions."""
    body = f"""
    mov %r3, {n}
    mov %r0, 0
loop:
    jslt32 %r3, 1, done
    movsx864 %r4, %r2
    add %r0, %r4
    sub %r3, 1
    gotol loop
done:
    gotol end
    mov %r0, 99
end:
    """
    insns = assert_equivalent(harness(body, {2}), memory_for({2: a}), 3)
    assert not any(i.opcode == InsnClass.JMP32 | JmpOp.JA for i in insns)


def test_jumps_across_expansions_are_remapped():
    program = assemble("""
        ldxdw %r2, [%r1+16]
        ja forward
    back:
        sdiv %r2, 3
        jslt32 %r2, 0, neg
        mov %r0, 1
        exit
    neg:
        mov %r0, 2
        exit
    forward:
        smod32 %r2, 7
        ja back
    """)
    for value in (-100, 100, 0, -(1 << 63)):
        assert_equivalent(program, memory_for({2: value}), 1)
    assert_equivalent(program, memory_for({2: -100}), 2)


def _padded_jump(jump: str, padding: int) -> list[Instruction]:
    head = assemble(f"mov %r0, 0\nmov %r2, 1\n{jump}")
    pad = [Instruction(InsnClass.ALU64 | 0xB0, 0, 0, 0, 1)] * padding  # mov r0, 1
    return head + pad + assemble("exit")


def test_gotol_that_still_fits_becomes_ja():
    insns = _padded_jump("ja32 +30000", 30000)
    lowered = lower(insns, 3)
    assert str(lowered[2]) == "ja +30000"
    assert program_version(lowered) == 1


def test_gotol_beyond_16_bits_is_refused():
    insns = _padded_jump("ja32 +40000", 40000)
    with pytest.raises(LoweringError) as err:
        lower(insns, 3)
    assert err.value.insn_index == 2
    assert "gotol" in err.value.reason and "16-bit" in err.value.reason


def test_jump_pushed_out_of_range_by_expansion_is_refused():
    """A v1 jump spanning 32766 slots, with a rewritten instruction inside it."""
    head = assemble("mov %r0, 0\nmov %r2, 1\njeq %r2, 0, +32766\nsdiv %r0, 3")
    pad = [Instruction(InsnClass.ALU64 | 0xB0, 0, 0, 0, 1)] * 32765
    with pytest.raises(LoweringError) as err:
        lower(head + pad + assemble("exit"), 1)
    assert err.value.insn_index == 2
    assert "16-bit offset" in err.value.reason


def test_jmp32_kept_for_v3():
    insns = assemble("mov %r0, 0\njlt32 %r0, 3, +1\nmov %r0, 1\nexit")
    assert lower(insns, 3) == insns
    assert lower(insns, 4) == insns
