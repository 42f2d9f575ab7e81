"""Assembler for the text syntax of the bpf_conformance and uBPF test files.

Syntax: one instruction per line, ``#`` starts a comment, ``name:`` defines a label, registers
are ``%r0``..``%r10``, memory operands ``[%rN+off]``. Jump and ``call local`` targets are labels
or signed relative offsets (``+3``, ``-1``); a label named ``exit`` that is never defined means
the first ``exit`` instruction, as in the conformance suite. Beyond that suite's syntax it reads
what :class:`~offload.isa.instruction.Instruction` prints: ``lddw`` pseudo forms such as
``map_value(3)+16``, ``call kfunc N``, ``may_goto TARGET`` and ``.raw 0x...`` words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import OffloadError
from .codec import DecodeError, decode, words_to_bytes
from .instruction import ALU_NAMES, ATOMIC_NAMES, JMP_NAMES, PSEUDO_NAMES, SIZE_NAMES, Instruction
from .opcodes import (
    ATOMIC_FETCH,
    CALLX,
    LDDW,
    MAY_GOTO,
    AluOp,
    AtomicOp,
    CallSrc,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Size,
    Source,
)


class AsmError(OffloadError):
    """Assembler text that cannot be turned into instructions."""

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


_REG = re.compile(r"^%r(\d+)$")
_MEM = re.compile(r"^\[\s*(%r\d+)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|\d+))?\s*\]$")
_ENDIAN = re.compile(r"^(le|be|bswap|swap)(16|32|64)$")
_LABEL = re.compile(r"^[A-Za-z_.$][\w.$]*$")
_PSEUDO = re.compile(r"^(\w+)\(\s*([-+]?(?:0x[0-9a-fA-F]+|\d+))\s*\)(?:\s*\+\s*(0x[0-9a-fA-F]+|\d+))?$")
_SIZES = {name: size for size, name in SIZE_NAMES.items()}
_ALU_OPS = {name: op for op, name in ALU_NAMES.items()}
_JMP_OPS = {name: op for op, name in JMP_NAMES.items()}
_ATOMIC_OPS = {name: op for op, name in ATOMIC_NAMES.items()}
_PSEUDOS = {name: kind for kind, name in PSEUDO_NAMES.items()}


@dataclass(slots=True)
class _Pending:
    """An instruction whose target is a label, fixed up once every label is known."""

    insn: Instruction
    label: str
    field: str  # "off" or "imm"
    line: int


def parse_int(text: str, *, line: int) -> int:
    text = text.strip()
    try:
        return int(text, 0) if not re.fullmatch(r"[-+]?0\d+", text) else int(text, 10)
    except ValueError:
        raise AsmError(f"invalid number {text!r}", line=line) from None


def _imm32(text: str, *, line: int) -> int:
    value = parse_int(text, line=line)
    if not -(1 << 31) <= value < (1 << 32):
        raise AsmError(f"immediate {text} does not fit in 32 bits", line=line)
    return value - (1 << 32) if value >= (1 << 31) else value


def _off16(value: int, *, line: int) -> int:
    if not -(1 << 15) <= value < (1 << 15):
        raise AsmError(f"offset {value} does not fit in 16 bits (signed)", line=line)
    return value


def _reg(text: str, *, line: int) -> int:
    match = _REG.match(text.strip())
    if not match or int(match.group(1)) > 15:
        raise AsmError(f"invalid register {text.strip()!r}", line=line)
    return int(match.group(1))


def _mem(text: str, *, line: int) -> tuple[int, int]:
    match = _MEM.match(text.strip())
    if not match:
        raise AsmError(f"invalid memory operand {text.strip()!r}, expected [%rN+off]", line=line)
    reg = _reg(match.group(1), line=line)
    off = 0
    if match.group(2):
        off = parse_int(match.group(3), line=line)
        if match.group(2) == "-":
            off = -off
    return reg, _off16(off, line=line)


def _split_operands(rest: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in rest:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


class _Assembler:
    def __init__(self) -> None:
        self.insns: list[Instruction] = []
        self.slot = 0
        self.labels: dict[str, int] = {}
        self.pending: dict[int, _Pending] = {}  # index into self.insns -> fix-up
        self.first_exit: int | None = None

    # ------------------------------------------------------------------ driver
    def run(self, text: str) -> list[Instruction]:
        for number, raw_line in enumerate(text.splitlines(), start=1):
            line = raw_line.split("#", 1)[0].strip()
            while line:
                label, sep, rest = line.partition(":")
                if sep and _LABEL.match(label.strip()) and not label.strip().startswith("."):
                    name = label.strip()
                    if name in self.labels:
                        raise AsmError(f"duplicate label {name!r}", line=number)
                    self.labels[name] = self.slot
                    line = rest.strip()
                    continue
                self._statement(line, number)
                break
        if self.first_exit is not None:
            self.labels.setdefault("exit", self.first_exit)
        return self._fix_up()

    def _emit(self, insn: Instruction, pending: tuple[str, str] | None = None,
              line: int = 0) -> None:
        if pending is not None:
            self.pending[len(self.insns)] = _Pending(insn, pending[0], pending[1], line)
        if insn.is_exit and self.first_exit is None:
            self.first_exit = self.slot
        self.insns.append(insn)
        self.slot += insn.width

    def _fix_up(self) -> list[Instruction]:
        slot = 0
        out: list[Instruction] = []
        for index, insn in enumerate(self.insns):
            fix = self.pending.get(index)
            if fix is not None:
                if fix.label not in self.labels:
                    raise AsmError(f"undefined label {fix.label!r}", line=fix.line)
                delta = self.labels[fix.label] - slot - 1
                if fix.field == "off":
                    insn = insn.with_fields(off=_off16(delta, line=fix.line))
                else:
                    insn = insn.with_fields(imm=delta)
            out.append(insn)
            slot += insn.width
        return out

    def _target(self, text: str, line: int) -> tuple[int, tuple[str, str] | None]:
        """A relative offset now, or a label to fix up later."""
        text = text.strip()
        if text[:1] in "+-":
            return parse_int(text, line=line), None
        if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", text):
            return parse_int(text, line=line), None
        if not _LABEL.match(text):
            raise AsmError(f"invalid jump target {text!r}", line=line)
        return 0, (text, "")

    # ------------------------------------------------------------------ statements
    def _statement(self, line: str, number: int) -> None:
        mnemonic, _, rest = line.partition(" ")
        mnemonic = mnemonic.strip().lower()
        rest = rest.strip()
        handler = self._handler(mnemonic)
        if handler is None:
            raise AsmError(f"unknown mnemonic {mnemonic!r}", line=number)
        handler(mnemonic, rest, number)

    def _handler(self, mnemonic: str) -> Callable[[str, str, int], None] | None:
        if mnemonic == ".raw":
            return self._raw
        if mnemonic == "lddw":
            return self._lddw
        if mnemonic == "lock":
            return self._atomic
        if mnemonic in ("call", "callx"):
            return self._call
        if mnemonic in ("exit", "ja", "ja32", "gotol", "may_goto"):
            return self._ja_exit
        if _ENDIAN.match(mnemonic):
            return self._endian
        base = mnemonic[:-2] if mnemonic.endswith(("32", "64")) else mnemonic
        if base in _JMP_OPS and not mnemonic.endswith("64"):
            return self._jump
        if base in _ALU_OPS or base in ("sdiv", "smod") or mnemonic.startswith("movsx"):
            return self._alu
        if mnemonic.startswith("ldx") and mnemonic[3:].lstrip("s") in _SIZES:
            return self._ldx
        if mnemonic.startswith("stx") and mnemonic[3:] in _SIZES:
            return self._stx
        if mnemonic.startswith("st") and mnemonic[2:] in _SIZES:
            return self._st
        if mnemonic.startswith(("ldabs", "ldind")) and mnemonic[5:] in _SIZES:
            return self._legacy
        return None

    def _operands(self, rest: str, count: int, mnemonic: str, line: int) -> list[str]:
        operands = _split_operands(rest)
        if len(operands) != count:
            raise AsmError(f"{mnemonic} takes {count} operand(s), got {len(operands)}", line=line)
        return operands

    def _raw(self, mnemonic: str, rest: str, line: int) -> None:
        words = [parse_int(word, line=line) for word in rest.split()]
        try:
            insns = decode(words_to_bytes(words))
        except (DecodeError, OffloadError) as err:
            raise AsmError(str(err), line=line) from None
        for insn in insns:
            self._emit(insn)

    def _alu(self, mnemonic: str, rest: str, line: int) -> None:
        cls = InsnClass.ALU64
        name = mnemonic
        off = 0
        if name.startswith("movsx"):
            bits = name[5:]
            table = {"832": (8, InsnClass.ALU), "1632": (16, InsnClass.ALU),
                     "864": (8, InsnClass.ALU64), "1664": (16, InsnClass.ALU64),
                     "3264": (32, InsnClass.ALU64)}
            if bits not in table:
                raise AsmError(f"unknown mnemonic {mnemonic!r}", line=line)
            off, cls = table[bits]
            dst, src = self._operands(rest, 2, mnemonic, line)
            self._emit(Instruction(cls | Source.X | AluOp.MOV, _reg(dst, line=line),
                                   _reg(src, line=line), off, 0))
            return
        if name.endswith("32"):
            cls, name = InsnClass.ALU, name[:-2]
        elif name.endswith("64"):
            name = name[:-2]
        if name in ("sdiv", "smod"):
            off, name = 1, name[1:]
        op = _ALU_OPS.get(name)
        if op is None:
            raise AsmError(f"unknown mnemonic {mnemonic!r}", line=line)
        if op == AluOp.NEG:
            (dst,) = self._operands(rest, 1, mnemonic, line)
            self._emit(Instruction(cls | Source.K | op, _reg(dst, line=line)))
            return
        dst, operand = self._operands(rest, 2, mnemonic, line)
        if operand.startswith("%"):
            self._emit(Instruction(cls | Source.X | op, _reg(dst, line=line),
                                   _reg(operand, line=line), off, 0))
        else:
            self._emit(Instruction(cls | Source.K | op, _reg(dst, line=line), 0, off,
                                   _imm32(operand, line=line)))

    def _endian(self, mnemonic: str, rest: str, line: int) -> None:
        (dst,) = self._operands(rest, 1, mnemonic, line)
        width = int(mnemonic[-2:])
        if mnemonic.startswith("le"):
            opcode = InsnClass.ALU | AluOp.END | Endian.TO_LE
        elif mnemonic.startswith("be"):
            opcode = InsnClass.ALU | AluOp.END | Endian.TO_BE
        else:
            opcode = InsnClass.ALU64 | AluOp.END | Endian.TO_LE
        self._emit(Instruction(opcode, _reg(dst, line=line), 0, 0, width))

    def _ja_exit(self, mnemonic: str, rest: str, line: int) -> None:
        if mnemonic == "exit":
            self._operands(rest, 0, mnemonic, line)
            self._emit(Instruction(InsnClass.JMP | JmpOp.EXIT))
            return
        (target,) = self._operands(rest, 1, mnemonic, line)
        value, label = self._target(target, line)
        if mnemonic == "may_goto":
            self._emit(Instruction(MAY_GOTO, off=_off16(value, line=line)),
                       (label[0], "off") if label else None, line)
        elif mnemonic == "ja":
            self._emit(Instruction(InsnClass.JMP | JmpOp.JA, off=_off16(value, line=line)),
                       (label[0], "off") if label else None, line)
        else:
            self._emit(Instruction(InsnClass.JMP32 | JmpOp.JA, imm=_imm32(str(value), line=line)),
                       (label[0], "imm") if label else None, line)

    def _jump(self, mnemonic: str, rest: str, line: int) -> None:
        cls = InsnClass.JMP32 if mnemonic.endswith("32") else InsnClass.JMP
        op = _JMP_OPS[mnemonic[:-2] if mnemonic.endswith("32") else mnemonic]
        dst, operand, target = self._operands(rest, 3, mnemonic, line)
        value, label = self._target(target, line)
        fix = (label[0], "off") if label else None
        off = _off16(value, line=line)
        if operand.startswith("%"):
            insn = Instruction(cls | Source.X | op, _reg(dst, line=line), _reg(operand, line=line),
                               off, 0)
        else:
            insn = Instruction(cls | Source.K | op, _reg(dst, line=line), 0, off,
                               _imm32(operand, line=line))
        self._emit(insn, fix, line)

    def _call(self, mnemonic: str, rest: str, line: int) -> None:
        words = rest.split()
        if mnemonic == "callx" or (len(words) == 1 and words[0].startswith("%")):
            if len(words) != 1:
                raise AsmError("callx takes one register", line=line)
            self._emit(Instruction(CALLX, _reg(words[0], line=line)))
            return
        if len(words) == 1:
            words = ["helper", words[0]]
        if len(words) != 2:
            raise AsmError("call takes a target: N, local LABEL, helper N or kfunc N", line=line)
        mode, target = words
        if mode == "helper":
            self._emit(Instruction(InsnClass.JMP | JmpOp.CALL, 0, CallSrc.HELPER, 0,
                                   _imm32(target, line=line)))
        elif mode in ("kfunc", "runtime"):
            self._emit(Instruction(InsnClass.JMP | JmpOp.CALL, 0, CallSrc.KFUNC, 0,
                                   _imm32(target, line=line)))
        elif mode == "local":
            value, label = self._target(target, line)
            self._emit(Instruction(InsnClass.JMP | JmpOp.CALL, 0, CallSrc.LOCAL, 0,
                                   _imm32(str(value), line=line)),
                       (label[0], "imm") if label else None, line)
        else:
            raise AsmError(f"invalid call mode {mode!r}", line=line)

    def _lddw(self, mnemonic: str, rest: str, line: int) -> None:
        dst_text, value = self._operands(rest, 2, mnemonic, line)
        dst = _reg(dst_text, line=line)
        if value.startswith("func"):
            amount, label = self._target(value[4:], line)
            self._emit(Instruction(LDDW, dst, PseudoSrc.FUNC, 0, _imm32(str(amount), line=line)),
                       (label[0], "imm") if label else None, line)
            return
        match = _PSEUDO.match(value)
        if match:
            kind = _PSEUDOS.get(match.group(1))
            if kind is None:
                raise AsmError(f"unknown lddw source {match.group(1)!r}", line=line)
            extra = parse_int(match.group(3), line=line) if match.group(3) else 0
            if extra and kind not in (PseudoSrc.MAP_VALUE, PseudoSrc.MAP_IDX_VALUE):
                raise AsmError(f"{match.group(1)} takes no offset", line=line)
            if not 0 <= extra < 1 << 32:
                raise AsmError(f"offset {extra} does not fit in 32 bits", line=line)
            self._emit(Instruction(LDDW, dst, kind, 0, _imm32(match.group(2), line=line), extra))
            return
        imm = parse_int(value, line=line)
        if not -(1 << 63) <= imm < 1 << 64:
            raise AsmError(f"immediate {value} does not fit in 64 bits", line=line)
        imm &= (1 << 64) - 1
        low = imm & 0xFFFFFFFF
        low = low - (1 << 32) if low & 0x80000000 else low
        self._emit(Instruction(LDDW, dst, 0, 0, low, imm >> 32))

    def _ldx(self, mnemonic: str, rest: str, line: int) -> None:
        size_name = mnemonic[3:]
        mode = Mode.MEM
        if size_name not in _SIZES:
            size_name, mode = size_name[1:], Mode.MEMSX
        size = _SIZES[size_name]
        if mode == Mode.MEMSX and size == Size.DW:
            raise AsmError("there is no sign-extending 64-bit load", line=line)
        dst, mem = self._operands(rest, 2, mnemonic, line)
        src, off = _mem(mem, line=line)
        self._emit(Instruction(InsnClass.LDX | mode | size, _reg(dst, line=line), src, off, 0))

    def _st(self, mnemonic: str, rest: str, line: int) -> None:
        mem, value = self._operands(rest, 2, mnemonic, line)
        dst, off = _mem(mem, line=line)
        self._emit(Instruction(InsnClass.ST | Mode.MEM | _SIZES[mnemonic[2:]], dst, 0, off,
                               _imm32(value, line=line)))

    def _stx(self, mnemonic: str, rest: str, line: int) -> None:
        mem, src = self._operands(rest, 2, mnemonic, line)
        dst, off = _mem(mem, line=line)
        self._emit(Instruction(InsnClass.STX | Mode.MEM | _SIZES[mnemonic[3:]], dst,
                               _reg(src, line=line), off, 0))

    def _atomic(self, mnemonic: str, rest: str, line: int) -> None:
        words = rest.split(None, 1)
        fetch = False
        if words and words[0] == "fetch":
            fetch = True
            words = words[1].split(None, 1) if len(words) > 1 else []
        if len(words) != 2:
            raise AsmError("lock takes [fetch] OP [%rN+off], %rM", line=line)
        name, operands = words
        size = Size.DW
        if name.endswith("32"):
            size, name = Size.W, name[:-2]
        op = _ATOMIC_OPS.get(name)
        if op is None:
            raise AsmError(f"unknown atomic operation {name!r}", line=line)
        mem, src = self._operands(operands, 2, "lock " + name, line)
        dst, off = _mem(mem, line=line)
        imm = int(op)
        if fetch:
            if op in (AtomicOp.XCHG, AtomicOp.CMPXCHG):
                raise AsmError(f"{name} always fetches; drop 'fetch'", line=line)
            imm |= ATOMIC_FETCH
        self._emit(Instruction(InsnClass.STX | Mode.ATOMIC | size, dst, _reg(src, line=line),
                               off, imm))

    def _legacy(self, mnemonic: str, rest: str, line: int) -> None:
        size = _SIZES[mnemonic[5:]]
        if mnemonic.startswith("ldabs"):
            (imm,) = self._operands(rest, 1, mnemonic, line)
            self._emit(Instruction(InsnClass.LD | Mode.ABS | size, imm=_imm32(imm, line=line)))
        else:
            src, imm = self._operands(rest, 2, mnemonic, line)
            self._emit(Instruction(InsnClass.LD | Mode.IND | size, 0, _reg(src, line=line), 0,
                                   _imm32(imm, line=line)))


def assemble(text: str) -> list[Instruction]:
    """Assemble program text into instructions (see the module docstring for the syntax)."""
    return _Assembler().run(text)


def label_slots(text: str) -> dict[str, int]:
    """The slot each label of program text stands for (where a function starts, say)."""
    assembler = _Assembler()
    assembler.run(text)
    return dict(assembler.labels)
