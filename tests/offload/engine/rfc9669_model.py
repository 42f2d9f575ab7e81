"""An independent, literal model of RFC 9669 arithmetic for property tests.

Written apart from offload/engine/alu.py and in another style on purpose: C integer types from
ctypes for wrap-around and sign, Fraction for truncating division, byte strings for swaps.
"""

from __future__ import annotations

from ctypes import c_int8, c_int16, c_int32, c_int64, c_uint32, c_uint64
from fractions import Fraction


def u64(x: int) -> int:
    return c_uint64(x).value


def s64(x: int) -> int:
    return c_int64(x).value


def u32(x: int) -> int:
    return c_uint32(x).value


def s32(x: int) -> int:
    return c_int32(x).value


def _tdiv(a: int, b: int) -> int:
    return int(Fraction(a, b))  # int() truncates toward zero, as C does


def model_alu(name: str, wide: bool, dst: int, src: int) -> int:
    """dst' for ``name`` (add, sub, ..., sdiv, smod, movsx8/16/32) on 64- or 32-bit operands."""
    if wide:
        cut, sign, bits = u64, s64, 64
    else:
        cut, sign, bits = u32, s32, 32
        dst, src = u32(dst), u32(src)
    a, b = cut(dst), cut(src)
    if name == "add":
        r = a + b
    elif name == "sub":
        r = a - b
    elif name == "mul":
        r = a * b
    elif name == "div":
        r = 0 if b == 0 else a // b
    elif name == "sdiv":
        r = 0 if b == 0 else _tdiv(sign(a), sign(b))
    elif name == "mod":
        r = a if b == 0 else a % b
    elif name == "smod":
        r = a if b == 0 else sign(a) - sign(b) * _tdiv(sign(a), sign(b))
    elif name == "or":
        r = a | b
    elif name == "and":
        r = a & b
    elif name == "xor":
        r = a ^ b
    elif name == "lsh":
        r = a << (b % bits)
    elif name == "rsh":
        r = a >> (b % bits)
    elif name == "arsh":
        r = sign(a) // (2 ** (b % bits))
    elif name == "neg":
        r = -a
    elif name == "mov":
        r = b
    elif name.startswith("movsx"):
        width = int(name[5:])
        r = {8: c_int8, 16: c_int16, 32: c_int32}[width](b).value
    else:
        raise ValueError(name)
    return u64(cut(r))  # 32-bit results are zero-extended


def model_swap(kind: str, width: int, value: int) -> int:
    low = value % (1 << width)
    if kind == "le":
        return low
    return int.from_bytes(low.to_bytes(width // 8, "big"), "little")


def model_jump(name: str, wide: bool, a: int, b: int) -> bool:
    cut, sign = (u64, s64) if wide else (u32, s32)
    a, b = cut(a), cut(b)
    return {
        "jeq": a == b, "jne": a != b, "jgt": a > b, "jge": a >= b, "jlt": a < b,
        "jle": a <= b, "jset": (a & b) != 0, "jsgt": sign(a) > sign(b),
        "jsge": sign(a) >= sign(b), "jslt": sign(a) < sign(b), "jsle": sign(a) <= sign(b),
    }[name]
