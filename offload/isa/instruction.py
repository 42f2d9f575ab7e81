"""The immutable eBPF ``Instruction`` and its text form.

An instruction keeps every raw field (opcode, dst, src, off, imm and, for the two-slot
``lddw``, the imm of its second slot), so decoding then encoding is lossless. Properties give
the fields meaning (``cls``, ``alu_op``, ``size`` ...) and ``str()`` prints the text syntax of the
bpf_conformance test files, which :mod:`offload.isa.asm` reads back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache

from ..errors import OffloadError
from .opcodes import (
    ATOMIC_FETCH,
    CALLX,
    CLASS_MASK,
    ENDIAN_WIDTHS,
    LDDW,
    MAY_GOTO,
    MODE_MASK,
    MOVSX_OFFSETS,
    OP_MASK,
    SIZE_MASK,
    SOURCE_MASK,
    AluOp,
    AtomicOp,
    CallSrc,
    CondSrc,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)

ALU_NAMES = {
    AluOp.ADD: "add", AluOp.SUB: "sub", AluOp.MUL: "mul", AluOp.DIV: "div", AluOp.OR: "or",
    AluOp.AND: "and", AluOp.LSH: "lsh", AluOp.RSH: "rsh", AluOp.NEG: "neg", AluOp.MOD: "mod",
    AluOp.XOR: "xor", AluOp.MOV: "mov", AluOp.ARSH: "arsh",
}
JMP_NAMES = {
    JmpOp.JEQ: "jeq", JmpOp.JGT: "jgt", JmpOp.JGE: "jge", JmpOp.JSET: "jset", JmpOp.JNE: "jne",
    JmpOp.JSGT: "jsgt", JmpOp.JSGE: "jsge", JmpOp.JLT: "jlt", JmpOp.JLE: "jle",
    JmpOp.JSLT: "jslt", JmpOp.JSLE: "jsle",
}
SIZE_NAMES = {Size.B: "b", Size.H: "h", Size.W: "w", Size.DW: "dw"}
ATOMIC_NAMES = {
    AtomicOp.ADD: "add", AtomicOp.OR: "or", AtomicOp.AND: "and", AtomicOp.XOR: "xor",
    AtomicOp.XCHG: "xchg", AtomicOp.CMPXCHG: "cmpxchg",
}
PSEUDO_NAMES = {
    PseudoSrc.MAP_FD: "map_fd", PseudoSrc.MAP_VALUE: "map_value", PseudoSrc.BTF_ID: "btf_id",
    PseudoSrc.FUNC: "func", PseudoSrc.MAP_IDX: "map_idx",
    PseudoSrc.MAP_IDX_VALUE: "map_idx_value",
}


def _valid_opcodes() -> frozenset[int]:
    """Every opcode byte RFC 9669 defines, plus ``callx`` (0x8d) as clang emits it and
    ``may_goto`` (0xe5, Linux's BPF_JCOND; its other forms 0xed, 0xe6, 0xee are undefined)."""
    codes: set[int] = set()
    for cls in (InsnClass.ALU, InsnClass.ALU64):
        for op in AluOp:
            if op == AluOp.END:
                continue
            codes.add(cls | Source.K | op)
            if op != AluOp.NEG:
                codes.add(cls | Source.X | op)
    codes |= {InsnClass.ALU | AluOp.END | Endian.TO_LE, InsnClass.ALU | AluOp.END | Endian.TO_BE,
              InsnClass.ALU64 | AluOp.END | Endian.TO_LE}
    for cls in (InsnClass.JMP, InsnClass.JMP32):
        codes.add(cls | JmpOp.JA)
        for jmp in JMP_NAMES:
            codes.add(cls | Source.K | jmp)
            codes.add(cls | Source.X | jmp)
    codes |= {InsnClass.JMP | JmpOp.CALL, CALLX, InsnClass.JMP | JmpOp.EXIT, MAY_GOTO}
    codes.add(LDDW)
    for size in (Size.W, Size.H, Size.B):
        codes.add(InsnClass.LD | Mode.ABS | size)
        codes.add(InsnClass.LD | Mode.IND | size)
        codes.add(InsnClass.LDX | Mode.MEMSX | size)
    for size in Size:
        codes.add(InsnClass.LDX | Mode.MEM | size)
        codes.add(InsnClass.ST | Mode.MEM | size)
        codes.add(InsnClass.STX | Mode.MEM | size)
    codes.add(InsnClass.STX | Mode.ATOMIC | Size.W)
    codes.add(InsnClass.STX | Mode.ATOMIC | Size.DW)
    return frozenset(codes)


#: The opcode bytes a decoder accepts.
VALID_OPCODES = _valid_opcodes()


_CLASSES = tuple(InsnClass(value) for value in range(8))
_SOURCES = (Source.K, Source.X)
_SIZES = (Size.W, Size.H, Size.B, Size.DW)
_ALU_OPS = {op.value: op for op in AluOp}
_JMP_OPS = {op.value: op for op in JmpOp}
_MODES = {mode.value: mode for mode in Mode}


def format_imm(value: int) -> str:
    """Small numbers in decimal, large ones in hex, always with an explicit sign."""
    if -4096 < value < 4096:
        return str(value)
    return ("-" if value < 0 else "") + hex(abs(value))


def format_offset(value: int) -> str:
    return f"+{value}" if value >= 0 else str(value)


@dataclass(frozen=True, slots=True)
class Instruction:
    """One eBPF instruction; ``lddw`` is a single Instruction that fills two slots.

    ``off`` is the signed 16-bit offset, ``imm`` the signed 32-bit immediate, ``next_imm`` the
    immediate of the second ``lddw`` slot (unsigned 32-bit; zero for every other opcode).
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    next_imm: int = 0

    # ----------------------------------------------------------------- field views
    # The enum members come from tables indexed by the field's bits: calling an IntEnum to
    # look a member up costs about ten times more, and these properties are on hot paths.
    @property
    def cls(self) -> InsnClass:
        return _CLASSES[self.opcode & CLASS_MASK]

    @property
    def source(self) -> Source:
        return _SOURCES[(self.opcode & SOURCE_MASK) >> 3]

    @property
    def alu_op(self) -> AluOp:
        op = _ALU_OPS.get(self.opcode & OP_MASK)
        return AluOp(self.opcode & OP_MASK) if op is None else op  # none: ValueError

    @property
    def jmp_op(self) -> JmpOp:
        op = _JMP_OPS.get(self.opcode & OP_MASK)
        return JmpOp(self.opcode & OP_MASK) if op is None else op

    @property
    def size(self) -> Size:
        return _SIZES[(self.opcode & SIZE_MASK) >> 3]

    @property
    def mode(self) -> Mode:
        mode = _MODES.get(self.opcode & MODE_MASK)
        return Mode(self.opcode & MODE_MASK) if mode is None else mode

    @property
    def is_lddw(self) -> bool:
        return self.opcode == LDDW

    @property
    def width(self) -> int:
        """Number of 8-byte slots the instruction occupies."""
        return 2 if self.opcode == LDDW else 1

    @property
    def imm64(self) -> int:
        """The 64-bit immediate of ``lddw`` (unsigned)."""
        return (self.imm & 0xFFFFFFFF) | ((self.next_imm & 0xFFFFFFFF) << 32)

    @property
    def pseudo(self) -> PseudoSrc | None:
        """How an ``lddw`` immediate is to be read, or None for other opcodes."""
        if self.opcode != LDDW:
            return None
        try:
            return PseudoSrc(self.src)
        except ValueError:
            return None

    @property
    def is_call(self) -> bool:
        return self.opcode in (InsnClass.JMP | JmpOp.CALL, CALLX)

    @property
    def is_local_call(self) -> bool:
        return self.opcode == InsnClass.JMP | JmpOp.CALL and self.src == CallSrc.LOCAL

    @property
    def is_helper_call(self) -> bool:
        return self.opcode == InsnClass.JMP | JmpOp.CALL and self.src == CallSrc.HELPER

    @property
    def is_exit(self) -> bool:
        return self.opcode == InsnClass.JMP | JmpOp.EXIT

    @property
    def is_jump(self) -> bool:
        """A jump that transfers control within the function (not call, not exit)."""
        cls = self.opcode & CLASS_MASK
        if cls not in (InsnClass.JMP, InsnClass.JMP32):
            return False
        return (self.opcode & OP_MASK) not in (JmpOp.CALL, JmpOp.EXIT)

    @property
    def is_may_goto(self) -> bool:
        return self.opcode == MAY_GOTO

    @property
    def is_unconditional_jump(self) -> bool:
        return self.opcode in (InsnClass.JMP | JmpOp.JA, InsnClass.JMP32 | JmpOp.JA)

    @property
    def jump_offset(self) -> int:
        """Relative target of a jump: ``gotol`` (JMP32 JA) keeps it in imm, others in off."""
        if self.opcode == InsnClass.JMP32 | JmpOp.JA:
            return self.imm
        return self.off

    def with_fields(self, **changes: int) -> Instruction:
        """A copy with some fields replaced (instructions are immutable)."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Instruction(**fields)

    # ----------------------------------------------------------------- validity
    def field_problem(self) -> str | None:
        """Why the fields do not form a valid instruction, in the kernel verifier's words.

        Returns None for a well-formed instruction. Registers above r10 and reserved fields that
        are not zero are refused, as the Linux verifier refuses them. (Answers are cached:
        every consumer of a program asks for each of its instructions.)
        """
        return _field_problem(self)

    def _field_problem(self) -> str | None:
        op = self.opcode
        if op not in VALID_OPCODES:
            return f"unknown opcode {op:#04x}"
        if not 0 <= self.dst <= 15 or not 0 <= self.src <= 15:
            return "register field out of range"
        if not -0x8000 <= self.off <= 0x7FFF:
            return "offset field out of range"
        if not -0x80000000 <= self.imm <= 0x7FFFFFFF or not 0 <= self.next_imm <= 0xFFFFFFFF:
            return "immediate field out of range"
        if self.dst > 10:
            return f"R{self.dst} is invalid"
        if self.src > 10 and op != LDDW and not self.is_call:
            return f"R{self.src} is invalid"
        cls = op & CLASS_MASK
        if cls in (InsnClass.ALU, InsnClass.ALU64):
            return self._alu_problem()
        if cls in (InsnClass.JMP, InsnClass.JMP32):
            return self._jmp_problem()
        return self._mem_problem()

    def _alu_problem(self) -> str | None:
        op = self.opcode & OP_MASK
        name = "BPF_ALU" if self.cls == InsnClass.ALU else "BPF_ALU64"
        if op == AluOp.END:
            if self.src or self.off:
                return f"{name} uses reserved fields"
            if self.imm not in ENDIAN_WIDTHS:
                return f"invalid endian immediate {self.imm}"
            return None
        if op == AluOp.NEG:
            if self.src or self.off or self.imm:
                return f"{name} uses reserved fields"
            return None
        if self.source == Source.X and self.imm:
            return f"{name} uses reserved fields"
        if self.source == Source.K and self.src:
            return f"{name} uses reserved fields"
        if op in (AluOp.DIV, AluOp.MOD):
            if self.off not in (0, 1):
                return f"{name} uses reserved fields"
        elif op == AluOp.MOV and self.source == Source.X:
            allowed = MOVSX_OFFSETS if self.cls == InsnClass.ALU64 else MOVSX_OFFSETS[:2]
            if self.off and self.off not in allowed:
                return f"{name} uses reserved fields"
        elif self.off:
            return f"{name} uses reserved fields"
        return None

    def _jmp_problem(self) -> str | None:
        op = self.opcode & OP_MASK
        if op == JmpOp.JA:
            if self.cls == InsnClass.JMP32:
                if self.src or self.dst or self.off:
                    return "BPF_JA uses reserved fields"
            elif self.src or self.dst or self.imm:
                return "BPF_JA uses reserved fields"
            return None
        if op == JmpOp.EXIT:
            if self.src or self.dst or self.off or self.imm:
                return "BPF_EXIT uses reserved fields"
            return None
        if op == JmpOp.JCOND:  # only 0xe5 decodes; the kernel's words, and which field
            if self.src != CondSrc.MAY_GOTO:
                return (f"invalid may_goto imm {self.imm}: BPF_JCOND src {self.src} is not "
                        "BPF_MAY_GOTO (0), the only condition defined")
            if self.dst or self.imm:
                return f"invalid may_goto imm {self.imm}: dst_reg and imm must be 0"
            return None
        if op == JmpOp.CALL:
            if self.opcode == CALLX:
                if self.src or self.off or self.imm:
                    return "BPF_CALL uses reserved fields"
                return None
            if self.off or self.dst:
                return "BPF_CALL uses reserved fields"
            if self.src not in tuple(CallSrc):
                return "BPF_CALL uses reserved fields"
            return None
        if self.source == Source.K and self.src:
            return "BPF_JMP/JMP32 uses reserved fields"
        if self.source == Source.X and self.imm:
            return "BPF_JMP/JMP32 uses reserved fields"
        return None

    def _mem_problem(self) -> str | None:
        cls = self.cls
        mode = self.mode
        if self.opcode == LDDW:
            if self.off:
                return "invalid bpf_ld_imm64 insn"
            if self.src not in tuple(PseudoSrc):
                return f"unrecognized bpf_ld_imm64 insn (src {self.src})"
            if self.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX, PseudoSrc.BTF_ID,
                            PseudoSrc.FUNC) and self.next_imm:
                return "unrecognized bpf_ld_imm64 insn"
            return None
        if mode in (Mode.ABS, Mode.IND):
            if self.dst or self.off or (mode == Mode.ABS and self.src):
                return "BPF_LD_[ABS|IND] uses reserved fields"
            return None
        if cls == InsnClass.LDX:
            if self.imm:
                return "BPF_LDX uses reserved fields"
            return None
        if cls == InsnClass.ST:
            if self.src:
                return "BPF_ST uses reserved fields"
            return None
        if mode == Mode.ATOMIC:
            if self.imm not in tuple(AtomicOp) and self.imm not in (
                    AtomicOp.ADD | ATOMIC_FETCH, AtomicOp.OR | ATOMIC_FETCH,
                    AtomicOp.AND | ATOMIC_FETCH, AtomicOp.XOR | ATOMIC_FETCH):
                return f"BPF_ATOMIC uses invalid atomic opcode {self.imm:#04x}"
            return None
        if self.imm:
            return "BPF_STX uses reserved fields"
        return None

    # ----------------------------------------------------------------- text
    def __str__(self) -> str:
        if self.field_problem() is not None:
            return self.raw_text()
        cls = self.cls
        if cls.is_alu:
            return self._alu_text()
        if cls.is_jump:
            return self._jmp_text()
        return self._mem_text()

    def raw_text(self) -> str:
        """The ``.raw`` form, for words that are not valid instructions."""
        return " ".join(f".raw {word:#018x}" for word in slot_words(self))

    def _alu_text(self) -> str:
        suffix = "32" if self.cls == InsnClass.ALU else ""
        op = self.alu_op
        dst = f"%r{self.dst}"
        if op == AluOp.END:
            if self.cls == InsnClass.ALU64:
                return f"bswap{self.imm} {dst}"
            order = "be" if self.source == Endian.TO_BE else "le"
            return f"{order}{self.imm} {dst}"
        if op == AluOp.NEG:
            return f"neg{suffix} {dst}"
        name = ALU_NAMES[op]
        if op in (AluOp.DIV, AluOp.MOD) and self.off == 1:
            name = "s" + name
        if op == AluOp.MOV and self.off:
            width = "32" if self.cls == InsnClass.ALU else "64"
            return f"movsx{self.off}{width} {dst}, %r{self.src}"
        operand = f"%r{self.src}" if self.source == Source.X else format_imm(self.imm)
        return f"{name}{suffix} {dst}, {operand}"

    def _jmp_text(self) -> str:
        op = self.jmp_op
        if op == JmpOp.EXIT:
            return "exit"
        if op == JmpOp.CALL:
            if self.opcode == CALLX:
                return f"call %r{self.dst}"
            if self.src == CallSrc.LOCAL:
                return f"call local {format_offset(self.imm)}"
            if self.src == CallSrc.KFUNC:
                return f"call kfunc {self.imm}"
            return f"call {self.imm}"
        if op == JmpOp.JCOND:
            return f"may_goto {format_offset(self.off)}"
        if op == JmpOp.JA:
            if self.cls == InsnClass.JMP32:
                return f"ja32 {format_offset(self.imm)}"
            return f"ja {format_offset(self.off)}"
        suffix = "32" if self.cls == InsnClass.JMP32 else ""
        operand = f"%r{self.src}" if self.source == Source.X else format_imm(self.imm)
        return f"{JMP_NAMES[op]}{suffix} %r{self.dst}, {operand}, {format_offset(self.off)}"

    def _mem_text(self) -> str:
        cls = self.cls
        size = SIZE_NAMES[self.size]
        mode = self.mode
        if self.opcode == LDDW:
            pseudo = PseudoSrc(self.src)
            if pseudo == PseudoSrc.IMM64:
                return f"lddw %r{self.dst}, {self.imm64:#x}"
            name = PSEUDO_NAMES[pseudo]
            if pseudo == PseudoSrc.FUNC:
                return f"lddw %r{self.dst}, func {format_offset(self.imm)}"
            text = f"lddw %r{self.dst}, {name}({self.imm})"
            if pseudo in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
                text += f"+{self.next_imm}"
            return text
        if mode == Mode.ABS:
            return f"ldabs{size} {format_imm(self.imm)}"
        if mode == Mode.IND:
            return f"ldind{size} %r{self.src}, {format_imm(self.imm)}"
        if cls == InsnClass.LDX:
            sx = "s" if mode == Mode.MEMSX else ""
            return f"ldx{sx}{size} %r{self.dst}, {self._mem_operand(self.src)}"
        if cls == InsnClass.ST:
            return f"st{size} {self._mem_operand(self.dst)}, {format_imm(self.imm)}"
        if mode == Mode.ATOMIC:
            suffix = "32" if self.size == Size.W else ""
            base = self.imm & ~ATOMIC_FETCH if self.imm not in (AtomicOp.XCHG, AtomicOp.CMPXCHG) \
                else self.imm
            fetch = "fetch " if self.imm & ATOMIC_FETCH and base not in (
                AtomicOp.XCHG, AtomicOp.CMPXCHG) else ""
            name = ATOMIC_NAMES[AtomicOp(base)]
            return f"lock {fetch}{name}{suffix} {self._mem_operand(self.dst)}, %r{self.src}"
        return f"stx{size} {self._mem_operand(self.dst)}, %r{self.src}"

    def _mem_operand(self, reg: int) -> str:
        if self.off == 0:
            return f"[%r{reg}]"
        return f"[%r{reg}{format_offset(self.off)}]"


@lru_cache(maxsize=1 << 16)
def _field_problem(insn: Instruction) -> str | None:
    return insn._field_problem()


# ------------------------------------------------------------------ slot encoding
#: One 8-byte slot: opcode, dst | src << 4, off, imm (little-endian, RFC 9669 section 3).
SLOT = struct.Struct("<BBhi")


class EncodeError(OffloadError):
    """An Instruction whose fields do not fit the encoding."""


def check_fields(insn: Instruction) -> None:
    """Refuse (EncodeError) fields that do not fit their slot bits."""
    if not 0 <= insn.opcode <= 0xFF:
        raise EncodeError(f"opcode {insn.opcode} does not fit in a byte")
    if not (0 <= insn.dst <= 15 and 0 <= insn.src <= 15):
        raise EncodeError(f"register numbers must be 0..15 in {insn!r}")
    if not -0x8000 <= insn.off <= 0x7FFF:
        raise EncodeError(f"offset {insn.off} does not fit in 16 signed bits")
    if not -0x80000000 <= insn.imm <= 0x7FFFFFFF:
        raise EncodeError(f"immediate {insn.imm} does not fit in 32 signed bits")
    if not 0 <= insn.next_imm <= 0xFFFFFFFF:
        raise EncodeError(f"second immediate {insn.next_imm} does not fit in 32 bits")
    if insn.next_imm and insn.opcode != LDDW:
        raise EncodeError("only lddw has a second immediate")


def slot_words(insn: Instruction) -> list[int]:
    """The instruction's slots (two for ``lddw``) as little-endian 64-bit words."""
    check_fields(insn)
    words = [int.from_bytes(SLOT.pack(insn.opcode, insn.dst | (insn.src << 4), insn.off,
                                      insn.imm), "little")]
    if insn.opcode == LDDW:
        words.append(insn.next_imm << 32)
    return words
