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
from ..isa.opcodes import (
    LDDW as LDDW_OPCODE,
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
MAY_GOTO = 10  # two successors, no operands: the state goes on unchanged on both

# Field values to their enum members, looked up rather than built by calling the enum.
_CLASS = {int(m): m for m in InsnClass}
_SOURCE = {int(m): m for m in Source}
_ALU_OP = {int(m): m for m in AluOp}
_JMP_OP = {int(m): m for m in JmpOp}
_MODE = {int(m): m for m in Mode}
_NBYTES = {int(m): m.nbytes for m in Size}
_ALU_CLASSES = frozenset({InsnClass.ALU, InsnClass.ALU64})
_JMP_CLASSES = frozenset({InsnClass.JMP, InsnClass.JMP32})
_32_BIT_CLASSES = frozenset({InsnClass.ALU, InsnClass.JMP32})
_GOTOL = InsnClass.JMP32 | JmpOp.JA


class Op:
    """The fields of one instruction the checks read. The operation fields exist only for
    their class (``alu_op`` for ALU instructions, ``jmp_op`` for jumps, ``mode`` for loads and
    stores, ``imm_reg`` where the immediate is an operand): reading one elsewhere is a bug,
    and fails loudly.

    ``consts`` shares the immediate operand registers among the instructions of a program.
    """

    __slots__ = ("kind", "dst", "src", "off", "imm", "width", "cls", "bits", "source",
                 "reg_operand", "alu_op", "jmp_op", "mode", "nbytes", "jump_offset", "imm_reg")
    alu_op: AluOp
    jmp_op: JmpOp
    mode: Mode
    #: The immediate as the operand register of ALU, jump and ST instructions (zero-extended
    #: from 32 bits in 32-bit operations); registers are immutable, so one serves every path.
    imm_reg: Reg

    def __init__(self, insn: Instruction, consts: dict[int, Reg] | None = None) -> None:
        opcode = insn.opcode
        self.dst = insn.dst
        self.src = insn.src
        self.off = insn.off
        imm = self.imm = insn.imm
        self.width = 2 if opcode == LDDW_OPCODE else 1
        cls = self.cls = _CLASS[opcode & CLASS_MASK]
        bits = self.bits = 32 if cls in _32_BIT_CLASSES else 64
        source = self.source = _SOURCE[opcode & SOURCE_MASK]
        #: ALU and jumps: the second operand is the src register (``Source.X``), not imm
        self.reg_operand = source == Source.X
        self.nbytes = 0
        self.jump_offset = 0
        if cls in _ALU_CLASSES:
            self.alu_op = _ALU_OP[opcode & OP_MASK]
            self.kind = ALU
            with_imm = not self.reg_operand
        elif cls in _JMP_CLASSES:
            op = self.jmp_op = _JMP_OP[opcode & OP_MASK]
            with_imm = False
            if op == JmpOp.EXIT:
                self.kind = EXIT
            elif op == JmpOp.CALL:
                self.kind = LOCAL_CALL if insn.src == CallSrc.LOCAL else HELPER_CALL
            else:
                # gotol (JMP32 JA) keeps its offset in imm
                self.jump_offset = imm if opcode == _GOTOL else insn.off
                self.kind = JA if op == JmpOp.JA else MAY_GOTO if op == JmpOp.JCOND \
                    else BRANCH
                with_imm = self.kind == BRANCH and not self.reg_operand
        else:
            mode = self.mode = _MODE[opcode & MODE_MASK]
            self.nbytes = _NBYTES[opcode & SIZE_MASK]
            with_imm = cls == InsnClass.ST
            if cls == InsnClass.LD:
                self.kind = LDDW
            elif cls == InsnClass.LDX:
                self.kind = LOAD
            elif mode == Mode.ATOMIC:
                self.kind = ATOMIC
            else:
                self.kind = STORE
        if with_imm:
            value = imm & U32 if bits == 32 else imm
            reg = consts.get(value) if consts is not None else None
            if reg is None:
                reg = Reg.const(value)
                if consts is not None:
                    consts[value] = reg
            self.imm_reg = reg
