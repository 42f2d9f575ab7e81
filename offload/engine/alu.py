"""Arithmetic, byte-swap and comparison semantics of RFC 9669 as pure functions on integers.

Registers are unsigned 64-bit Python ints. 32-bit operations work on the low halves and
zero-extend the result (section 4.1). Division by zero gives 0; modulo by zero leaves the
dividend (for 32-bit operations its upper half is cleared); signed division truncates toward
zero and ``INT_MIN / -1`` wraps to ``INT_MIN`` with remainder 0 (section 4.1). Shift amounts
are masked to the operand width. Every engine and the verifier's constant folding share
these definitions.
"""

from __future__ import annotations

from collections.abc import Callable

from ..isa.opcodes import AluOp, AtomicOp, JmpOp

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def signed64(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


def signed32(value: int) -> int:
    value &= M32
    return value - (1 << 32) if value & (1 << 31) else value


def sign_extend(value: int, bits: int) -> int:
    """Sign-extend the low ``bits`` of value to an unsigned 64-bit register value."""
    value &= (1 << bits) - 1
    if value & (1 << (bits - 1)):
        value -= 1 << bits
    return value & M64


def _trunc_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return -quotient if (a < 0) != (b < 0) else quotient


def _trunc_mod(a: int, b: int) -> int:
    return a - _trunc_div(a, b) * b


def _div64(a: int, b: int) -> int:
    return a // b if b else 0


def _mod64(a: int, b: int) -> int:
    return a % b if b else a


def _sdiv64(a: int, b: int) -> int:
    return _trunc_div(signed64(a), signed64(b)) & M64 if b else 0


def _smod64(a: int, b: int) -> int:
    return _trunc_mod(signed64(a), signed64(b)) & M64 if b else a


def _sdiv32(a: int, b: int) -> int:
    return _trunc_div(signed32(a), signed32(b)) & M32 if b else 0


def _smod32(a: int, b: int) -> int:
    return _trunc_mod(signed32(a), signed32(b)) & M32 if b else a


BinaryOp = Callable[[int, int], int]

#: (operation, offset) -> f(dst, src) for the ALU64 class, on unsigned 64-bit values.
ALU64_OPS: dict[tuple[int, int], BinaryOp] = {
    (AluOp.ADD, 0): lambda a, b: (a + b) & M64,
    (AluOp.SUB, 0): lambda a, b: (a - b) & M64,
    (AluOp.MUL, 0): lambda a, b: (a * b) & M64,
    (AluOp.DIV, 0): _div64,
    (AluOp.DIV, 1): _sdiv64,
    (AluOp.MOD, 0): _mod64,
    (AluOp.MOD, 1): _smod64,
    (AluOp.OR, 0): lambda a, b: a | b,
    (AluOp.AND, 0): lambda a, b: a & b,
    (AluOp.XOR, 0): lambda a, b: a ^ b,
    (AluOp.LSH, 0): lambda a, b: (a << (b & 63)) & M64,
    (AluOp.RSH, 0): lambda a, b: a >> (b & 63),
    (AluOp.ARSH, 0): lambda a, b: (signed64(a) >> (b & 63)) & M64,
    (AluOp.NEG, 0): lambda a, b: -a & M64,
    (AluOp.MOV, 0): lambda a, b: b,
    (AluOp.MOV, 8): lambda a, b: sign_extend(b, 8),
    (AluOp.MOV, 16): lambda a, b: sign_extend(b, 16),
    (AluOp.MOV, 32): lambda a, b: sign_extend(b, 32),
}

#: (operation, offset) -> f(dst, src) for the ALU class; both inputs already cut to 32 bits.
ALU32_OPS: dict[tuple[int, int], BinaryOp] = {
    (AluOp.ADD, 0): lambda a, b: (a + b) & M32,
    (AluOp.SUB, 0): lambda a, b: (a - b) & M32,
    (AluOp.MUL, 0): lambda a, b: (a * b) & M32,
    (AluOp.DIV, 0): _div64,
    (AluOp.DIV, 1): _sdiv32,
    (AluOp.MOD, 0): _mod64,
    (AluOp.MOD, 1): _smod32,
    (AluOp.OR, 0): lambda a, b: a | b,
    (AluOp.AND, 0): lambda a, b: a & b,
    (AluOp.XOR, 0): lambda a, b: a ^ b,
    (AluOp.LSH, 0): lambda a, b: (a << (b & 31)) & M32,
    (AluOp.RSH, 0): lambda a, b: a >> (b & 31),
    (AluOp.ARSH, 0): lambda a, b: (signed32(a) >> (b & 31)) & M32,
    (AluOp.NEG, 0): lambda a, b: -a & M32,
    (AluOp.MOV, 0): lambda a, b: b,
    (AluOp.MOV, 8): lambda a, b: sign_extend(b, 8) & M32,
    (AluOp.MOV, 16): lambda a, b: sign_extend(b, 16) & M32,
}


def alu64(op: int, off: int, a: int, b: int) -> int:
    """dst = dst OP src for the ALU64 class; a and b are unsigned 64-bit values."""
    try:
        fn = ALU64_OPS[(op, off)]
    except KeyError:
        raise ValueError(f"not an ALU64 operation: op {op:#x} offset {off}") from None
    return fn(a, b)


def alu32(op: int, off: int, a: int, b: int) -> int:
    """dst = dst OP src for the ALU class: low halves in, zero-extended result out."""
    try:
        fn = ALU32_OPS[(op, off)]
    except KeyError:
        raise ValueError(f"not an ALU operation: op {op:#x} offset {off}") from None
    return fn(a & M32, b & M32)


def bswap(value: int, width: int) -> int:
    """Reverse the bytes of the low ``width`` bits (the rest is cleared)."""
    return int.from_bytes((value & ((1 << width) - 1)).to_bytes(width // 8, "little"), "big")


def to_little_endian(value: int, width: int) -> int:
    """``le16/le32/le64``: on a little-endian machine only the truncation remains."""
    return value & ((1 << width) - 1)


def jump_taken(op: int, a: int, b: int, *, wide: bool) -> bool:
    """Whether a conditional jump is taken; ``wide`` is False for the JMP32 class."""
    if not wide:
        a &= M32
        b &= M32
    if op == JmpOp.JEQ:
        return a == b
    if op == JmpOp.JNE:
        return a != b
    if op == JmpOp.JGT:
        return a > b
    if op == JmpOp.JGE:
        return a >= b
    if op == JmpOp.JLT:
        return a < b
    if op == JmpOp.JLE:
        return a <= b
    if op == JmpOp.JSET:
        return bool(a & b)
    to_signed: Callable[[int], int] = signed64 if wide else signed32
    sa, sb = to_signed(a), to_signed(b)
    if op == JmpOp.JSGT:
        return sa > sb
    if op == JmpOp.JSGE:
        return sa >= sb
    if op == JmpOp.JSLT:
        return sa < sb
    if op == JmpOp.JSLE:
        return sa <= sb
    raise ValueError(f"not a conditional jump: {op:#x}")


#: What an atomic add/or/and/xor stores (RFC 9669 section 5.3), before truncation to its size.
ATOMIC_ARITH: dict[int, Callable[[int, int], int]] = {
    AtomicOp.ADD: lambda a, b: a + b,
    AtomicOp.OR: lambda a, b: a | b,
    AtomicOp.AND: lambda a, b: a & b,
    AtomicOp.XOR: lambda a, b: a ^ b,
}
