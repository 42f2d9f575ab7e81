"""Instructions decoded once per program, for the checks that run on every processed one.

``Instruction`` derives its fields (``cls``, ``alu_op``, ``size`` ...) from the opcode byte on
each access, building an enum member every time. A verifier processes the same instruction up
to a million times, so ``Op`` reads them once, under the same names, as plain attributes, and
adds ``kind``: which check the instruction goes to. Only instructions that passed the field
checks (``Instruction.field_problem``) are decoded.
"""

from __future__ import annotations

from ..isa.instruction import Instruction
from ..isa.opcodes import (
    CLASS_MASK,
    LDDW as LDDW_OPCODE,
    MODE_MASK,
    OP_MASK,
    SIZE_MASK,
    SOURCE_MASK,
    AluOp,
    CallSrc,
    InsnClass,
    JmpOp,
    Mode,
    Size,
    Source,
)
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

# Field values to their enum members, looked up rather than built by calling the enum.
_CLASS = {int(m): m for m in InsnClass}
_SOURCE = {int(m): m for m in Source}
_ALU_OP = {int(m): m for m in AluOp}
_JMP_OP = {int(m): m for m in JmpOp}
_MODE = {int(m): m for m in Mode}
_SIZE = {int(m): m for m in Size}


class Op:
    """The fields of one instruction the checks read; operation fields not of its class are None."""

    __slots__ = ("insn", "kind", "opcode", "dst", "src", "off", "imm", "next_imm", "width",
                 "cls", "bits", "source", "alu_op", "jmp_op", "mode", "size", "nbytes",
                 "jump_offset", "imm_reg", "reg_operand")

    def __init__(self, insn: Instruction) -> None:
        self.insn = insn
        opcode = self.opcode = insn.opcode
        self.dst = insn.dst
        self.src = insn.src
        self.off = insn.off
        self.imm = insn.imm
        self.next_imm = insn.next_imm
        self.width = 2 if opcode == LDDW_OPCODE else 1
        cls = self.cls = _CLASS[opcode & CLASS_MASK]
        bits = self.bits = 32 if cls in (InsnClass.ALU, InsnClass.JMP32) else 64
        self.source = _SOURCE[opcode & SOURCE_MASK]
        #: ALU and jumps: the second operand is the src register (``Source.X``), not imm
        self.reg_operand = self.source == Source.X
        self.alu_op: AluOp | None = None
        self.jmp_op: JmpOp | None = None
        self.mode: Mode | None = None
        self.size: Size | None = None
        self.nbytes = 0
        self.jump_offset = 0
        #: The immediate as the operand register of ALU, jump and ST instructions (zero-extended
        #: from 32 bits in 32-bit operations); registers are immutable, so one serves every path.
        self.imm_reg: Reg | None = None
        if cls in (InsnClass.ALU, InsnClass.ALU64):
            self.alu_op = _ALU_OP[opcode & OP_MASK]
            self.kind = ALU
        elif cls in (InsnClass.JMP, InsnClass.JMP32):
            op = self.jmp_op = _JMP_OP[opcode & OP_MASK]
            if op == JmpOp.EXIT:
                self.kind = EXIT
            elif op == JmpOp.CALL:
                self.kind = LOCAL_CALL if insn.src == CallSrc.LOCAL else HELPER_CALL
            else:
                # gotol (JMP32 JA) keeps its offset in imm
                self.jump_offset = insn.imm if opcode == InsnClass.JMP32 | JmpOp.JA else insn.off
                self.kind = JA if op == JmpOp.JA else BRANCH
        else:
            mode = self.mode = _MODE[opcode & MODE_MASK]
            self.size = _SIZE[opcode & SIZE_MASK]
            self.nbytes = self.size.nbytes
            if cls == InsnClass.LD:
                self.kind = LDDW
            elif cls == InsnClass.LDX:
                self.kind = LOAD
            elif mode == Mode.ATOMIC:
                self.kind = ATOMIC
            else:
                self.kind = STORE
        if self.kind in (ALU, BRANCH) and self.source == Source.K or cls == InsnClass.ST:
            self.imm_reg = Reg.const(insn.imm & U32 if bits == 32 else insn.imm)
