"""Transfer functions of the ALU on ``Scalar`` sets, for 32- and 64-bit operations.

Each operation works on one width's view (tnum, unsigned and signed range) of both operands
and gives a view that holds ``op(x, y)`` for every ``x`` and ``y`` in the operands (RFC 9669
section 4.1 semantics: wrap-around arithmetic, shifts masked to the width, division by zero
gives 0 and modulo by zero leaves the dividend). 64-bit operations whose low word depends only
on the operands' low words (add, sub, mul, and, or, xor) also compute the 32-bit view directly,
as the kernel does, so ``JMP32`` comparisons keep their precision.
"""

from __future__ import annotations

from ..isa.opcodes import AluOp
from .reject import VerifierBug
from .scalar import S32_MAX, S32_MIN, S64_MAX, S64_MIN, Scalar, signed
from .tnum import U32, U64, Tnum

View = tuple[Tnum, int, int, int, int]


def _limits(bits: int) -> tuple[int, int, int]:
    if bits == 64:
        return U64, S64_MIN, S64_MAX
    return U32, S32_MIN, S32_MAX


def _full(t: Tnum, bits: int) -> View:
    umax, smin, smax = _limits(bits)
    return t, 0, umax, smin, smax


def _trunc(t: Tnum, bits: int) -> Tnum:
    return t if bits == 64 else t.subreg()


def _add(a: View, b: View, bits: int) -> View:
    umax_l, smin_l, smax_l = _limits(bits)
    t = _trunc(a[0].add(b[0]), bits)
    lo, hi = a[1] + b[1], a[2] + b[2]
    if hi <= umax_l:
        umin, umax = lo, hi
    elif lo > umax_l:
        umin, umax = lo - umax_l - 1, hi - umax_l - 1
    else:
        umin, umax = 0, umax_l
    slo, shi = a[3] + b[3], a[4] + b[4]
    if smin_l <= slo and shi <= smax_l:
        smin, smax = slo, shi
    elif shi < smin_l or slo > smax_l:
        span = umax_l + 1
        adj = span if shi < smin_l else -span
        smin, smax = slo + adj, shi + adj
    else:
        smin, smax = smin_l, smax_l
    return t, umin, umax, smin, smax


def _sub(a: View, b: View, bits: int) -> View:
    umax_l, smin_l, smax_l = _limits(bits)
    t = _trunc(a[0].sub(b[0]), bits)
    lo, hi = a[1] - b[2], a[2] - b[1]
    if lo >= 0:
        umin, umax = lo, hi
    elif hi < 0:
        umin, umax = lo + umax_l + 1, hi + umax_l + 1
    else:
        umin, umax = 0, umax_l
    slo, shi = a[3] - b[4], a[4] - b[3]
    if smin_l <= slo and shi <= smax_l:
        smin, smax = slo, shi
    elif shi < smin_l or slo > smax_l:
        span = umax_l + 1
        adj = span if shi < smin_l else -span
        smin, smax = slo + adj, shi + adj
    else:
        smin, smax = smin_l, smax_l
    return t, umin, umax, smin, smax


def _mul(a: View, b: View, bits: int) -> View:
    umax_l, smin_l, smax_l = _limits(bits)
    t = _trunc(a[0].mul(b[0]), bits)
    umin, umax = (a[1] * b[1], a[2] * b[2]) if a[2] * b[2] <= umax_l else (0, umax_l)
    prods = (a[3] * b[3], a[3] * b[4], a[4] * b[3], a[4] * b[4])
    if smin_l <= min(prods) and max(prods) <= smax_l:
        smin, smax = min(prods), max(prods)
    else:
        smin, smax = smin_l, smax_l
    return t, umin, umax, smin, smax


def _and(a: View, b: View, bits: int) -> View:
    t = a[0].and_(b[0])
    _, smin_l, smax_l = _limits(bits)
    umax = min(a[2], b[2])
    if a[3] >= 0 or b[3] >= 0:
        return t, t.value, umax, 0, min(umax, smax_l)
    return t, t.value, umax, smin_l, smax_l


def _or(a: View, b: View, bits: int) -> View:
    t = a[0].or_(b[0])
    _, smin_l, smax_l = _limits(bits)
    umin = max(a[1], b[1])
    if a[3] >= 0 and b[3] >= 0:
        return t, umin, t.umax, min(umin, smax_l), min(t.umax, smax_l)
    return t, umin, t.umax, smin_l, smax_l


def _xor(a: View, b: View, bits: int) -> View:
    return _full(a[0].xor(b[0]), bits)


def _shift_amounts(b: View, bits: int) -> range:
    """The shift counts the instruction can use: the operand masked to the width."""
    if b[2] < bits:
        return range(b[1], b[2] + 1)
    if b[0].is_const:
        return range(b[0].value & (bits - 1), (b[0].value & (bits - 1)) + 1)
    return range(0, bits)


def _shift_one(op: AluOp, a: View, k: int, bits: int) -> View:
    umax_l, smin_l, smax_l = _limits(bits)
    if op == AluOp.LSH:
        t = _trunc(a[0].lshift(k), bits)
        if a[2] << k <= umax_l:
            return t, a[1] << k, a[2] << k, smin_l, smax_l
        return _full(t, bits)
    if op == AluOp.RSH:
        t = a[0].rshift(k)
        return t, a[1] >> k, a[2] >> k, smin_l, smax_l
    t = a[0].arshift(k, bits)
    return t, 0, umax_l, a[3] >> k, a[4] >> k


def _join(x: View, y: View) -> View:
    return (x[0].union(y[0]), min(x[1], y[1]), max(x[2], y[2]), min(x[3], y[3]),
            max(x[4], y[4]))


def _shift(op: AluOp, a: View, b: View, bits: int) -> View:
    result: View | None = None
    for k in _shift_amounts(b, bits):
        one = _shift_one(op, a, k, bits)
        result = one if result is None else _join(result, one)
    if result is None:
        raise VerifierBug(f"shift by an empty set of amounts {b}")
    return result


def _div(a: View, b: View, bits: int) -> View:
    umax_l, smin_l, smax_l = _limits(bits)
    if b[0].is_const and b[0].value == 0:
        return Tnum(0, 0), 0, 0, 0, 0
    # a divisor of at least one never grows the dividend; zero gives zero
    lo, hi = (a[1] // b[2], a[2] // b[1]) if b[1] > 0 else (0, a[2])
    return Tnum.range(lo, hi), lo, hi, smin_l, smax_l


def _mod(a: View, b: View, bits: int) -> View:
    umax_l, smin_l, smax_l = _limits(bits)
    if b[0].is_const and b[0].value == 0:
        return a
    if b[1] > 0:
        hi = min(a[2], b[2] - 1)
        return Tnum.range(0, hi), 0, hi, smin_l, smax_l
    # the divisor may be zero: the dividend itself may come back
    return Tnum.range(0, a[2]), 0, a[2], smin_l, smax_l


_OPS = {AluOp.ADD: _add, AluOp.SUB: _sub, AluOp.MUL: _mul, AluOp.AND: _and, AluOp.OR: _or,
        AluOp.XOR: _xor, AluOp.DIV: _div, AluOp.MOD: _mod}
#: Operations whose low 32 bits depend only on the operands' low 32 bits.
_LOW_WORD_OPS = frozenset({AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.AND, AluOp.OR, AluOp.XOR})
# Members compared on every operation, as module names (see state.SCALAR).
_NEG, _MOV, _SUB = AluOp.NEG, AluOp.MOV, AluOp.SUB
_SHIFTS = frozenset({AluOp.LSH, AluOp.RSH, AluOp.ARSH})
_DIV_MOD = frozenset({AluOp.DIV, AluOp.MOD})


def _apply(op: AluOp, a: View, b: View, bits: int, signed_div: bool) -> View:
    if op in _SHIFTS:
        return _shift(op, a, b, bits)
    if signed_div and op in _DIV_MOD:
        return _full(Tnum(0, U64 if bits == 64 else U32), bits)
    return _OPS[op](a, b, bits)


def _unknown_bits(bits: int) -> Tnum:
    return Tnum(0, U64 if bits == 64 else U32)


def alu(op: AluOp, dst: Scalar, src: Scalar, *, bits: int, signed_div: bool = False) -> Scalar:
    """``dst = dst op src`` on sets of values; ``bits`` is 32 (ALU) or 64 (ALU64)."""
    if op == _NEG:
        return alu(_SUB, Scalar.const(0), dst, bits=bits)
    if op == _MOV:
        return src if bits == 64 else zext32(src)
    if dst.var.mask == 0 and src.var.mask == 0:  # two constants
        return Scalar.const(concrete(op, dst.var.value, src.var.value, bits, signed_div))
    if bits == 32:
        t, umin, umax, smin, smax = _apply(op, dst.view(32), src.view(32), 32, signed_div)
        result = Scalar.from32(t, umin, umax, smin, smax)
    else:
        t, umin, umax, smin, smax = _apply(op, dst.view(64), src.view(64), 64, signed_div)
        if op in _LOW_WORD_OPS:
            low = _apply(op, dst.view(32), src.view(32), 32, signed_div)
        else:
            low = _full(_unknown_bits(32), 32)
        if op in _LOW_WORD_OPS and not t.subreg().conflicts(low[0]):
            t = t.with_subreg(t.subreg().intersect(low[0]))
        result = Scalar(t, umin, umax, smin, smax, low[1], low[2], low[3], low[4]).sync()
    # every view is a sound over-approximation, so their intersection cannot be empty
    if result is None:
        raise VerifierBug(f"{op.name.lower()}{'' if bits == 64 else '32'} of {dst} and {src} "
                          "has no value")
    return result


def zext32(s: Scalar) -> Scalar:
    """The low word of ``s``, zero-extended (32-bit moves and every ALU32 result)."""
    out = Scalar.from32(s.var, s.u32min, s.u32max, s.s32min, s.s32max)
    if out is None:
        raise VerifierBug(f"the low word of {s} has no value")
    return out


def sign_extend(s: Scalar, from_bits: int, bits: int = 64) -> Scalar:
    """``movsx`` and sign-extending loads: the low ``from_bits`` bits sign-extended to ``bits``.

    The 64-bit sign extension is computed first; a 32-bit ``movsx`` writes its low word,
    zero-extended (``zext32``), so its result never carries 64-bit signed bounds.
    """
    full = U64 if bits == 64 else U32
    m = (1 << from_bits) - 1
    sign = 1 << (from_bits - 1)
    if s.var.mask == 0:
        low = s.var.value & m
        return Scalar.const((low - (low & sign) * 2) & full)
    if (s.smin >= -sign and s.smax < sign) or s.umax < sign:
        # every value already is its own sign extension
        return s if bits == 64 else zext32(s)
    # the tnum: the low bits, and their sign bit copied into every bit above
    value, mask = s.var.value & m, s.var.mask & m
    if mask & sign:
        mask |= U64 & ~m
    elif value & sign:
        value |= U64 & ~m
    # the signed range of the result (the low bits read as a from_bits-bit signed number)
    lo, hi = -sign, sign - 1
    if s.s32min >= -sign and s.s32max < sign:  # the low word's signed value fits
        lo, hi = max(lo, s.s32min), min(hi, s.s32max)
    for first, last in ((s.umin, s.umax), (s.u32min, s.u32max), (s.smin, s.smax),
                        (s.s32min, s.s32max)):
        if first >> from_bits == last >> from_bits:  # one run of the low bits, no wrap
            a, b = first & m, last & m
            if b < sign:
                lo, hi = max(lo, a), min(hi, b)
            elif a >= sign:
                lo, hi = max(lo, a - 2 * sign), min(hi, b - 2 * sign)
    # both signed views hold that number: it fits in 32 bits
    result = Scalar(Tnum(value, mask), 0, U64, lo, hi, 0, U32, lo, hi).sync()
    if result is None:
        raise VerifierBug(f"sign extension of {s} from {from_bits} bits has no value")
    return result if bits == 64 else zext32(result)


def byte_swap(s: Scalar, width: int, swap: bool) -> Scalar:
    """``le``/``be``/``bswap``: truncate to ``width`` bits and optionally reverse the bytes."""
    if width == 64 and not swap:
        return s
    t = s.var.cast(width // 8)
    if swap:
        t = Tnum(_bswap(t.value, width), _bswap(t.mask, width))
    result = Scalar.from_tnum(t)
    if not swap:
        m = (1 << width) - 1
        if s.umax <= m:
            bounded = Scalar(t, s.umin, s.umax, 0, s.umax, 0, U32, S32_MIN, S32_MAX).sync()
            if bounded is not None:
                return bounded
    return result


def _bswap(x: int, width: int) -> int:
    return int.from_bytes(x.to_bytes(width // 8, "little"), "big")


def _signed_div(a: int, b: int, bits: int) -> int:
    sa, sb = signed(a, bits), signed(b, bits)
    q = abs(sa) // abs(sb)
    return q if (sa < 0) == (sb < 0) else -q


def _signed_mod(a: int, b: int, bits: int) -> int:
    sa, sb = signed(a, bits), signed(b, bits)
    rem = abs(sa) % abs(sb)
    return -rem if sa < 0 else rem


#: op -> f(a, b, bits, signed_div) on operands already truncated to ``bits``
_CONCRETE = {
    AluOp.ADD: lambda a, b, bits, sdiv: a + b,
    AluOp.SUB: lambda a, b, bits, sdiv: a - b,
    AluOp.MUL: lambda a, b, bits, sdiv: a * b,
    AluOp.DIV: lambda a, b, bits, sdiv: 0 if b == 0 else _signed_div(a, b, bits) if sdiv
    else a // b,
    AluOp.MOD: lambda a, b, bits, sdiv: a if b == 0 else _signed_mod(a, b, bits) if sdiv
    else a % b,
    AluOp.OR: lambda a, b, bits, sdiv: a | b,
    AluOp.AND: lambda a, b, bits, sdiv: a & b,
    AluOp.XOR: lambda a, b, bits, sdiv: a ^ b,
    AluOp.LSH: lambda a, b, bits, sdiv: a << (b & (bits - 1)),
    AluOp.RSH: lambda a, b, bits, sdiv: a >> (b & (bits - 1)),
    AluOp.ARSH: lambda a, b, bits, sdiv: signed(a, bits) >> (b & (bits - 1)),
    AluOp.NEG: lambda a, b, bits, sdiv: -a,
    AluOp.MOV: lambda a, b, bits, sdiv: b,
}


def concrete(op: AluOp, a: int, b: int, bits: int, signed_div: bool = False) -> int:
    """The exact result of one ALU operation (RFC 9669 section 4.1), zero-extended."""
    m = U64 if bits == 64 else U32
    fn = _CONCRETE.get(op)
    if fn is None:
        raise ValueError(f"no concrete semantics for {op!r}")
    return fn(a & m, b & m, bits, signed_div) & m
