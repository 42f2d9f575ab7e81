"""Every ALU instruction's transfer function against the reference interpreter.

For each operation, in both widths and in its register and immediate forms, the verifier's
result for abstract operands must hold what the interpreter computes for every pair of their
concrete values. Small operands are enumerated exhaustively (``transfer_cases``); full-width
ones are drawn by hypothesis. A verifier that refuses an instruction on scalars with an
internal error, or crashes, fails too.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offload.engine.alu import ALU32_OPS, ALU64_OPS
from offload.isa import assemble
from offload.isa.instruction import Instruction
from offload.isa.opcodes import AluOp, Source
from offload.maps.spec import MapSpec
from offload.uapi import MapType
from offload.verifier import VerifierError, verify
from offload.verifier.arith import byte_swap, concrete, sign_extend
from offload.verifier.reject import Reject, VerifierBug
from offload.verifier.scalar import Scalar
from offload.verifier.tnum import U32, U64, Tnum

from .suite import FULL
from .transfer_cases import (
    EDGES,
    IMMS,
    abstraction,
    alu_specs,
    budget,
    check_values,
    end_specs,
    engine_alu,
    hsettings,
    operand,
    pairs,
    small_operands,
    spread,
    verifier_alu,
    wide_operands,
)

ALU = alu_specs()
END = end_specs()
SMALL = small_operands()
UNARY = {AluOp.NEG}


def _insn(cls: int, op: int, off: int, imm: int | None) -> Instruction:
    if op == AluOp.NEG:
        return Instruction(cls | op, dst=1)
    if imm is None:
        return Instruction(cls | op | Source.X, dst=1, src=2, off=off)
    return Instruction(cls | op | Source.K, dst=1, off=off, imm=imm)


def _check(insn: Instruction, a: Scalar, b: Scalar, xs: list[int], ys: list[int],
           rng: random.Random, limit: int = 400) -> None:
    """Every (x, y) of the operands lands in the verifier's result for ``insn``."""
    result = verifier_alu(insn, a, b)
    if result is None:
        if insn.source == Source.X:
            raise AssertionError(f"{insn} refused on scalars {a} and {b}")
        return  # an immediate the verifier refuses (division by zero, shift too wide)
    run = engine_alu(insn)
    for x, y in spread(xs, ys, limit, rng):
        got = run(x, y)
        if not result.contains(got):
            raise AssertionError(f"{insn}: r1={x:#x} in {a}, r2={y:#x} in {b} gives {got:#x}, "
                                 f"outside the verifier's {result}")


# ---------------------------------------------------------------- the two concrete semantics
@pytest.mark.parametrize("bits", [32, 64])
def test_constant_folding_is_the_engines_arithmetic(bits):
    """``arith.concrete`` folds constants in the verifier: it must compute what runs."""
    table = ALU64_OPS if bits == 64 else ALU32_OPS
    rng = random.Random(bits)
    randoms = [rng.getrandbits(64) for _ in range(budget(12, per=10))]
    values = list(EDGES) + list(range(9)) + randoms
    checked = 0
    for (op, off), fn in table.items():
        if op == AluOp.MOV and off:
            continue  # movsx is folded by sign_extend, checked below
        for x in values:
            for y in values:
                cx, cy = (x, y) if bits == 64 else (x & U32, y & U32)
                assert concrete(op, x, y, bits, off == 1) == fn(cx, cy), (op, off, x, y)
                checked += 1
    assert checked > 10_000


# ---------------------------------------------------------------- exhaustive, small operands
@pytest.mark.parametrize("name,cls,op,off", ALU, ids=[s[0] for s in ALU])
def test_alu_register_form_exhaustive(name, cls, op, off):
    rng = random.Random(name)
    insn = _insn(cls, op, off, None)
    for (a, xs), (b, ys) in pairs(SMALL, budget(120), seed=name):
        _check(insn, a, b, xs, ys, rng)


@pytest.mark.parametrize("name,cls,op,off", ALU, ids=[s[0] for s in ALU])
def test_alu_wide_tnums_exhaustive(name, cls, op, off):
    """Every pair of values of an 8-unknown-bit and a 4-unknown-bit tnum, both orders."""
    rng = random.Random(name)
    insn = _insn(cls, op, off, None)
    for (a, xs), (b, ys) in wide_operands(name, budget(2, per=100)):
        _check(insn, a, b, xs, ys, rng, limit=1 << 12)
        _check(insn, b, a, ys, xs, rng, limit=1 << 12)


@pytest.mark.parametrize("name,cls,op,off", [s for s in ALU if s[2] != AluOp.NEG and
                                              not (s[2] == AluOp.MOV and s[3])],
                         ids=[s[0] for s in ALU if s[2] != AluOp.NEG and
                              not (s[2] == AluOp.MOV and s[3])])
def test_alu_immediate_form_exhaustive(name, cls, op, off):
    rng = random.Random(name)
    for imm in rng.sample(IMMS, min(len(IMMS), budget(8))):
        insn = _insn(cls, op, off, imm)
        for a, xs in SMALL:
            _check(insn, a, Scalar.const(0), xs, [0], rng)  # r2 is not read


@pytest.mark.parametrize("name,cls,source,width", END, ids=[s[0] for s in END])
def test_byte_order_exhaustive(name, cls, source, width):
    rng = random.Random(name)
    insn = Instruction(cls | AluOp.END | source, dst=1, imm=width)
    for a, xs in SMALL:
        _check(insn, a, a, xs, [0], rng)


# ---------------------------------------------------------------- full width, sampled
@pytest.mark.parametrize("name,cls,op,off", ALU, ids=[s[0] for s in ALU])
@hsettings(40)
@given(a=operand(), b=operand(), imm=st.one_of(st.none(), st.sampled_from(IMMS),
                                               st.integers(-(1 << 31), (1 << 31) - 1)))
def test_alu_full_width(name, cls, op, off, a, b, imm):
    if op == AluOp.MOV and off:
        imm = None  # movsx has only a register form
    rng = random.Random(0)
    insn = _insn(cls, op, off, imm)
    src = b if imm is None else (Scalar.const(0), [0])
    _check(insn, a[0], src[0], check_values(a, rng), check_values(src, rng), rng, limit=200)


@pytest.mark.parametrize("name,cls,source,width", END, ids=[s[0] for s in END])
@hsettings(60)
@given(a=operand())
def test_byte_order_full_width(name, cls, source, width, a):
    rng = random.Random(0)
    insn = Instruction(cls | AluOp.END | source, dst=1, imm=width)
    _check(insn, a[0], a[0], check_values(a, rng), [0], rng)


# ---------------------------------------------------------------- regressions, by class
def _sext(x: int, from_bits: int, bits: int) -> int:
    low = x & ((1 << from_bits) - 1)
    if low >> (from_bits - 1):
        low -= 1 << from_bits
    return low & ((1 << bits) - 1)


@pytest.mark.parametrize("from_bits", [8, 16])
def test_movsx_8_16_to_32_sign_bit_class(from_bits):
    """movsx into a 32-bit register zero-extends a 32-bit result: a negative byte or half
    becomes 0xffffff80-like, which a signed 64-bit clamp to [-128, 127] used to exclude (or,
    for a constant, to trip an internal check)."""
    sign = 1 << (from_bits - 1)
    cases = [Scalar.const(sign), Scalar.const(U64), Scalar.urange(sign, 2 * sign - 1),
             Scalar.urange(0, 2 * sign - 1), Scalar.srange(-3, 3), Scalar.unknown(),
             abstraction([sign - 1, sign]), Scalar.from_tnum(Tnum(0, sign))]
    for s in cases:
        out = sign_extend(s, from_bits, 32)
        for x in (sign - 1, sign, 2 * sign - 1, 0, U64, U64 - sign + 1, sign | (1 << 40)):
            if s.contains(x):
                assert out.contains(_sext(x, from_bits, 32)), (s, hex(x), out)
        assert out.umax <= U32, out  # a 32-bit result: the upper word is zero
    neg = sign_extend(Scalar.const(sign), from_bits, 32)
    assert neg.is_const and neg.value == (U32 ^ (sign - 1))
    # precision kept: a low part known to be negative gives the 32-bit image of [-sign, -1]
    top = sign_extend(Scalar.urange(sign, 2 * sign - 1), from_bits, 32)
    assert (top.umin, top.umax) == ((U32 + 1 - sign), U32)


@pytest.mark.parametrize("from_bits", [8, 16, 32])
def test_movsx_to_64_and_sign_extending_loads_class(from_bits):
    """movsx to 64 bits and the sign-extending loads (``sign_extend(var, size * 8)``)."""
    sign = 1 << (from_bits - 1)
    for s in (Scalar.const(sign), Scalar.urange(sign, 2 * sign - 1), Scalar.srange(-5, 5),
              Scalar.urange(sign - 2, sign + 1), Scalar.unknown()):
        out = sign_extend(s, from_bits)
        for x in (sign - 2, sign - 1, sign, sign + 1, 2 * sign - 1, U64, U64 - 4, 5):
            if s.contains(x):
                assert out.contains(_sext(x, from_bits, 64)), (s, hex(x), out)
    top = sign_extend(Scalar.urange(sign, 2 * sign - 1), from_bits)
    assert (top.smin, top.smax) == (-sign, -1)
    # a value already in the narrow signed range is unchanged
    assert sign_extend(Scalar.srange(-5, 5), from_bits) == Scalar.srange(-5, 5)


def test_byte_swap_keeps_low_word_bounds():
    """le16/le32 of a small value is the value; swaps give a zero-extended width."""
    assert byte_swap(Scalar.urange(3, 9), 16, False) == Scalar.urange(3, 9)
    swapped = byte_swap(Scalar.const(0x1122), 16, True)
    assert swapped.is_const and swapped.value == 0x2211


def test_a_broken_invariant_is_a_refusal_not_an_assertion():
    """An empty range asked of the domain is a verifier bug: a typed refusal."""
    with pytest.raises(VerifierBug) as err:
        Scalar.urange(5, 1)
    assert isinstance(err.value, Reject) and err.value.reason.startswith("verifier bug:")
    with pytest.raises(VerifierBug):
        Scalar.srange(1, -1)


OOB_MOVSX832 = """
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_fd(1)
call 1
jeq %r0, 0, out
ldx{size} %r1, [%r0+0]
movsx{bits}32 %r1, %r1
add %r0, %r1
ldxb %r2, [%r0+0]
out:
mov %r0, 0
exit
"""


@pytest.mark.parametrize("bits", [8, 16])
def test_movsx_8_16_to_32_sign_bit_class_end_to_end(bits):
    """A map byte of 0x80 made 0xffffff80 by movsx832 is no index below 128: the access
    is refused (the verifier used to believe [0, 127] and accept an access 4 GiB away)."""
    maps = {1: MapSpec("values", MapType.ARRAY, 4, 1 << (bits - 1), 1)}
    with pytest.raises(VerifierError):
        verify(assemble(OOB_MOVSX832.format(bits=bits, size='bh'[bits // 16])), caps=FULL,
               maps=maps)
    # a constant with the sign bit set is folded, not an internal error
    verify(assemble(f"mov32 %r1, {1 << (bits - 1)}\nmovsx{bits}32 %r1, %r1\nmov %r0, 0\nexit"),
           caps=FULL)
