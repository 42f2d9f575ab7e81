"""What the verifier knows about a number: a tnum plus signed and unsigned 64- and 32-bit bounds.

The five views constrain the same value and feed each other (the kernel's ``reg_bounds_sync``):
known bits bound the ranges, a range with a fixed sign bounds the other signedness, a 64-bit
range whose upper word is fixed bounds the 32-bit one and back, and ranges give known high bits.
The set a ``Scalar`` stands for is the intersection of all views, so each deduction below only
removes values no view allows; when the intersection is empty ``sync`` says so (``None``), which
the branch logic reads as "this path cannot happen".
"""

from __future__ import annotations

from typing import NamedTuple

from .reject import VerifierBug
from .tnum import U32, U64, UNKNOWN, Tnum, range_bits

S64_MIN, S64_MAX = -(1 << 63), (1 << 63) - 1
S32_MIN, S32_MAX = -(1 << 31), (1 << 31) - 1
_SIGN64, _SIGN32 = 1 << 63, 1 << 31
_TWO64, _TWO32 = 1 << 64, 1 << 32


def s64(x: int) -> int:
    x &= U64
    return x - (1 << 64) if x >> 63 else x


def s32(x: int) -> int:
    x &= U32
    return x - (1 << 32) if x >> 31 else x


def signed(x: int, bits: int) -> int:
    return s64(x) if bits == 64 else s32(x)


class Scalar(NamedTuple):
    """A set of 64-bit values, described five ways at once (a named tuple, like ``Tnum``)."""

    var: Tnum
    umin: int
    umax: int
    smin: int
    smax: int
    u32min: int
    u32max: int
    s32min: int
    s32max: int

    # ------------------------------------------------------------ constructors
    @staticmethod
    def const(value: int) -> Scalar:
        v = value & U64
        lo = v & U32
        sv = v - (1 << 64) if v >> 63 else v  # s64(v), s32(lo) inline: built very often
        slo = lo - (1 << 32) if lo >> 31 else lo
        return Scalar(Tnum(v, 0), v, v, sv, sv, lo, lo, slo, slo)

    @staticmethod
    def unknown() -> Scalar:
        return UNKNOWN_SCALAR

    @staticmethod
    def urange(lo: int, hi: int) -> Scalar:
        """Every value in the unsigned range [lo, hi]."""
        s = Scalar(UNKNOWN, lo, hi, S64_MIN, S64_MAX, 0, U32, S32_MIN, S32_MAX).sync()
        if s is None:
            raise VerifierBug(f"empty unsigned range [{lo}, {hi}]")
        return s

    @staticmethod
    def srange(lo: int, hi: int) -> Scalar:
        s = Scalar(UNKNOWN, 0, U64, lo, hi, 0, U32, S32_MIN, S32_MAX).sync()
        if s is None:
            raise VerifierBug(f"empty signed range [{lo}, {hi}]")
        return s

    @staticmethod
    def from_tnum(t: Tnum) -> Scalar:
        s = Scalar(t, 0, U64, S64_MIN, S64_MAX, 0, U32, S32_MIN, S32_MAX).sync()
        if s is None:
            raise VerifierBug(f"tnum {t} has no value")
        return s

    @staticmethod
    def from32(t: Tnum, umin: int, umax: int, smin: int, smax: int) -> Scalar | None:
        """A zero-extended 32-bit result (what every ALU32 operation writes)."""
        return Scalar(t.subreg(), 0, U32, 0, U32, umin, umax, smin, smax).sync()

    # ------------------------------------------------------------ queries
    @property
    def is_const(self) -> bool:
        return self.var.mask == 0

    @property
    def value(self) -> int:
        return self.var.value

    @property
    def is_const32(self) -> bool:
        return self.var.mask & U32 == 0

    def contains(self, x: int) -> bool:
        # unpacked once and signed inline: the soundness oracle asks this of every live
        # register at every step (named-tuple fields are descriptor lookups)
        (value, mask), umin, umax, smin, smax, u32min, u32max, s32min, s32max = self
        x &= U64
        if x & ~mask != value or not umin <= x <= umax:
            return False
        lo = x & U32
        return (smin <= (x - _TWO64 if x >> 63 else x) <= smax and u32min <= lo <= u32max
                and s32min <= (lo - _TWO32 if lo >> 31 else lo) <= s32max)

    def includes(self, o: Scalar) -> bool:
        """Every value of ``o`` is a value of ``self`` (range inclusion for state pruning)."""
        return (self.umin <= o.umin and o.umax <= self.umax and self.smin <= o.smin
                and o.smax <= self.smax and self.u32min <= o.u32min and o.u32max <= self.u32max
                and self.s32min <= o.s32min and o.s32max <= self.s32max
                and self.var.includes(o.var))

    def view(self, bits: int) -> tuple[Tnum, int, int, int, int]:
        """(tnum, umin, umax, smin, smax) of the low ``bits`` bits."""
        if bits == 64:
            return self.var, self.umin, self.umax, self.smin, self.smax
        return self.var.subreg(), self.u32min, self.u32max, self.s32min, self.s32max

    def with_view(self, bits: int, t: Tnum, umin: int, umax: int, smin: int,
                  smax: int) -> Scalar | None:
        """Replace one width's view (narrowing by a branch), then resynchronise.

        The tnum steps are written out on integers, as in ``sync``: 64 bits take
        ``self.var.intersect(t)``, 32 bits ``self.var.with_subreg(low.intersect(t.subreg()))``
        for ``low = self.var.subreg()``; either is None when the tnums conflict.
        """
        sv, sm = self.var
        tv, tm = t
        if bits == 64:
            if (sv ^ tv) & ~sm & ~tm & U64:
                return None
            mu = sm & tm
            var = Tnum((sv | tv) & ~mu & U64, mu)
            return Scalar(var, max(umin, self.umin), min(umax, self.umax),
                          max(smin, self.smin), min(smax, self.smax), self.u32min,
                          self.u32max, self.s32min, self.s32max).sync()
        lv, lm = sv & U32, sm & U32
        if (lv ^ tv) & ~lm & ~tm & U64:
            return None
        low_m = lm & tm & U32
        low_v = (lv | (tv & U32)) & ~low_m & U64
        high_v, high_m = sv & ~U32 & U64, sm & ~U32 & U64
        value = high_v | low_v
        var = Tnum(value, (high_m | low_m) & ~value & U64)
        return Scalar(var, self.umin, self.umax, self.smin, self.smax,
                      max(umin, self.u32min), min(umax, self.u32max), max(smin, self.s32min),
                      min(smax, self.s32max)).sync()

    # ------------------------------------------------------------ synchronisation
    def sync(self) -> Scalar | None:
        """Make every view as tight as the others allow; None if no value remains.

        This runs after nearly every operation, so it is written for speed: the tnum is kept
        as its two integers ``tv``/``tm`` and its steps (``Tnum.range``, ``conflicts``,
        ``intersect``, ``with_subreg``) are written out on them; ``max``/``min`` are
        comparisons and ``s64``/``s32`` the sign flip ``((x & U64) ^ SIGN) - SIGN``.
        ``tests/offload/verifier/test_scalar.py`` holds the plain version it must agree with.
        """
        tv, tm = self.var
        if tm == 0:  # a constant: it is in every view or the set is empty
            return Scalar.const(tv) if self.contains(tv) else None
        _, umin, umax, smin, smax, u32min, u32max, s32min, s32max = self
        for _ in range(3):
            before = (tv, tm, umin, umax, smin, smax, u32min, u32max, s32min, s32max)
            # known bits bound the ranges
            if umin < tv:
                umin = tv
            x = tv | tm
            if umax > x:
                umax = x
            x = (((tv | (tm & _SIGN64)) & U64) ^ _SIGN64) - _SIGN64
            if smin < x:
                smin = x
            x = (((tv | (tm & S64_MAX)) & U64) ^ _SIGN64) - _SIGN64
            if smax > x:
                smax = x
            lv, lm = tv & U32, tm & U32
            if u32min < lv:
                u32min = lv
            x = lv | lm
            if u32max > x:
                u32max = x
            x = ((lv | (lm & _SIGN32)) ^ _SIGN32) - _SIGN32
            if s32min < x:
                s32min = x
            x = ((lv | (lm & S32_MAX)) ^ _SIGN32) - _SIGN32
            if s32max > x:
                s32max = x
            # signed and unsigned bound each other when the sign is fixed
            lo, hi = ((umin & U64) ^ _SIGN64) - _SIGN64, ((umax & U64) ^ _SIGN64) - _SIGN64
            if lo <= hi:
                if smin < lo:
                    smin = lo
                if smax > hi:
                    smax = hi
            if smin >= 0 or smax < 0:
                lo, hi = smin & U64, smax & U64
                if umin < lo:
                    umin = lo
                if umax > hi:
                    umax = hi
            elif umin > smax:  # signed across 0, unsigned above its non-negative part
                lo = smin & U64
                if umin < lo:
                    umin = lo
                x = ((umax & U64) ^ _SIGN64) - _SIGN64
                if smax > x:
                    smax = x
            elif umax < smin & U64:  # ... or below its negative part
                if umax > smax:
                    umax = smax
                if smin < umin:
                    smin = umin
            lo, hi = ((u32min & U32) ^ _SIGN32) - _SIGN32, ((u32max & U32) ^ _SIGN32) - _SIGN32
            if lo <= hi:
                if s32min < lo:
                    s32min = lo
                if s32max > hi:
                    s32max = hi
            if s32min >= 0 or s32max < 0:
                lo, hi = s32min & U32, s32max & U32
                if u32min < lo:
                    u32min = lo
                if u32max > hi:
                    u32max = hi
            elif u32min > s32max:
                lo = s32min & U32
                if u32min < lo:
                    u32min = lo
                x = ((u32max & U32) ^ _SIGN32) - _SIGN32
                if s32max > x:
                    s32max = x
            elif u32max < s32min & U32:
                if u32max > s32max:
                    u32max = s32max
                if s32min < u32min:
                    s32min = u32min
            if umin > umax or smin > smax or u32min > u32max or s32min > s32max:
                return None
            # a fixed upper word ties the 64-bit and the 32-bit ranges together
            if umin >> 32 == umax >> 32:
                lo, hi = umin & U32, umax & U32
                if u32min < lo:
                    u32min = lo
                if u32max > hi:
                    u32max = hi
                high = umin & ~U32
                lo, hi = high | u32min, high | u32max
                if umin < lo:
                    umin = lo
                if umax > hi:
                    umax = hi
            if smin >> 32 == smax >> 32:
                lo, hi = smin & U32, smax & U32
                if u32min < lo:
                    u32min = lo
                if u32max > hi:
                    u32max = hi
                high = (smin >> 32) << 32
                lo, hi = high + u32min, high + u32max
                if smin < lo:
                    smin = lo
                if smax > hi:
                    smax = hi
            if umin > umax or smin > smax or u32min > u32max or s32min > s32max:
                return None
            # ranges give known bits: t &= Tnum.range(umin, umax), unless they conflict
            rv, rm = range_bits(umin, umax)
            if (tv ^ rv) & ~tm & ~rm & U64:
                return None
            tm &= rm
            tv = (tv | rv) & ~tm & U64
            # and the low word: t.with_subreg(t.subreg() & Tnum.range(u32min, u32max))
            rv, rm = range_bits(u32min, u32max)
            if (tv ^ rv) & ~tm & ~rm & U32:
                return None
            low_m = tm & rm
            low_v = ((tv & U32) | rv) & ~low_m
            high_v, high_m = tv & ~U32 & U64, tm & ~U32 & U64
            tv = high_v | low_v
            tm = (high_m | low_m) & ~tv & U64
            if tm == 0:
                out = Scalar(Tnum(tv, 0), umin, umax, smin, smax, u32min, u32max, s32min,
                             s32max)
                return Scalar.const(tv) if out.contains(tv) else None
            if before == (tv, tm, umin, umax, smin, smax, u32min, u32max, s32min, s32max):
                break
        return Scalar(Tnum(tv, tm), umin, umax, smin, smax, u32min, u32max, s32min, s32max)

    # ------------------------------------------------------------ text
    def __str__(self) -> str:
        if self.is_const:
            return str(s64(self.var.value))
        parts = []
        if self.smin != S64_MIN:
            parts.append(f"smin={self.smin}")
        if self.smax != S64_MAX:
            parts.append(f"smax={self.smax}")
        if self.umin:
            parts.append(f"umin={self.umin}")
        if self.umax != U64:
            parts.append(f"umax={self.umax}")
        if self.s32min != S32_MIN and (self.s32min, self.s32max) != (self.smin, self.smax):
            parts.append(f"smin32={self.s32min}")
        if self.s32max != S32_MAX and (self.s32min, self.s32max) != (self.smin, self.smax):
            parts.append(f"smax32={self.s32max}")
        if self.u32min and (self.u32min, self.u32max) != (self.umin, self.umax):
            parts.append(f"umin32={self.u32min}")
        if self.u32max != U32 and (self.u32min, self.u32max) != (self.umin, self.umax):
            parts.append(f"umax32={self.u32max}")
        if not self.var.is_unknown:
            parts.append(f"var_off={self.var}")
        return ",".join(parts) if parts else ""


UNKNOWN_SCALAR = Scalar(UNKNOWN, 0, U64, S64_MIN, S64_MAX, 0, U32, S32_MIN, S32_MAX)
