"""Tristate numbers: which bits of a value are known, and what they are.

A ``Tnum`` stands for every 64-bit value ``x`` with ``x & ~mask == value``: bits set in ``mask``
are unknown, the others equal the bits of ``value`` (``value & mask`` is always 0). The
arithmetic follows the published tnum algebra of the Linux verifier (kernel/bpf/tnum.c,
"Sound, Precise, and Fast Abstract Interpretation with Tristate Numbers", CGO 2022): every
operation gives a tnum that contains the result for every pair of concrete inputs.
"""

from __future__ import annotations

from typing import NamedTuple

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1


class Tnum(NamedTuple):
    """Known bits ``value`` and unknown bits ``mask`` of a 64-bit number.

    A named tuple rather than a frozen dataclass: the verifier builds millions of them, and a
    tuple is built, compared and hashed in C.
    """

    value: int
    mask: int

    # ------------------------------------------------------------ constructors
    @staticmethod
    def const(value: int) -> Tnum:
        return Tnum(value & U64, 0)

    @staticmethod
    def range(lo: int, hi: int) -> Tnum:
        """The smallest tnum holding every value in the unsigned range [lo, hi]."""
        return Tnum(*range_bits(lo, hi))

    # ------------------------------------------------------------ queries
    @property
    def is_const(self) -> bool:
        return self.mask == 0

    @property
    def is_unknown(self) -> bool:
        return self.mask == U64

    @property
    def umin(self) -> int:
        return self.value

    @property
    def umax(self) -> int:
        return self.value | self.mask

    def contains(self, x: int) -> bool:
        """Whether the concrete value ``x`` is one the tnum stands for."""
        return (x & U64) & ~self.mask == self.value

    def includes(self, other: Tnum) -> bool:
        """Whether every value of ``other`` is also a value of ``self`` (kernel tnum_in)."""
        if other.mask & ~self.mask:
            return False
        return other.value & ~self.mask == self.value

    # ------------------------------------------------------------ arithmetic
    def add(self, other: Tnum) -> Tnum:
        sm = (self.mask + other.mask) & U64
        sv = (self.value + other.value) & U64
        sigma = (sm + sv) & U64
        chi = sigma ^ sv
        mu = chi | self.mask | other.mask
        return Tnum(sv & ~mu & U64, mu & U64)

    def sub(self, other: Tnum) -> Tnum:
        dv = (self.value - other.value) & U64
        alpha = (dv + self.mask) & U64
        beta = (dv - other.mask) & U64
        chi = alpha ^ beta
        mu = chi | self.mask | other.mask
        return Tnum(dv & ~mu & U64, mu & U64)

    def neg(self) -> Tnum:
        return ZERO.sub(self)

    def and_(self, other: Tnum) -> Tnum:
        alpha = self.value | self.mask
        beta = other.value | other.mask
        v = self.value & other.value
        return Tnum(v, alpha & beta & ~v & U64)

    def or_(self, other: Tnum) -> Tnum:
        v = self.value | other.value
        mu = self.mask | other.mask
        return Tnum(v, mu & ~v & U64)

    def xor(self, other: Tnum) -> Tnum:
        v = self.value ^ other.value
        mu = self.mask | other.mask
        return Tnum(v & ~mu & U64, mu)

    def mul(self, other: Tnum) -> Tnum:
        """Shift-and-add multiplication over known and unknown parts."""
        a, b = self, other
        acc_v = (a.value * b.value) & U64
        acc_m = ZERO
        while a.value or a.mask:
            if a.value & 1:
                acc_m = acc_m.add(Tnum(0, b.mask))
            elif a.mask & 1:
                acc_m = acc_m.add(Tnum(0, (b.value | b.mask) & U64))
            a = Tnum(a.value >> 1, a.mask >> 1)
            b = Tnum((b.value << 1) & U64, (b.mask << 1) & U64)
        return Tnum(acc_v, 0).add(acc_m)

    def lshift(self, shift: int) -> Tnum:
        return Tnum((self.value << shift) & U64, (self.mask << shift) & U64)

    def rshift(self, shift: int) -> Tnum:
        return Tnum(self.value >> shift, self.mask >> shift)

    def arshift(self, shift: int, bits: int = 64) -> Tnum:
        """Arithmetic shift of the low ``bits`` bits (32 or 64); the result is zero-extended."""
        full = (1 << bits) - 1
        return Tnum(_sar(self.value, shift, bits) & full, _sar(self.mask, shift, bits) & full)

    def intersect(self, other: Tnum) -> Tnum:
        """Values in both (callers check ``value & mask`` conflicts with ``conflicts``)."""
        v = self.value | other.value
        mu = self.mask & other.mask
        return Tnum(v & ~mu & U64, mu)

    def conflicts(self, other: Tnum) -> bool:
        """True when no value is in both tnums (a known bit differs)."""
        known = ~self.mask & ~other.mask & U64
        return (self.value ^ other.value) & known != 0

    def union(self, other: Tnum) -> Tnum:
        """The smallest tnum holding the values of both."""
        mu = self.mask | other.mask | (self.value ^ other.value)
        return Tnum(self.value & ~mu & U64, mu & U64)

    # ------------------------------------------------------------ 32-bit views
    def subreg(self) -> Tnum:
        """The low 32 bits, zero-extended."""
        return Tnum(self.value & U32, self.mask & U32)

    def clear_subreg(self) -> Tnum:
        return Tnum(self.value & ~U32 & U64, self.mask & ~U32 & U64)

    def with_subreg(self, low: Tnum) -> Tnum:
        """Upper 32 bits from ``self``, lower from ``low``."""
        return self.clear_subreg().or_(low.subreg())

    def cast(self, size: int) -> Tnum:
        """Truncate to ``size`` bytes (zero-extended)."""
        m = (1 << (size * 8)) - 1
        return Tnum(self.value & m, self.mask & m)

    def __str__(self) -> str:
        if self.is_const:
            return f"{self.value:#x}"
        return f"({self.value:#x}; {self.mask:#x})"


def range_bits(lo: int, hi: int) -> tuple[int, int]:
    """``(value, mask)`` of ``Tnum.range(lo, hi)``, for callers that work on the integers."""
    chi = lo ^ hi
    if chi == 0:
        return lo, 0
    bits = chi.bit_length()
    if bits > 63:
        return 0, U64
    delta = (1 << bits) - 1
    return lo & ~delta & U64, delta


def _sar(x: int, shift: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    x &= (1 << bits) - 1
    if x & sign:
        x -= 1 << bits
    return x >> shift


ZERO = Tnum(0, 0)
UNKNOWN = Tnum(0, U64)
