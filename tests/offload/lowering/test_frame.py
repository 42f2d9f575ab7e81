"""Static stack-frame depth, and spills that respect it - or refusals that say why not."""

from __future__ import annotations

import pytest

from offload.isa import assemble
from offload.isa.structure import build_layout
from offload.lowering import LoweringError, lower_with_report
from offload.lowering.frame import frame_use

from .differential import REGS, assert_equivalent, harness, memory_for


def use(program: str, subprogram: int = 0):
    return frame_use(build_layout(assemble(program)), subprogram)


def test_depth_follows_copies_and_constant_offsets():
    frame = use("""
        stdw [%r10-16], 0
        mov %r2, %r10
        add %r2, -40
        stw [%r2+4], 1
        mov %r3, %r2
        sub %r3, 8
        ldxb %r4, [%r3+1]
        mov %r0, 0
        exit
    """)
    assert frame.not_static is None
    assert frame.depth == 47  # r3 = r10-48, byte at +1


def test_pointer_given_to_a_helper_counts_from_where_it_points():
    frame = use("mov %r2, %r10\nadd %r2, -24\ncall 2\nmov %r0, 0\nexit")
    assert (frame.not_static, frame.depth) == (None, 24)


def test_paths_join_into_sets_of_offsets():
    frame = use("""
        mov %r2, %r10
        jeq %r1, 0, +2
        add %r2, -64
        ja +1
        add %r2, -8
        stdw [%r2], 0
        mov %r0, 0
        exit
    """)
    assert frame.depth == 64


def test_each_function_has_its_own_frame():
    program = "stdw [%r10-8], 0\ncall local fn\nexit\nfn:\nstdw [%r10-200], 0\nmov %r0, 0\nexit"
    assert use(program, 0).depth == 8
    assert use(program, 1).depth == 200


@pytest.mark.parametrize(("program", "reason"), [
    ("mov %r2, %r10\nstxdw [%r1], %r2\nmov %r0, 0\nexit", "is stored to memory"),
    ("mov %r1, %r10\nadd %r1, -8\ncall local fn\nexit\nfn:\nmov %r0, 0\nexit",
     "is passed to a subprogram"),
    ("mov %r2, %r10\nadd %r2, %r1\nmov %r0, 0\nexit", "arithmetic"),
    ("mov32 %r2, %r10\nmov %r0, 0\nexit", "arithmetic"),
    ("mov %r2, %r10\nmov %r3, 100\nloop:\nadd %r2, -8\nstdw [%r2], 0\nsub %r3, 1\n"
     "jne %r3, 0, loop\nmov %r0, 0\nexit", "loop"),
    ("lddw %r3, func fn\nmov %r2, %r10\ncall 1\nexit\nfn:\nmov %r0, 0\nexit", "callbacks"),
])
def test_frames_that_are_not_static(program, reason):
    frame = use(program)
    assert frame.not_static is not None and reason in frame.not_static


CROWDED = harness("jgt32 %r2, %r3, +1\nmov %r0, 9", set(REGS))


def test_spill_goes_below_the_deepest_use_and_keeps_the_stack():
    # Every register but r0 stays live across the jump; r0 then copies the stack out.
    body = """
        stxdw [%r10-8], %r2
        stxdw [%r10-16], %r3
        stxdw [%r10-24], %r4
        stxw [%r10-28], %r5
        jgt32 %r2, %r3, +0
        ldxdw %r0, [%r10-8]
        stxdw [%r1+80], %r0
        ldxdw %r0, [%r10-16]
        stxdw [%r1+88], %r0
        ldxdw %r0, [%r10-24]
        stxdw [%r1+96], %r0
        ldxw %r0, [%r10-28]
    """
    program = harness(body, set(REGS))
    values = {reg: 0x0102030405060708 * (reg + 1) for reg in REGS}
    insns = assert_equivalent(program, memory_for(values), 1)
    spills = {i.off for i in insns if i.dst == 10 and i.src not in (2, 3, 4, 5)}
    assert spills == {-40}  # 28 bytes in use, rounded up to 32, then one 8-byte slot


def test_spill_refused_when_the_frame_is_full():
    program = assemble("stdw [%r10-512], 0\n" + CROWDED)
    with pytest.raises(LoweringError) as err:
        lower_with_report(program, 1)
    assert "512" in err.value.reason and "spill" in err.value.reason
    assert err.value.insn_index == 10  # the jgt32, after stdw and nine loads


def test_spill_refused_when_the_frame_is_not_static():
    program = assemble("mov %r9, %r10\nstxdw [%r1+72], %r9\n" + CROWDED)
    with pytest.raises(LoweringError) as err:
        lower_with_report(program, 1)
    assert "not static" in err.value.reason and "stored to memory" in err.value.reason


def test_unanalysable_frame_is_fine_when_no_spill_is_needed():
    program = "mov %r2, %r10\nstxdw [%r1], %r2\nldxdw %r3, [%r1+8]\njgt32 %r3, 4, +1\n" \
              "mov %r0, 0\nexit"
    assert_equivalent(program, memory_for({}), 1)
