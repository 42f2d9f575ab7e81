"""Every conditional jump's narrowing against the reference interpreter.

For each comparison, in ``JMP`` and ``JMP32`` and in its register and immediate forms: when the
interpreter takes the jump for r1 = x and r2 = y, the verifier must keep the taken edge and
(x, y) must lie in the registers it narrowed for that edge; likewise for the fall-through edge.
Small operands are enumerated exhaustively (``transfer_cases``); full-width ones are drawn by
hypothesis.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offload.engine.alu import jump_taken
from offload.isa.instruction import Instruction
from offload.isa.opcodes import InsnClass, JmpOp, Source
from offload.verifier.branch import _NEGATE_ANY, holds, narrow
from offload.verifier.scalar import Scalar
from offload.verifier.tnum import U32, U64, Tnum

from .transfer_cases import (
    EDGES,
    IMMS,
    JMP_OPS,
    abstraction,
    budget,
    check_values,
    engine_jump,
    hsettings,
    operand,
    pairs,
    small_operands,
    spread,
    verifier_branch,
    wide_operands,
)

SPECS = [(f"{op.name.lower()}{'32' if cls == InsnClass.JMP32 else ''}", cls, op)
         for cls in (InsnClass.JMP, InsnClass.JMP32) for op in JMP_OPS]
IDS = [s[0] for s in SPECS]
SMALL = small_operands(seed=1)


def _insn(cls: int, op: int, imm: int | None) -> Instruction:
    if imm is None:
        return Instruction(cls | op | Source.X, dst=1, src=2, off=1)
    return Instruction(cls | op | Source.K, dst=1, off=1, imm=imm)


def _check(insn: Instruction, a: Scalar, b: Scalar, xs: list[int], ys: list[int],
           rng: random.Random, limit: int = 400) -> None:
    """Each concrete pair follows an edge the verifier keeps, inside that edge's registers."""
    taken, fall = verifier_branch(insn, a, b)
    run = engine_jump(insn)
    for x, y in spread(xs, ys, limit, rng):
        went = run(x, y)
        edge = taken if went else fall
        where = "taken" if went else "fall-through"
        if edge is None:
            raise AssertionError(f"{insn}: r1={x:#x} in {a}, r2={y:#x} in {b} goes {where}, "
                                 "an edge the verifier declared impossible")
        if not edge[0].contains(x):
            raise AssertionError(f"{insn}: r1={x:#x} in {a}, r2={y:#x} in {b} goes {where}, "
                                 f"r1 narrowed to {edge[0]}")
        if insn.source == Source.X and not edge[1].contains(y):
            raise AssertionError(f"{insn}: r1={x:#x} in {a}, r2={y:#x} in {b} goes {where}, "
                                 f"r2 narrowed to {edge[1]}")


# ---------------------------------------------------------------- the two concrete semantics
@pytest.mark.parametrize("bits", [32, 64])
def test_constant_comparisons_are_the_engines(bits):
    """``branch.holds`` decides jumps between constants: it must be the engine's test, and
    the negation used for the fall-through edge its complement."""
    rng = random.Random(bits)
    randoms = [rng.getrandbits(64) for _ in range(budget(10, per=10))]
    values = list(EDGES) + list(range(9)) + randoms
    for op in JMP_OPS:
        for x in values:
            for y in values:
                taken = jump_taken(op, x, y, wide=bits == 64)
                assert holds(op, x, y, bits) == taken, (op, x, y)
                assert holds(_NEGATE_ANY[op], x, y, bits) != taken, (op, x, y)


# ---------------------------------------------------------------- exhaustive, small operands
@pytest.mark.parametrize("name,cls,op", SPECS, ids=IDS)
def test_jump_register_form_exhaustive(name, cls, op):
    rng = random.Random(name)
    insn = _insn(cls, op, None)
    for (a, xs), (b, ys) in pairs(SMALL, budget(120), seed=name):
        _check(insn, a, b, xs, ys, rng)


@pytest.mark.parametrize("name,cls,op", SPECS, ids=IDS)
def test_jump_wide_tnums_exhaustive(name, cls, op):
    """Every pair of values of an 8-unknown-bit and a 4-unknown-bit tnum, both orders."""
    rng = random.Random(name)
    insn = _insn(cls, op, None)
    for (a, xs), (b, ys) in wide_operands(name, budget(2, per=100)):
        _check(insn, a, b, xs, ys, rng, limit=1 << 12)
        _check(insn, b, a, ys, xs, rng, limit=1 << 12)


@pytest.mark.parametrize("name,cls,op", SPECS, ids=IDS)
def test_jump_immediate_form_exhaustive(name, cls, op):
    rng = random.Random(name)
    imms = rng.sample(IMMS, min(len(IMMS), budget(8)))
    for imm in imms:
        insn = _insn(cls, op, imm)
        for a, xs in SMALL:
            _check(insn, a, Scalar.const(0), xs, [0], rng)  # r2 is not read


@pytest.mark.parametrize("name,cls,op", SPECS, ids=IDS)
def test_jump_same_register(name, cls, op):
    """``jeq r1, r1``: both operands are one register, narrowed twice."""
    insn = Instruction(cls | op | Source.X, dst=1, src=1, off=1)
    run = engine_jump(insn)
    for a, xs in SMALL:
        taken, fall = verifier_branch(insn, a, a)
        for x in xs:
            edge = taken if run(x, x) else fall
            assert edge is not None and edge[0].contains(x), (insn, a, hex(x), edge)


# ---------------------------------------------------------------- full width, sampled
@pytest.mark.parametrize("name,cls,op", SPECS, ids=IDS)
@hsettings(45)
@given(a=operand(), b=operand(), imm=st.one_of(st.none(), st.none(), st.sampled_from(IMMS),
                                               st.integers(-(1 << 31), (1 << 31) - 1)))
def test_jump_full_width(name, cls, op, a, b, imm):
    rng = random.Random(0)
    insn = _insn(cls, op, imm)
    src = b if imm is None else (Scalar.const(0), [0])
    _check(insn, a[0], src[0], check_values(a, rng), check_values(src, rng), rng, limit=200)


# ---------------------------------------------------------------- narrowing keeps precision
def test_narrowing_still_narrows():
    """Soundness is not bought by giving up: the usual bounds checks still narrow."""
    a, b = Scalar.unknown(), Scalar.const(10)
    taken = narrow(JmpOp.JLT, a, b, 64)
    assert taken is not None and (taken[0].umin, taken[0].umax) == (0, 9)
    low = narrow(JmpOp.JSLT, abstraction([5, U64]), Scalar.const(0), 32)
    assert low is not None and low[0].s32max < 0
    assert narrow(JmpOp.JGT, Scalar.urange(0, 5), Scalar.const(5), 64) is None
    masked = narrow(JmpOp.JSET, Scalar.from_tnum(Tnum(0, 0xF)), Scalar.const(4), 64)
    assert masked is not None and masked[0].var.value == 4
    assert narrow(JmpOp.JEQ, Scalar.urange(0, U32), Scalar.const(1 << 32), 64) is None
