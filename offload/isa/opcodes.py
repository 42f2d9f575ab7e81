"""Opcode fields of the eBPF instruction set, named as in RFC 9669.

An opcode byte packs several fields (RFC 9669 section 3): the low three bits are always the
instruction class; arithmetic and jump classes add a source bit and a 4-bit operation, load
and store classes add a size and a mode. The enums below hold the field values already
shifted into place, so ``InsnClass.ALU64 | Source.X | AluOp.ADD`` is the opcode byte 0x0f.
"""

from __future__ import annotations

from enum import IntEnum


class InsnClass(IntEnum):
    """Instruction class, the low three bits of the opcode (RFC 9669 section 3.3)."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07

    @property
    def is_alu(self) -> bool:
        return self in (InsnClass.ALU, InsnClass.ALU64)

    @property
    def is_jump(self) -> bool:
        return self in (InsnClass.JMP, InsnClass.JMP32)

    @property
    def is_load_store(self) -> bool:
        return self <= InsnClass.STX


CLASS_MASK = 0x07
SOURCE_MASK = 0x08
OP_MASK = 0xF0
SIZE_MASK = 0x18
MODE_MASK = 0xE0


class Source(IntEnum):
    """Source operand bit of arithmetic and jump opcodes (RFC 9669 section 3.3.1)."""

    K = 0x00  # use the 32-bit immediate
    X = 0x08  # use the src register


class AluOp(IntEnum):
    """Arithmetic operations (RFC 9669 section 4.1), already shifted into the opcode."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30  # SDIV when offset is 1
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90  # SMOD when offset is 1
    XOR = 0xA0
    MOV = 0xB0  # MOVSX when offset is 8, 16 or 32
    ARSH = 0xC0
    END = 0xD0


class Endian(IntEnum):
    """Source bit of the END operation: target byte order (RFC 9669 section 4.2)."""

    TO_LE = 0x00
    TO_BE = 0x08


class JmpOp(IntEnum):
    """Jump operations (RFC 9669 section 4.3), already shifted into the opcode."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0  # a Linux extension beyond RFC 9669: the condition is in src (CondSrc)


class Size(IntEnum):
    """Access size of load and store opcodes (RFC 9669 section 5)."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def nbytes(self) -> int:
        return _SIZE_BYTES[self]


_SIZE_BYTES = {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}


class Mode(IntEnum):
    """Mode of load and store opcodes (RFC 9669 section 5)."""

    IMM = 0x00  # 64-bit immediate (lddw)
    ABS = 0x20  # legacy packet access
    IND = 0x40  # legacy packet access
    MEM = 0x60
    MEMSX = 0x80  # sign-extending load
    ATOMIC = 0xC0


class AtomicOp(IntEnum):
    """Atomic operations, carried in the imm field (RFC 9669 section 5.3)."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    XCHG = 0xE0 | 0x01
    CMPXCHG = 0xF0 | 0x01


ATOMIC_FETCH = 0x01


class PseudoSrc(IntEnum):
    """The src field of ``lddw``: how the 64-bit immediate is interpreted (RFC 9669 5.4)."""

    IMM64 = 0  # the immediate itself
    MAP_FD = 1  # map by file descriptor (or device handle)
    MAP_VALUE = 2  # address of a map value: map fd in imm, offset in next_imm
    BTF_ID = 3  # address of a kernel variable
    FUNC = 4  # address of a subprogram, imm is the relative instruction offset
    MAP_IDX = 5  # map by index into the program's map array
    MAP_IDX_VALUE = 6  # map value by index, offset in next_imm


class CallSrc(IntEnum):
    """The src field of ``call`` (RFC 9669 section 4.3.1)."""

    HELPER = 0  # helper function by static id
    LOCAL = 1  # bpf-to-bpf call, imm is the relative instruction offset
    KFUNC = 2  # helper function by BTF id


class CondSrc(IntEnum):
    """The src field of ``BPF_JCOND``: which hidden condition the jump tests (Linux 6.9+).

    ``MAY_GOTO`` jumps once a per-call-frame counter of the jumps it let fall through is
    used up: it bounds a loop without a bound the verifier could prove.
    """

    MAY_GOTO = 0


# The ``lddw`` opcode byte and the two forms of call.
LDDW = InsnClass.LD | Size.DW | Mode.IMM  # 0x18
CALL = InsnClass.JMP | Source.K | JmpOp.CALL  # 0x85
CALLX = InsnClass.JMP | Source.X | JmpOp.CALL  # 0x8d
EXIT = InsnClass.JMP | Source.K | JmpOp.EXIT  # 0x95
MAY_GOTO = InsnClass.JMP | Source.K | JmpOp.JCOND  # 0xe5, the only JCOND opcode

#: Offsets that turn MOV into MOVSX (sign-extend from that many bits).
MOVSX_OFFSETS = (8, 16, 32)
#: Immediates allowed for the END operation (bit widths).
ENDIAN_WIDTHS = (16, 32, 64)
