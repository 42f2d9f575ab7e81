"""Jumps the target does not know: the v2 "less than" jumps, the JMP32 class and ``gotol``.

RFC 9669 section 4.3 defines every JMP32 comparison on the low 32 bits of its operands. Below
v3 there is only the 64-bit compare, so the rewrite compares 64-bit copies in scratch
registers that keep exactly the order of the 32-bit values:

* zero-extension (``mov32 s, r``) keeps the unsigned order and equality of the low halves;
* sign-extension (``lsh s, 32; arsh s, 32``) keeps the signed order, and - because it maps
  [0, 2^31) onto itself and [2^31, 2^32) onto the top of the 64-bit range in increasing
  order - the unsigned order and equality too, and ``a & b != 0`` as well (the high bits of
  both copies are set only when bit 31 of both low halves is).

An immediate is sign-extended by every 64-bit compare, so the register side is zero-extended
when the immediate is non-negative and sign-extended otherwise; a register operand needs a
second copy. ``gotol`` (JMP32 JA, 32-bit offset) becomes ``ja`` when its new offset fits the
16-bit offset field, which :mod:`.placement` checks.
"""

from __future__ import annotations

from offload.isa import AluOp, Instruction, JmpOp, Source
from offload.isa.liveness import bit

from .emit import TARGET, Item, alu, cond_jump, ja
from .scratch import ScratchPool

SIGNED = (JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT, JmpOp.JSLE)


def lower_v2_jump(insn: Instruction, version: int) -> list[Item]:
    """``jlt/jle/jslt/jsle`` for a v1 target (see :func:`.emit.cond_jump`)."""
    if insn.source == Source.X:
        return cond_jump(insn.jmp_op, insn.dst, TARGET, version, src=insn.src)
    return cond_jump(insn.jmp_op, insn.dst, TARGET, version, imm=insn.imm)


def lower_gotol(insn: Instruction) -> list[Item]:
    return [ja(TARGET)]


def _extend(scratch: int, reg: int, signed: bool) -> list[Item]:
    if not signed:
        return [alu(AluOp.MOV, scratch, src=reg, wide=False)]
    copy = [alu(AluOp.MOV, scratch, src=reg)] if scratch != reg else []
    return [*copy, alu(AluOp.LSH, scratch, imm=32), alu(AluOp.ARSH, scratch, imm=32)]


def lower_jmp32(insn: Instruction, pool: ScratchPool, version: int,
                upper_dead: int = 0) -> list[Item]:
    """A JMP32 conditional jump as a 64-bit compare of extended copies.

    An operand whose upper half no later instruction reads (bit set in ``upper_dead``) is
    extended in place instead of copied: the low half stays as it was, no scratch register is
    needed, and a verifier learns the compare's bounds on the register the program goes on
    using (``if (w4 > 64) ...; r1 += r4`` stays verifiable).
    """
    op, dst = insn.jmp_op, insn.dst

    def operand(reg: int, avoid: tuple[int, ...]) -> int:
        if reg != 10 and upper_dead & bit(reg):
            return reg
        return pool.take(avoid=avoid)

    signed = op in SIGNED
    if insn.source == Source.K:
        left = operand(dst, ())
        extend = _extend(left, dst, signed or insn.imm < 0)
        return [*extend, *cond_jump(op, left, TARGET, version, imm=insn.imm)]
    src = insn.src
    left = operand(dst, (src,))
    items = _extend(left, dst, signed)
    right = left
    if src != dst:
        right = operand(src, (dst, left))
        items += _extend(right, src, signed)
    return [*items, *cond_jump(op, left, TARGET, version, src=right)]
