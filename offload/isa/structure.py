"""A program's structure, computed once for every consumer: slots, functions, jumps, blocks.

The verifier, both engines and the lowering all need the same facts before they look at what
an instruction does: where each instruction starts (``lddw`` takes two slots), where functions
begin (slot 0, every ``call local`` target and every subprogram address ``lddw func`` loads),
which function each slot belongs to, where control goes next, where basic blocks start, and
that every jump and call lands on an instruction start inside the program and every jump
inside its own function. This is the kernel's ``check_subprogs``/``check_cfg`` pass and uses
its wording, so a refusal reads the same whoever asks.

What differs between consumers is passed in, not computed twice: the rules an instruction
must meet besides its fields (the verifier's device policy, or by default that r10 is never
written), whether a call may enter the main program, and whether loops no path can leave are
refused here (the engines and the lowering) or found on a path (the verifier, as the kernel
does). Reachability and the call graph are the verifier's rules; they are checked here too,
on request, because they are questions about structure alone.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import OffloadError
from .instruction import Instruction
from .opcodes import CLASS_MASK, LDDW, MODE_MASK, OP_MASK, CallSrc, InsnClass, JmpOp, Mode, PseudoSrc

_CALL = InsnClass.JMP | JmpOp.CALL
_EXIT = InsnClass.JMP | JmpOp.EXIT
_JA = InsnClass.JMP | JmpOp.JA
_GOTOL = InsnClass.JMP32 | JmpOp.JA
_JUMP_CLASSES = frozenset({InsnClass.JMP, InsnClass.JMP32})
_NOT_JUMPS = frozenset({JmpOp.CALL, JmpOp.EXIT})


class StructureError(OffloadError):
    """A program whose shape is invalid, reported at the instruction (slot) index."""

    def __init__(self, reason: str, *, insn_index: int) -> None:
        super().__init__(f"{reason} (insn {insn_index})")
        self.reason = reason
        self.insn_index = insn_index


#: A rule one instruction must meet besides its fields: raises ``StructureError``.
InsnRule = Callable[[int, Instruction], None]


def read_only_frame_pointer(slot: int, insn: Instruction) -> None:
    """r10 is never written: the rule for programs run without the verifier, which refuses
    the write on the path that makes it, with the state in its log."""
    if insn.dst == 10 and (insn.cls in (InsnClass.ALU, InsnClass.ALU64, InsnClass.LDX)
                           or insn.opcode == LDDW):
        raise StructureError("frame pointer is read only", insn_index=slot)


def _jump_target(insn: Instruction, slot: int) -> int | None:
    """Where a jump that stays in its function goes (None for any other instruction)."""
    opcode = insn.opcode
    if opcode & CLASS_MASK not in _JUMP_CLASSES or opcode & OP_MASK in _NOT_JUMPS:
        return None
    return slot + 1 + (insn.imm if opcode == _GOTOL else insn.off)


@dataclass(frozen=True, slots=True)
class Layout:
    """Where things are: ``slots[i]`` is the instruction starting at slot i (None inside
    ``lddw``); ``subprograms`` the first slot of each function, sorted, beginning with 0."""

    instructions: tuple[Instruction, ...]
    slots: tuple[Instruction | None, ...]
    subprograms: tuple[int, ...]
    #: per slot: the first slot of the function it belongs to
    function_of: tuple[int, ...] = ()
    #: per slot: the slots control may reach next within the function (calls return to the
    #: next slot; exit has none)
    next_slots: tuple[tuple[int, ...], ...] = ()
    #: ``call local`` slot -> the function it enters
    calls: tuple[tuple[int, int], ...] = ()
    #: ``lddw func`` slot -> the function whose address it loads
    func_refs: tuple[tuple[int, int], ...] = ()

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

    def successors(self, slot: int) -> tuple[int, ...]:
        """Where control goes after ``slot`` within its function."""
        return self.next_slots[slot]

    def block_leaders(self) -> list[int]:
        """Slots where a basic block starts: function entries, jump targets, and the
        instruction after any jump or exit."""
        leaders = set(self.subprograms)
        for slot, insn in enumerate(self.slots):
            if insn is None:
                continue
            target = _jump_target(insn, slot)
            if target is not None:
                leaders.add(target)
                leaders.add(slot + 1)
            elif insn.opcode == _EXIT:
                leaders.add(slot + 1)
        return sorted(s for s in leaders if s < self.size)


def build_layout(insns: Sequence[Instruction], *, max_insns: int = 1_000_000,
                 rule: InsnRule | None = read_only_frame_pointer, calls_to_main: bool = True,
                 loops: bool = True) -> Layout:
    """Check the program's structure and return its :class:`Layout`, or raise
    :class:`StructureError`, in the kernel's order: an empty or too large program; each
    instruction's fields, then ``rule``; every jump, call and subprogram address in slot order
    (``calls_to_main`` False refuses one to slot 0, as the kernel does); every function ends in
    ``exit`` or ``ja``; every jump stays in its function; with ``loops``, no loop that no path
    can leave."""
    if not insns:
        raise StructureError("the program is empty: there is no instruction to run",
                             insn_index=0)
    size = sum(2 if insn.opcode == LDDW else 1 for insn in insns)
    if size > max_insns:
        raise StructureError(f"BPF program is too large: {size} instructions, the device "
                             f"allows {max_insns}", insn_index=max_insns)
    slots: list[Instruction | None] = []
    for insn in insns:
        slot = len(slots)
        problem = insn.field_problem()
        if problem is not None:
            raise StructureError(problem, insn_index=slot)
        if rule is not None:
            rule(slot, insn)
        slots.append(insn)
        if insn.opcode == LDDW:
            slots.append(None)

    calls, funcs, targets = _check_targets(slots, calls_to_main)
    subprograms = tuple(sorted({0, *calls.values(), *funcs.values()}))
    function_of = _functions(size, subprograms)
    _check_boundaries(slots, subprograms, function_of, targets)
    next_slots = tuple(_next_slots(slots, slot, targets) for slot in range(size))
    layout = Layout(tuple(insns), tuple(slots), subprograms, function_of, next_slots,
                    tuple(calls.items()), tuple(funcs.items()))
    if loops:
        _check_inescapable_loops(layout)
    return layout


def _check_targets(slots: list[Instruction | None], calls_to_main: bool
                   ) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """Every jump, call and subprogram address lands on an instruction start; returns call
    slot -> target, ``lddw func`` slot -> target and jump slot -> target."""
    n = len(slots)
    calls: dict[int, int] = {}
    funcs: dict[int, int] = {}
    targets: dict[int, int] = {}
    for slot, insn in enumerate(slots):
        if insn is None:
            continue
        target = _jump_target(insn, slot)
        if target is not None:
            if not 0 <= target < n:
                raise StructureError(f"jump out of range from insn {slot} to {target}",
                                     insn_index=slot)
            if slots[target] is None:
                raise StructureError(f"jump into the middle of ldimm64 insn {target - 1}",
                                     insn_index=slot)
            targets[slot] = target
        elif insn.opcode == _CALL and insn.src == CallSrc.LOCAL:
            target = slot + 1 + insn.imm
            if not 0 <= target < n or slots[target] is None:
                raise StructureError(f"function call to invalid insn {target}: the target is "
                                     "not an instruction of the program", insn_index=slot)
            if target == 0 and not calls_to_main:
                raise StructureError(f"recursive call from insn {slot} to 0 (the main "
                                     "program)", insn_index=slot)
            calls[slot] = target
        elif insn.opcode == LDDW and insn.src == PseudoSrc.FUNC:
            target = slot + 1 + insn.imm
            if not 0 <= target < n or slots[target] is None:
                raise StructureError(f"function address of invalid insn {target}: the target "
                                     "is not an instruction of the program", insn_index=slot)
            if target == 0 and not calls_to_main:
                raise StructureError("the main program cannot be a callback", insn_index=slot)
            funcs[slot] = target
    return calls, funcs, targets


def _functions(size: int, subprograms: tuple[int, ...]) -> tuple[int, ...]:
    out: list[int] = []
    for index, start in enumerate(subprograms):
        end = subprograms[index + 1] if index + 1 < len(subprograms) else size
        out += [start] * (end - start)
    return tuple(out)


def _check_boundaries(slots: list[Instruction | None], subprograms: tuple[int, ...],
                      function_of: tuple[int, ...], targets: dict[int, int]) -> None:
    """Every function ends in ``exit`` or ``ja`` (one ending in ``lddw`` falls through), and
    no jump leaves its function."""
    for end in [s - 1 for s in subprograms[1:]] + [len(slots) - 1]:
        last = slots[end]
        if last is None:
            raise StructureError("last insn is not an exit or jmp", insn_index=end - 1)
        if last.opcode != _EXIT and last.opcode not in (_JA, _GOTOL):
            raise StructureError("last insn is not an exit or jmp", insn_index=end)
    for slot, target in targets.items():
        if function_of[target] != function_of[slot]:
            raise StructureError(f"jump out of range from insn {slot} to {target}: the target "
                                 "is in another function", insn_index=slot)


def _next_slots(slots: list[Instruction | None], slot: int,
                targets: dict[int, int]) -> tuple[int, ...]:
    insn = slots[slot]
    if insn is None or insn.opcode == _EXIT:
        return ()
    target = targets.get(slot)
    if target is None:
        return (slot + (2 if insn.opcode == LDDW else 1),)
    if insn.opcode in (_JA, _GOTOL):
        return (target,)
    return (slot + 1, target) if target != slot + 1 else (slot + 1,)


def check_reachable(layout: Layout) -> None:
    """Every instruction is reachable from slot 0 through jumps, calls and subprogram
    addresses (the kernel's ``unreachable insn``)."""
    entered = dict(layout.calls)
    entered.update(layout.func_refs)
    size = layout.size
    seen = [False] * size
    seen[0] = True
    work = [0]
    while work:
        slot = work.pop()
        nexts = list(layout.next_slots[slot])
        if slot in entered:
            nexts.append(entered[slot])
        for nxt in nexts:
            if nxt < size and not seen[nxt]:
                seen[nxt] = True
                work.append(nxt)
    for slot, insn in enumerate(layout.slots):
        if insn is not None and not seen[slot]:
            raise StructureError(f"unreachable insn {slot}", insn_index=slot)


def check_call_graph(layout: Layout, max_frames: int) -> None:
    """No function calls itself, directly or not, and no chain of calls needs more than
    ``max_frames`` frames; a subprogram's address counts as a call from the function that
    takes it (the kernel's stack-depth walk treats it so too)."""
    graph: dict[int, list[tuple[int, int]]] = {s: [] for s in layout.subprograms}
    for site, target in (*layout.calls, *layout.func_refs):
        graph[layout.function_of[site]].append((site, target))
    on_path: list[int] = []

    def visit(fn: int) -> None:
        on_path.append(fn)
        if len(on_path) > max_frames:
            raise StructureError(f"the call stack of {len(on_path)} frames is too deep "
                                 f"(the device allows {max_frames})", insn_index=fn)
        for site, target in graph[fn]:
            if target in on_path:
                raise StructureError(f"recursive call from insn {site} to {target}",
                                     insn_index=site)
            visit(target)
        on_path.pop()

    visit(0)


def _may_leave(insn: Instruction) -> bool:
    """Instructions through which execution can end: exit, and calls (a tail call or an
    unwinding helper does not return, and a subprogram may make one)."""
    return insn.is_exit or insn.is_call or (
        insn.opcode & CLASS_MASK == InsnClass.LD and insn.opcode & MODE_MASK in (Mode.ABS,
                                                                                Mode.IND))


def _check_inescapable_loops(layout: Layout) -> None:
    """Refuse a set of instructions that execution can enter but never leave.

    Such a set is a strongly connected component of the control-flow graph with no edge out
    and no instruction that can end execution; reaching it means running forever. (Loops
    that could exit are left to the verifier or to the instruction budget.)
    """
    successors = layout.next_slots
    if all(nxt > slot for slot, nexts in enumerate(successors) for nxt in nexts):
        return  # every edge goes forward: no cycle at all (most programs; cheap to see)
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    counter = 0
    nodes = [slot for slot, insn in enumerate(layout.slots) if insn is not None]
    for root in nodes:
        if root in index_of:
            continue
        work = [(root, iter(successors[root]))]
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
                    work.append((nxt, iter(successors[nxt])))
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
    successors = layout.next_slots
    if len(component) == 1:
        only = component[0]
        if only not in successors[only]:
            return  # not a loop
    for slot in component:
        insn = layout.slots[slot]
        if insn is None or _may_leave(insn):
            return
        if any(nxt not in members for nxt in successors[slot]):
            return
    first = min(component)
    raise StructureError(f"infinite loop detected at insn {first}", insn_index=first)
