"""What a lowering did: :class:`LoweringReport`, and :class:`Lowering`, the whole result."""

from __future__ import annotations

from dataclasses import dataclass

from offload.isa import AtomicOp, InsnClass, Instruction, JmpOp, Mode
from offload.isa.instruction import ATOMIC_NAMES, JMP_NAMES, SIZE_NAMES
from offload.isa.opcodes import ATOMIC_FETCH, AluOp, Size


def kind_of(insn: Instruction) -> str:
    """The name a report counts a rewritten instruction under (its mnemonic family)."""
    cls = insn.cls
    if cls == InsnClass.JMP32:
        return "gotol" if insn.jmp_op == JmpOp.JA else JMP_NAMES[insn.jmp_op] + "32"
    if cls == InsnClass.JMP:
        return JMP_NAMES[insn.jmp_op]
    width = "64" if cls == InsnClass.ALU64 else "32"
    if cls.is_alu:
        op = insn.alu_op
        if op == AluOp.END:
            return f"bswap{insn.imm}"
        if op == AluOp.MOV:
            return f"movsx{insn.off}{width}"
        return ("sdiv" if op == AluOp.DIV else "smod") + width
    if cls == InsnClass.LDX and insn.mode == Mode.MEMSX:
        return "ldxs" + SIZE_NAMES[insn.size]
    base = insn.imm if insn.imm in (AtomicOp.XCHG, AtomicOp.CMPXCHG) else insn.imm & ~ATOMIC_FETCH
    fetch = "fetch " if insn.imm & ATOMIC_FETCH and base == insn.imm & ~ATOMIC_FETCH else ""
    return f"lock {fetch}{ATOMIC_NAMES[AtomicOp(base)]}{'32' if insn.size == Size.W else ''}"


@dataclass(frozen=True, slots=True)
class LoweringReport:
    """Counts per rewritten kind, sizes in slots, and what the stack had to give.

    ``spills`` counts rewrites that found no dead register and borrowed a live one through
    the stack; ``stack_growth`` is the most bytes any function's frame grew by for that.
    """

    source_version: int
    target_version: int
    original_slots: int
    lowered_slots: int
    rewritten: tuple[tuple[str, int], ...] = ()
    spills: int = 0
    stack_growth: int = 0

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.rewritten)

    @property
    def total_rewritten(self) -> int:
        return sum(count for _, count in self.rewritten)

    @property
    def growth(self) -> int:
        """Slots added by the rewrites."""
        return self.lowered_slots - self.original_slots

    @property
    def changed(self) -> bool:
        return bool(self.rewritten)

    def __str__(self) -> str:
        if not self.rewritten:
            return (f"ISA v{self.source_version} program already runs on ISA "
                    f"v{self.target_version}: nothing rewritten")
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.rewritten)
        text = (f"lowered ISA v{self.source_version} to v{self.target_version}: rewrote {kinds}; "
                f"{self.original_slots} -> {self.lowered_slots} insns (+{self.growth})")
        if self.spills:
            text += f"; {self.spills} spill(s), stack +{self.stack_growth} bytes"
        return text


@dataclass(frozen=True, slots=True)
class Lowering:
    """The lowered instructions, the report, and where each original slot went.

    ``slot_map[i]`` is the new slot of original slot ``i`` (the start of its expansion);
    ``slot_map[-1]`` is the new program size.
    """

    instructions: tuple[Instruction, ...]
    report: LoweringReport
    slot_map: tuple[int, ...]
