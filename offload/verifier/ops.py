"""Instructions decoded once per program, for the checks that run on every processed one.

``Instruction`` derives its fields (``cls``, ``alu_op``, ``size`` ...) from the opcode byte on
each access, building an enum member every time. A verifier processes the same instruction up
to a million times, so ``Op`` reads them once, under the same names, as plain attributes, and
adds ``kind``: which check the instruction goes to.
"""

from __future__ import annotations

from ..isa.instruction import Instruction
from ..isa.opcodes import AluOp, InsnClass, JmpOp, Mode, Size, Source
from .state import Reg
from .tnum import U32

# What ``_Explorer.step`` does with an instruction (``Op.kind``).
ALU = 0
LOAD = 1
STORE = 2
ATOMIC = 3
LDDW = 4
EXIT = 5
LOCAL_CALL = 6
HELPER_CALL = 7
JA = 8
BRANCH = 9


class Op:
    """The fields of one instruction the checks read; operation fields not of its class are None."""

    __slots__ = ("insn", "kind", "opcode", "dst", "src", "off", "imm", "next_imm", "imm64",
                 "cls", "bits", "source", "alu_op", "jmp_op", "mode", "size", "nbytes",
                 "jump_offset", "imm_reg")

    def __init__(self, insn: Instruction) -> None:
        self.insn = insn
        self.opcode = insn.opcode
        self.dst = insn.dst
        self.src = insn.src
        self.off = insn.off
        self.imm = insn.imm
        self.next_imm = insn.next_imm
        self.imm64 = insn.imm64
        cls = self.cls = insn.cls
        bits = self.bits = 32 if cls in (InsnClass.ALU, InsnClass.JMP32) else 64
        #: The immediate as the operand register of ALU, jump and ST instructions (zero-extended
        #: from 32 bits in 32-bit operations); registers are immutable, so one serves every path.
        self.imm_reg = Reg.const(insn.imm & U32 if bits == 32 else insn.imm)
        self.source: Source = insn.source
        self.alu_op: AluOp | None = None
        self.jmp_op: JmpOp | None = None
        self.mode: Mode | None = None
        self.size: Size | None = None
        self.nbytes = 0
        self.jump_offset = 0
        if cls in (InsnClass.ALU, InsnClass.ALU64):
            self.alu_op = insn.alu_op
            self.kind = ALU
        elif cls in (InsnClass.JMP, InsnClass.JMP32):
            self.jmp_op = insn.jmp_op
            if insn.is_exit:
                self.kind = EXIT
            elif insn.is_call:
                self.kind = LOCAL_CALL if insn.is_local_call else HELPER_CALL
            else:
                self.jump_offset = insn.jump_offset
                self.kind = JA if insn.is_unconditional_jump else BRANCH
        else:
            self.mode = insn.mode
            self.size = insn.size
            self.nbytes = insn.size.nbytes
            if cls == InsnClass.LD:
                self.kind = LDDW
            elif cls == InsnClass.LDX:
                self.kind = LOAD
            elif self.mode == Mode.ATOMIC:
                self.kind = ATOMIC
            else:
                self.kind = STORE

    @property
    def is_local_call(self) -> bool:
        return self.kind == LOCAL_CALL


def decode_all(slots: tuple[Instruction | None, ...]) -> tuple[Op | None, ...]:
    """One ``Op`` per slot (None for the second slot of ``lddw``)."""
    return tuple(Op(insn) if insn is not None else None for insn in slots)
