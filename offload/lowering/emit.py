"""The small language rewrites are written in: instructions whose jump targets are labels.

A rewrite turns one original instruction into a list of :class:`Emit` and :class:`Mark` items.
Jumps name a :class:`Label` instead of an offset: a label marked inside the same expansion,
:data:`END` (the instruction after the expansion) or :data:`TARGET` (wherever the original
instruction jumped or called). :mod:`.placement` turns labels into offsets once every
expansion's size is known, so no rewrite ever computes an offset by hand.

The constructors below build the few instruction shapes the rewrites need.
"""

from __future__ import annotations

from dataclasses import dataclass

from offload.isa import AluOp, Endian, InsnClass, Instruction, JmpOp, Mode, Size, Source


@dataclass(frozen=True, slots=True, eq=False)
class Label:
    """A position inside one expansion; identity is what matters, the name is for reading."""

    name: str


#: The instruction following the expansion (the original fall-through).
END = Label("end")
#: The original instruction's jump or call target, at its new position.
TARGET = Label("target")


@dataclass(frozen=True, slots=True)
class Emit:
    """An instruction; if ``to`` is set, its offset (or imm) is computed to reach that label."""

    insn: Instruction
    to: Label | None = None


@dataclass(frozen=True, slots=True)
class Mark:
    """Defines ``label`` as the position of the next emitted instruction."""

    label: Label


Item = Emit | Mark

V2_JUMPS = (JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE)
#: ``a < b`` is ``b > a``: the v1 jump that takes the operands the other way round.
MIRRORED = {JmpOp.JLT: JmpOp.JGT, JmpOp.JLE: JmpOp.JGE,
            JmpOp.JSLT: JmpOp.JSGT, JmpOp.JSLE: JmpOp.JSGE}
#: ``not (a < b)`` is ``a >= b``: the v1 jump with the opposite outcome.
INVERTED = {JmpOp.JLT: JmpOp.JGE, JmpOp.JLE: JmpOp.JGT,
            JmpOp.JSLT: JmpOp.JSGE, JmpOp.JSLE: JmpOp.JSGT}


def alu(op: AluOp, dst: int, *, src: int | None = None, imm: int = 0, wide: bool = True,
        off: int = 0) -> Emit:
    """``dst = dst OP src`` (or ``OP imm``) in the ALU64 (``wide``) or ALU class."""
    cls = InsnClass.ALU64 if wide else InsnClass.ALU
    if src is not None:
        return Emit(Instruction(cls | Source.X | op, dst, src, off, 0))
    return Emit(Instruction(cls | Source.K | op, dst, 0, off, imm))


def neg(dst: int) -> Emit:
    return Emit(Instruction(InsnClass.ALU64 | AluOp.NEG, dst))


def byte_swap(dst: int, width: int, order: Endian) -> Emit:
    """``be16/32/64`` or ``le16/32/64``: the ALU-class END operation (ISA v1)."""
    return Emit(Instruction(InsnClass.ALU | AluOp.END | order, dst, 0, 0, width))


def ldx(size: Size, dst: int, src: int, off: int) -> Emit:
    return Emit(Instruction(InsnClass.LDX | Mode.MEM | size, dst, src, off, 0))


def stx(size: Size, dst: int, src: int, off: int) -> Emit:
    return Emit(Instruction(InsnClass.STX | Mode.MEM | size, dst, src, off, 0))


def ja(to: Label) -> Emit:
    return Emit(Instruction(InsnClass.JMP | JmpOp.JA), to)


def jump(op: JmpOp, dst: int, to: Label, *, src: int | None = None, imm: int = 0) -> Emit:
    """A 64-bit conditional jump as it stands (any version)."""
    if src is not None:
        return Emit(Instruction(InsnClass.JMP | Source.X | op, dst, src, 0, 0), to)
    return Emit(Instruction(InsnClass.JMP | Source.K | op, dst, 0, 0, imm), to)


def cond_jump(op: JmpOp, dst: int, to: Label, version: int, *, src: int | None = None,
              imm: int = 0) -> list[Item]:
    """A 64-bit conditional jump in the instructions of ISA ``version``.

    Below v2 the "less than" jumps do not exist: with a register they become the mirrored
    "greater than" jump with swapped operands (``a < b`` iff ``b > a``); with an immediate,
    which cannot be swapped, the opposite jump skips an unconditional one
    (``jlt r, K, T`` is ``jge r, K, +1; ja T``).
    """
    if version >= 2 or op not in V2_JUMPS:
        return [jump(op, dst, to, src=src, imm=imm)]
    if src is not None:
        return [jump(MIRRORED[op], src, to, src=dst)]
    skip = Label("not taken")
    return [jump(INVERTED[op], dst, skip, imm=imm), ja(to), Mark(skip)]
