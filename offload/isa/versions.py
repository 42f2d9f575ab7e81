"""Which ISA version an instruction needs (the ``-mcpu=v1..v4`` levels of clang and the
conformance groups of RFC 9669 section 2.4).

v1 is the original set; v2 adds the unsigned and signed "less than" jumps (JLT, JLE, JSLT,
JSLE); v3 adds the JMP32 class and the atomic operations beyond plain add; v4 adds signed
division and modulo, sign-extending moves and loads, unconditional byte swaps and ``gotol``.
``may_goto`` (Linux 6.9's BPF_JCOND) is in none of them: clang emits it at every level, so it
counts as v1 here and a device's engines decide whether they run it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .instruction import Instruction
from .opcodes import AluOp, AtomicOp, InsnClass, JmpOp, Mode

_V2_JUMPS = (JmpOp.JLT, JmpOp.JLE, JmpOp.JSLT, JmpOp.JSLE)


def required_version(insn: Instruction) -> int:
    """The lowest ISA version (1..4) that defines this instruction."""
    cls = insn.cls
    if cls.is_alu:
        op = insn.alu_op
        if op in (AluOp.DIV, AluOp.MOD) and insn.off == 1:
            return 4
        if op == AluOp.MOV and insn.off:
            return 4
        if op == AluOp.END and cls == InsnClass.ALU64:
            return 4
        return 1
    if cls == InsnClass.JMP32:
        return 4 if insn.jmp_op == JmpOp.JA else 3
    if cls == InsnClass.JMP:
        return 2 if insn.jmp_op in _V2_JUMPS else 1
    if cls == InsnClass.LDX and insn.mode == Mode.MEMSX:
        return 4
    if cls == InsnClass.STX and insn.mode == Mode.ATOMIC:
        return 1 if insn.imm == AtomicOp.ADD else 3
    return 1


def program_version(insns: Iterable[Instruction]) -> int:
    """The ISA version a whole program needs."""
    return max((required_version(insn) for insn in insns), default=1)
