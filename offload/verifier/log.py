"""Kernel-style verifier logs: ``12: (61) r2 = *(u32 *)(r1 +4)`` followed by the state.

The log is structured (one ``LogLine`` per processed instruction, the failing one marked) so a
command-line view can highlight it; ``str()`` gives the text the Linux verifier would print.
Instructions are shown in the kernel's own disassembly syntax (kernel/bpf/disasm.c) because
that is what people compare against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..helpers.prototypes import helper_name
from ..isa.instruction import Instruction
from ..isa.opcodes import (
    ATOMIC_FETCH,
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Source,
)
from .state import State

_ALU = {AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=",
        AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=",
        AluOp.XOR: "^=", AluOp.ARSH: "s>>="}
_JMP = {JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JSET: "&", JmpOp.JNE: "!=",
        JmpOp.JSGT: "s>", JmpOp.JSGE: "s>=", JmpOp.JLT: "<", JmpOp.JLE: "<=",
        JmpOp.JSLT: "s<", JmpOp.JSLE: "s<="}
_SIZES = {1: "u8", 2: "u16", 4: "u32", 8: "u64"}
_ATOMIC = {AtomicOp.ADD: "+=", AtomicOp.OR: "|=", AtomicOp.AND: "&=", AtomicOp.XOR: "^="}


def kernel_text(insn: Instruction) -> str:
    """One instruction the way the kernel's verifier log prints it."""
    cls = insn.cls
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        r = "r" if cls == InsnClass.ALU64 else "w"
        op = insn.alu_op
        d = f"{r}{insn.dst}"
        if op == AluOp.END:
            kind = "bswap" if cls == InsnClass.ALU64 else (
                "be" if insn.source == Endian.TO_BE else "le")
            return f"r{insn.dst} = {kind}{insn.imm} r{insn.dst}"
        if op == AluOp.NEG:
            return f"{d} = -{d}"
        operand = f"{r}{insn.src}" if insn.source == Source.X else str(insn.imm)
        if op == AluOp.MOV:
            if insn.off:
                return f"{d} = (s{insn.off}){r}{insn.src}"
            return f"{d} = {operand}"
        name = _ALU[op]
        if op in (AluOp.DIV, AluOp.MOD) and insn.off == 1:
            name = "s" + name
        return f"{d} {name} {operand}"
    if cls in (InsnClass.JMP, InsnClass.JMP32):
        if insn.is_exit:
            return "exit"
        if insn.is_call:
            if insn.is_local_call:
                return f"call pc{insn.imm:+d}"
            return f"call {helper_name(insn.imm)}#{insn.imm}"
        if insn.is_unconditional_jump:
            return f"goto pc{insn.jump_offset:+d}"
        if insn.is_may_goto:
            return f"may_goto pc{insn.off:+d}"
        r = "w" if cls == InsnClass.JMP32 else "r"
        operand = f"{r}{insn.src}" if insn.source == Source.X else f"{insn.imm:#x}"
        return f"if {r}{insn.dst} {_JMP[insn.jmp_op]} {operand} goto pc{insn.off:+d}"
    if insn.is_lddw:
        pseudo = insn.src
        if pseudo in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
            return f"r{insn.dst} = map[id:{insn.imm}]"
        if pseudo in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
            return f"r{insn.dst} = map[id:{insn.imm}][0]+{insn.next_imm}"
        return f"r{insn.dst} = {insn.imm64:#x} ll"
    size = _SIZES[insn.size.nbytes]
    if cls == InsnClass.LDX:
        sx = "s" if insn.mode == Mode.MEMSX else "u"
        return f"r{insn.dst} = *({sx}{size[1:]} *)(r{insn.src} {insn.off:+d})"
    if cls == InsnClass.ST:
        return f"*({size} *)(r{insn.dst} {insn.off:+d}) = {insn.imm}"
    if insn.mode == Mode.ATOMIC:
        mem = f"*({size} *)(r{insn.dst} {insn.off:+d})"
        if insn.imm == AtomicOp.XCHG:
            return f"r{insn.src} = atomic{'64' if size == 'u64' else ''}_xchg({mem}, r{insn.src})"
        if insn.imm == AtomicOp.CMPXCHG:
            return f"r0 = atomic{'64' if size == 'u64' else ''}_cmpxchg({mem}, r0, r{insn.src})"
        base = AtomicOp(insn.imm & ~ATOMIC_FETCH)
        if insn.imm & ATOMIC_FETCH:
            return f"r{insn.src} = atomic_fetch_{base.name.lower()}({mem}, r{insn.src})"
        return f"lock {mem} {_ATOMIC[base]} r{insn.src}"
    return f"*({size} *)(r{insn.dst} {insn.off:+d}) = r{insn.src}"


def state_text(state: State) -> str:
    """Registers and stack of the current frame: ``R1=ctx() R10=fp0 fp-8=mmmmmmmm``."""
    frame = state.frame
    parts = []
    if len(state.frames) > 1:
        parts.append(f"frame{frame.frameno}:")
    for r, reg in enumerate(frame.regs):
        if reg.is_init:
            parts.append(f"R{r}={reg}")
    for k in sorted(frame.stack):
        slot = frame.stack[k]
        if any(slot.kinds):
            parts.append(f"fp{-(k + 1) * 8}={slot}")
    return " ".join(parts)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One processed instruction: its slot, its text, the state after it (before, if it failed)."""

    insn: int
    text: str
    state: str
    failed: bool = False
    #: a message of the verifier's own between instructions (``Validating f() func#1...``)
    note: bool = False

    def __str__(self) -> str:
        if self.note:
            return self.text
        line = f"{self.insn}: {self.text}"
        return f"{line:<40} ; {self.state}" if self.state else line


@dataclass(frozen=True, slots=True)
class VerifierLog:
    """The lines of one path, ending at the failing instruction on rejection."""

    lines: tuple[LogLine, ...] = field(default=())
    reason: str = ""
    truncated: int = 0  # lines left out at the start of a long path

    @property
    def failing(self) -> LogLine | None:
        return next((line for line in reversed(self.lines) if line.failed), None)

    def __str__(self) -> str:
        out = []
        if self.truncated:
            out.append(f"... {self.truncated} earlier instructions of this path not shown")
        out.extend(str(line) for line in self.lines)
        if self.reason:
            out.append(self.reason)
        return "\n".join(out)


def insn_line(slot: int, insn: Instruction, state: State | None, failed: bool = False) -> LogLine:
    text = f"({insn.opcode:02x}) {kernel_text(insn)}"
    return LogLine(slot, text, state_text(state) if state is not None else "", failed)
