"""What an engine may rely on because the verifier proved it, and what each fact was proven for.

The verifier hands the fast engine one fact per instruction slot. A fact names the instruction
it was proven about (a load of 4 bytes through R3 at offset 8, a 64-bit ``add`` of R2 to R1),
so an engine uses it only for that very instruction and refuses a fact that does not match
(:meth:`AccessFact.applies_to`). Memory facts say which memory the pointer may reach on every
explored path: region kinds, and which map values (by the device's map handle), which stack
frames (counted back from the running function's: 0 is its own frame, 1 its caller's), so an
engine can check an address lands there even where it does not check bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..isa.instruction import Instruction
from ..isa.opcodes import AluOp, InsnClass, Mode, Source
from .memory import RegionKind


class Access(Enum):
    """What an access fact was proven for: a load, a store or an atomic; an engine matches it
    against the instruction's class before it relies on the fact."""

    LOAD = "load"
    STORE = "store"
    ATOMIC = "atomic"


@dataclass(frozen=True, slots=True)
class Reach:
    """The memory a pointer may point into on every explored path.

    ``maps``: handles of the maps whose values it may reach; ``inner_of``: handles of maps of
    maps whose inner maps' values it may reach (which inner map is only known at run time);
    ``frames``: stack frames, 0 for the running function's own.
    """

    kinds: frozenset[RegionKind] = frozenset()
    maps: frozenset[int] = frozenset()
    inner_of: frozenset[int] = frozenset()
    frames: frozenset[int] = frozenset()

    @property
    def single(self) -> bool:
        """One kind of memory (and for the stack, one frame): an engine can index it alone."""
        if len(self.kinds) != 1:
            return False
        (kind,) = self.kinds
        return kind != RegionKind.STACK or len(self.frames) == 1

    def describe(self) -> str:
        """``its own stack frame, map value (3, 4)``: for fault messages."""
        parts = []
        for kind in sorted(self.kinds, key=lambda k: k.value):
            if kind == RegionKind.STACK:
                parts += ["its own stack frame" if n == 0 else f"the stack frame {n} call(s) up"
                          for n in sorted(self.frames)]
            elif kind == RegionKind.MAP_VALUE:
                names = [str(h) for h in sorted(self.maps)]
                names += [f"inner maps of {h}" for h in sorted(self.inner_of)]
                parts.append(f"map value ({', '.join(names)})")
            else:
                parts.append(kind.value)
        return ", ".join(parts) or "no memory"


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessFact(Reach):
    """The memory one load, store or atomic reaches, and the instruction it was proven for.

    ``proven``: the verifier proved the access in bounds of that memory on every path, so an
    engine may skip the bounds check where it reaches one region (``single``); otherwise it
    checks bounds and that the region is in the reach.
    """

    op: Access
    reg: int  # the pointer register
    off: int
    size: int
    proven: bool = True

    def applies_to(self, insn: Instruction) -> bool:
        if insn.cls == InsnClass.LDX:
            op, reg = Access.LOAD, insn.src
        elif insn.cls == InsnClass.ST or insn.cls == InsnClass.STX and insn.mode == Mode.MEM:
            op, reg = Access.STORE, insn.dst
        elif insn.cls == InsnClass.STX and insn.mode == Mode.ATOMIC:
            op, reg = Access.ATOMIC, insn.dst
        else:
            return False
        return (op, reg, insn.off, insn.size.nbytes) == (self.op, self.reg, self.off, self.size)

    def __str__(self) -> str:
        return f"{self.op.value} of {self.size} byte(s) at R{self.reg}{self.off:+d}"


@dataclass(frozen=True, slots=True)
class NoWrapFact:
    """A 64-bit add, sub, mul or lsh whose result stays within 0..2^64-1 on every path, so an
    engine may skip the reduction modulo 2^64: proven for exactly this operation, destination
    and operand (``src`` register, or ``imm``)."""

    op: AluOp
    dst: int
    src: int | None = None
    imm: int | None = None

    def applies_to(self, insn: Instruction) -> bool:
        if insn.cls != InsnClass.ALU64 or insn.off != 0 or insn.alu_op != self.op or \
                insn.dst != self.dst:
            return False
        if insn.source == Source.X:
            return self.src == insn.src and self.imm is None
        return self.src is None and self.imm == insn.imm

    def __str__(self) -> str:
        operand = f"R{self.src}" if self.src is not None else str(self.imm)
        return f"64-bit {self.op.name.lower()} R{self.dst}, {operand}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ArgFact(Reach):
    """A helper's memory argument (``regno``) and the memory it may point into; ``nullable``
    when the prototype allows NULL there (``csum_diff``)."""

    regno: int
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class CallFact:
    """What the verifier proved about the pointer arguments of one helper call: the memory
    each may reach, the maps (by handle) a map pointer argument may be, and the memory the
    arguments a helper may print or read as strings (``trace_printk``'s ``%s``) may reach
    when they are pointers."""

    helper: int
    memory: tuple[ArgFact, ...] = ()
    map_args: tuple[tuple[int, frozenset[int]], ...] = ()  # (regno, handles)
    printed: tuple[ArgFact, ...] = ()

    def applies_to(self, insn: Instruction) -> bool:
        return insn.is_helper_call and insn.imm == self.helper

    def __str__(self) -> str:
        return f"call of helper #{self.helper}"


Fact = AccessFact | NoWrapFact | CallFact
