"""Which registers' upper 32 bits a value still needs: the lowering's question to liveness.

Register liveness itself is ``isa.liveness``, shared with the verifier; this module only says
which reads see a register's upper half, so :func:`~offload.isa.liveness.live_out` given
:func:`uses_upper` tells where a rewrite may change the upper half of a live register.
"""

from __future__ import annotations

from offload.isa import AluOp, AtomicOp, InsnClass, Instruction, Mode, Size
from offload.isa.liveness import R0, bit, uses_defs


def uses_upper(insn: Instruction) -> int:
    """Registers whose upper 32 bits the instruction reads (bit set).

    32-bit operations, JMP32 compares and stores narrower than 8 bytes see only the low
    half; a rewrite may change the upper half of a register that only such reads follow
    (``upper_live_out``), e.g. zero-extend it in place for a 64-bit compare, which lets a
    verifier learn the compare's bounds on the register itself.
    """
    cls = insn.cls
    uses, _ = uses_defs(insn)
    if cls == InsnClass.ALU:
        wide_end = insn.alu_op == AluOp.END and insn.imm == 64
        return bit(insn.dst) if wide_end else 0
    if cls == InsnClass.ALU64:
        if insn.alu_op == AluOp.MOV and insn.off:  # movsx reads 8, 16 or 32 bits
            return 0
        if insn.alu_op == AluOp.END and insn.imm < 64:
            return 0
        return uses
    if cls == InsnClass.JMP32:
        return 0
    narrow = insn.size != Size.DW
    if cls == InsnClass.STX and narrow:
        extra = R0 if insn.mode == Mode.ATOMIC and insn.imm == AtomicOp.CMPXCHG else 0
        return uses & ~(bit(insn.src) | extra) | bit(insn.dst)
    return uses
