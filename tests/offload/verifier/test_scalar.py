"""Bound synchronisation: the integer-level ``sync`` is the tnum-level algorithm, step by step.

``reference_sync`` and ``reference_with_view`` are the algorithms as first written, with Tnum
operations; ``Scalar.sync`` and ``Scalar.with_view`` work on the tnum's integers for speed and
must give the very same Scalar (or None) for any fields at all, consistent or not.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from offload.verifier.scalar import S32_MAX, S32_MIN, S64_MAX, S64_MIN, Scalar, s32, s64
from offload.verifier.tnum import U32, U64, Tnum


def reference_sync(x: Scalar) -> Scalar | None:
    t = x.var
    if t.mask == 0:
        return Scalar.const(t.value) if x.contains(t.value) else None
    _, umin, umax, smin, smax, u32min, u32max, s32min, s32max = x
    for _ in range(3):
        before = (t, umin, umax, smin, smax, u32min, u32max, s32min, s32max)
        umin, umax = max(umin, t.value), min(umax, t.value | t.mask)
        smin = max(smin, s64(t.value | (t.mask & (1 << 63))))
        smax = min(smax, s64(t.value | (t.mask & ((1 << 63) - 1))))
        lv, lm = t.value & U32, t.mask & U32
        u32min, u32max = max(u32min, lv), min(u32max, lv | lm)
        s32min = max(s32min, s32(lv | (lm & (1 << 31))))
        s32max = min(s32max, s32(lv | (lm & ((1 << 31) - 1))))
        if s64(umin) <= s64(umax):
            smin, smax = max(smin, s64(umin)), min(smax, s64(umax))
        if smin >= 0 or smax < 0:
            umin, umax = max(umin, smin & U64), min(umax, smax & U64)
        elif umin > smax:  # signed range across 0: the unsigned one meets only one part
            umin, smax = max(umin, smin & U64), min(smax, s64(umax))
        elif umax < smin & U64:
            umax, smin = min(umax, smax), max(smin, umin)
        if s32(u32min) <= s32(u32max):
            s32min, s32max = max(s32min, s32(u32min)), min(s32max, s32(u32max))
        if s32min >= 0 or s32max < 0:
            u32min, u32max = max(u32min, s32min & U32), min(u32max, s32max & U32)
        elif u32min > s32max:
            u32min, s32max = max(u32min, s32min & U32), min(s32max, s32(u32max))
        elif u32max < s32min & U32:
            u32max, s32min = min(u32max, s32max), max(s32min, u32min)
        if umin > umax or smin > smax or u32min > u32max or s32min > s32max:
            return None
        if umin >> 32 == umax >> 32:
            u32min, u32max = max(u32min, umin & U32), min(u32max, umax & U32)
            high = umin & ~U32
            umin, umax = max(umin, high | u32min), min(umax, high | u32max)
        if smin >> 32 == smax >> 32:
            u32min, u32max = max(u32min, smin & U32), min(u32max, smax & U32)
            high = (smin >> 32) << 32
            smin, smax = max(smin, high + u32min), min(smax, high + u32max)
        if umin > umax or smin > smax or u32min > u32max or s32min > s32max:
            return None
        rng = Tnum.range(umin, umax)
        if t.conflicts(rng):
            return None
        t = t.intersect(rng)
        low = Tnum.range(u32min, u32max)
        if t.subreg().conflicts(low):
            return None
        t = t.with_subreg(t.subreg().intersect(low))
        if t.mask == 0:
            out = Scalar(t, umin, umax, smin, smax, u32min, u32max, s32min, s32max)
            return Scalar.const(t.value) if out.contains(t.value) else None
        if before == (t, umin, umax, smin, smax, u32min, u32max, s32min, s32max):
            break
    return Scalar(t, umin, umax, smin, smax, u32min, u32max, s32min, s32max)


def reference_with_view(x: Scalar, bits: int, t: Tnum, umin: int, umax: int, smin: int,
                        smax: int) -> Scalar | None:
    if bits == 64:
        if x.var.conflicts(t):
            return None
        return reference_sync(Scalar(x.var.intersect(t), max(umin, x.umin), min(umax, x.umax),
                                     max(smin, x.smin), min(smax, x.smax), x.u32min, x.u32max,
                                     x.s32min, x.s32max))
    low = x.var.subreg()
    if low.conflicts(t):
        return None
    var = x.var.with_subreg(low.intersect(t.subreg()))
    return reference_sync(Scalar(var, x.umin, x.umax, x.smin, x.smax, max(umin, x.u32min),
                                 min(umax, x.u32max), max(smin, x.s32min), min(smax, x.s32max)))


def edges(lo: int, hi: int):
    return st.one_of(st.integers(lo, hi), st.integers(lo, lo + 70), st.integers(hi - 70, hi),
                     st.integers(-70, 70).filter(lambda v: lo <= v <= hi))


@st.composite
def tnums(draw):
    mask = draw(st.one_of(st.integers(0, U64), st.integers(0, 255), st.integers(0, U32),
                          st.just(U64), st.just(U64 & ~0xFF)))
    return Tnum(draw(st.integers(0, U64)) & ~mask & U64, mask)


LIMITS = ((0, U64), (S64_MIN, S64_MAX), (0, U32), (S32_MIN, S32_MAX))


def tnum_bounds(t: Tnum) -> list[int]:
    """The bounds each view gets from the known bits alone (what sync starts from)."""
    lv, lm = t.value & U32, t.mask & U32
    return [t.value, t.value | t.mask, s64(t.value | (t.mask & (1 << 63))),
            s64(t.value | (t.mask & ((1 << 63) - 1))), lv, lv | lm,
            s32(lv | (lm & (1 << 31))), s32(lv | (lm & ((1 << 31) - 1)))]


@st.composite
def scalars(draw):
    t = draw(tnums())
    if draw(st.booleans()):  # ranges anywhere
        pairs = [sorted((draw(edges(lo, hi)), draw(edges(lo, hi)))) for lo, hi in LIMITS]
        fields = [v for pair in pairs for v in pair]
    else:  # ranges at or next to the bounds of the known bits, where steps tie
        fields = [min(max(v + draw(st.integers(-2, 2)), LIMITS[i // 2][0]), LIMITS[i // 2][1])
                  for i, v in enumerate(tnum_bounds(t))]
    for i in draw(st.sets(st.integers(0, 7))):  # some views left wide open
        fields[i] = (0, U64, S64_MIN, S64_MAX, 0, U32, S32_MIN, S32_MAX)[i]
    return Scalar(t, *fields)


@settings(max_examples=400, deadline=None)
@given(scalars())
def test_sync_is_the_tnum_algorithm(x):
    assert x.sync() == reference_sync(x)


@settings(max_examples=250, deadline=None)
@given(scalars(), scalars(), st.sampled_from([32, 64]))
def test_with_view_is_the_tnum_algorithm(x, y, bits):
    view = y.view(bits)
    assert x.with_view(bits, *view) == reference_with_view(x, bits, *view)
