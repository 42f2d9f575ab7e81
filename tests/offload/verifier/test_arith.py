"""Soundness of tnums, ranges and ALU transfer functions against concrete values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from offload.isa.opcodes import AluOp
from offload.verifier.arith import alu, byte_swap, concrete, sign_extend, zext32
from offload.verifier.scalar import Scalar, s64
from offload.verifier.tnum import U32, U64, UNKNOWN, Tnum

u64 = st.integers(0, U64)
interesting = st.one_of(u64, st.integers(0, 70), st.integers(U64 - 70, U64),
                        st.integers((1 << 31) - 3, (1 << 32) + 3),
                        st.integers((1 << 63) - 3, (1 << 63) + 3))


@st.composite
def member(draw):
    """A concrete value and an abstract set (built several ways) that contains it."""
    x = draw(interesting)
    kind = draw(st.sampled_from(["const", "urange", "srange", "tnum", "unknown", "zext"]))
    if kind == "const":
        return x, Scalar.const(x)
    if kind == "urange":
        y = draw(interesting)
        return x, Scalar.urange(min(x, y), max(x, y))
    if kind == "srange":
        y = draw(interesting)
        a, b = sorted((s64(x), s64(y)))
        return x, Scalar.srange(a, b)
    if kind == "tnum":
        mask = draw(u64) & draw(u64)
        return x, Scalar.from_tnum(Tnum(x & ~mask & U64, mask))
    if kind == "zext":
        x &= 0xFFFFFFFF
        y = draw(st.integers(0, 0xFFFFFFFF))
        return x, zext32(Scalar.urange(min(x, y), max(x, y)))
    return x, Scalar.unknown()


ops = st.sampled_from([AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.DIV, AluOp.OR, AluOp.AND,
                       AluOp.LSH, AluOp.RSH, AluOp.MOD, AluOp.XOR, AluOp.ARSH, AluOp.NEG,
                       AluOp.MOV])


@settings(max_examples=1500, deadline=None)
@given(member(), member(), ops, st.sampled_from([32, 64]), st.booleans())
def test_alu_is_sound(a, b, op, bits, signed_div):
    (x, sx), (y, sy) = a, b
    assert sx.contains(x) and sy.contains(y)
    expected = concrete(op, x, y, bits, signed_div)
    result = alu(op, sx, sy, bits=bits, signed_div=signed_div)
    assert result.contains(expected), (op, bits, x, y, sx, sy, result)


@settings(max_examples=500, deadline=None)
@given(member(), member())
def test_tnum_ops_are_sound(a, b):
    (x, sx), (y, sy) = a, b
    ta, tb = sx.var, sy.var
    assert ta.add(tb).contains(x + y)
    assert ta.sub(tb).contains(x - y)
    assert ta.mul(tb).contains(x * y)
    assert ta.and_(tb).contains(x & y)
    assert ta.or_(tb).contains(x | y)
    assert ta.xor(tb).contains(x ^ y)
    assert ta.union(tb).contains(x) and ta.union(tb).contains(y)
    assert Tnum.range(min(x, y), max(x, y)).contains((x + y) // 2)


@settings(max_examples=300, deadline=None)
@given(member(), st.sampled_from([8, 16, 32]), st.sampled_from([16, 32, 64]), st.booleans())
def test_extensions_are_sound(a, from_bits, width, swap):
    x, sx = a
    low = x & ((1 << from_bits) - 1)
    sext = low - (1 << from_bits) if low >> (from_bits - 1) else low
    assert sign_extend(sx, from_bits).contains(sext & U64)
    if from_bits < 32:  # movsx into a 32-bit register: the low word, zero-extended
        assert sign_extend(sx, from_bits, 32).contains(sext & 0xFFFFFFFF)
    truncated = x & ((1 << width) - 1)
    if swap:
        truncated = int.from_bytes(truncated.to_bytes(width // 8, "little"), "big")
    assert byte_swap(sx, width, swap).contains(truncated)


@settings(max_examples=300, deadline=None)
@given(member(), member())
def test_inclusion_means_membership(a, b):
    (x, sx), (_, sy) = a, b
    if sy.includes(sx):
        assert sy.contains(x)


def test_sync_splits_a_signed_range_across_zero_by_the_unsigned_one():
    """[-128, 127] signed is [0, 127] and [2^64-128, 2^64-1] unsigned: an unsigned minimum
    above 127 leaves only the negative part, whose low word then contradicts a 32-bit bound
    (a branch the generated programs found: 'sub of ... has no value', a verifier bug)."""
    upper = Scalar.srange(-128, 127).with_view(64, UNKNOWN, 1 << 31, U64,
                                               -(1 << 63), (1 << 63) - 1)
    assert upper is not None and (upper.smin, upper.smax) == (-128, -1)
    assert upper.umin == U64 - 127
    lower = Scalar.srange(-128, 127).with_view(64, UNKNOWN, 0, 1000,
                                               -(1 << 63), (1 << 63) - 1)
    assert lower is not None and (lower.smin, lower.umax) == (0, 127)
    contradiction = Scalar.srange(-128, 127).with_view(32, UNKNOWN, 0, U32,
                                                       -(1 << 31), -182767825)
    assert contradiction is None


def test_sync_detects_empty_sets():
    s = Scalar.urange(5, 10)
    assert s.with_view(64, Tnum.const(20), 20, 20, 20, 20) is None
    narrowed = s.with_view(64, Tnum.range(0, 7), 0, 7, -(1 << 63), (1 << 63) - 1)
    assert narrowed is not None and (narrowed.umin, narrowed.umax) == (5, 7)
