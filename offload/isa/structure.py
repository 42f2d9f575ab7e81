"""Static structure of a program: slots, subprograms, jump targets, and the checks on them.

Every consumer of bytecode (interpreter, verifier, compiler) needs the same facts before it
runs anything: where each instruction starts (``lddw`` takes two slots), where subprograms
begin (slot 0 and every ``call local`` target), and that every jump lands on an instruction
inside its own subprogram. This mirrors the kernel's ``check_subprogs``/``check_cfg`` entry
checks and uses their wording, so a refusal reads like the kernel's.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import OffloadError
from .instruction import Instruction
from .opcodes import LDDW, InsnClass, Mode, PseudoSrc


class StructureError(OffloadError):
    """A program whose shape is invalid, reported at the instruction (slot) index."""

    def __init__(self, reason: str, *, insn_index: int) -> None:
        super().__init__(f"{reason} (insn {insn_index})")
        self.reason = reason
        self.insn_index = insn_index


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things are: ``slots[i]`` is the instruction starting at slot i (None inside lddw)."""

    instructions: tuple[Instruction, ...]
    slots: tuple[Instruction | None, ...]
    subprograms: tuple[int, ...]  # start slots, sorted, always beginning with 0

    @property
    def size(self) -> int:
        return len(self.slots)

    def subprogram_of(self, slot: int) -> int:
        """Index into ``subprograms`` of the subprogram that contains ``slot``."""
        return bisect.bisect_right(self.subprograms, slot) - 1

    def subprogram_bounds(self, index: int) -> tuple[int, int]:
        """[start, end) slots of subprogram ``index``."""
        start = self.subprograms[index]
        end = self.subprograms[index + 1] if index + 1 < len(self.subprograms) else self.size
        return start, end


def _writes_dst(insn: Instruction) -> bool:
    cls = insn.cls
    if cls in (InsnClass.ALU, InsnClass.ALU64, InsnClass.LDX):
        return True
    return insn.opcode == LDDW


def _targets(insn: Instruction, slot: int) -> tuple[int, ...]:
    """Intra-function successors of a control-flow instruction (besides fall-through)."""
    if insn.is_jump:
        return (slot + 1 + insn.jump_offset,)
    return ()


def build_layout(insns: Sequence[Instruction], *, max_insns: int = 1_000_000) -> Layout:
    """Check the program's structure and return its :class:`Layout`.

    Raises :class:`StructureError` for: an empty or too large program, invalid fields
    (reserved bits, registers above r10, writes to r10), jumps out of range or into the
    middle of ``lddw``, calls to invalid destinations, subprograms whose last instruction is
    neither exit nor an unconditional jump, and loops that no path can leave.
    """
    if not insns:
        raise StructureError("program is empty: it has no instructions", insn_index=0)
    slots: list[Instruction | None] = []
    for insn in insns:
        index = len(slots)
        problem = insn.field_problem()
        if problem is not None:
            raise StructureError(problem, insn_index=index)
        if insn.dst == 10 and _writes_dst(insn):
            raise StructureError("frame pointer is read only", insn_index=index)
        slots.append(insn)
        if insn.width == 2:
            slots.append(None)
    if len(slots) > max_insns:
        raise StructureError(
            f"BPF program is too large: {len(slots)} insns, the limit is {max_insns}",
            insn_index=max_insns)

    size = len(slots)
    starts = {0}
    for slot, entry in enumerate(slots):
        if entry is None:
            continue
        if entry.is_local_call or (entry.opcode == LDDW and entry.src == PseudoSrc.FUNC):
            target = slot + 1 + entry.imm
            if not 0 <= target < size or slots[target] is None:
                raise StructureError(f"call to invalid destination {target}", insn_index=slot)
            starts.add(target)
    subprograms = tuple(sorted(starts))
    layout = Layout(tuple(insns), tuple(slots), subprograms)

    for number in range(len(subprograms)):
        start, end = layout.subprogram_bounds(number)
        last = end - 1
        while slots[last] is None:
            last -= 1
        tail = slots[last]
        assert tail is not None
        if not (tail.is_exit or tail.is_unconditional_jump):
            raise StructureError("last insn is not an exit or jmp", insn_index=last)
        for slot in range(start, end):
            entry = slots[slot]
            if entry is None:
                continue
            for target in _targets(entry, slot):
                if not start <= target < end:
                    raise StructureError(f"jump out of range from insn {slot} to {target}",
                                         insn_index=slot)
                if slots[target] is None:
                    raise StructureError(
                        f"jump into the middle of ldimm64 insn {target - 1}", insn_index=slot)
    _check_inescapable_loops(layout)
    return layout


def _successors(layout: Layout, slot: int) -> list[int]:
    insn = layout.slots[slot]
    assert insn is not None
    if insn.is_exit:
        return []
    nxt = slot + insn.width
    if insn.is_unconditional_jump:
        return [slot + 1 + insn.jump_offset]
    if insn.is_jump:
        return [nxt, slot + 1 + insn.jump_offset]
    return [nxt]


def _may_leave(insn: Instruction) -> bool:
    """Instructions through which execution can end: exit, and calls (a tail call or an
    unwinding helper does not return, and a subprogram may make one)."""
    return insn.is_exit or insn.is_call or (
        insn.cls == InsnClass.LD and insn.mode in (Mode.ABS, Mode.IND))


def _check_inescapable_loops(layout: Layout) -> None:
    """Refuse a set of instructions that execution can enter but never leave.

    Such a set is a strongly connected component of the control-flow graph with no edge out
    and no instruction that can end execution; reaching it means running forever. (Loops
    that could exit are left to the verifier or to the instruction budget.)
    """
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    counter = 0
    nodes = [slot for slot, insn in enumerate(layout.slots) if insn is not None]
    for root in nodes:
        if root in index_of:
            continue
        work = [(root, iter(_successors(layout, root)))]
        index_of[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, succ = work[-1]
            advanced = False
            for nxt in succ:
                if nxt not in index_of:
                    index_of[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(_successors(layout, nxt))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index_of[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                _check_component(layout, component)


def _check_component(layout: Layout, component: list[int]) -> None:
    members = set(component)
    if len(component) == 1:
        only = component[0]
        if only not in _successors(layout, only):
            return  # not a loop
    for slot in component:
        insn = layout.slots[slot]
        assert insn is not None
        if _may_leave(insn):
            return
        if any(nxt not in members for nxt in _successors(layout, slot)):
            return
    first = min(component)
    raise StructureError(f"infinite loop detected at insn {first}", insn_index=first)

