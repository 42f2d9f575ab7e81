"""Static checks before abstract interpretation: instruction fields, ISA level, jump targets,
subprogram boundaries, reachability, recursion and call depth; plus register liveness.

This is the kernel's ``check_subprogs``/``check_cfg`` pass: every jump lands on an instruction
start inside its own function, every function ends in ``exit`` or ``ja``, every instruction is
reachable, and the call graph has no cycle. Indices are slots (``lddw`` takes two).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..caps.capabilities import Capabilities
from ..isa.instruction import Instruction
from ..isa.opcodes import (
    ATOMIC_FETCH,
    AluOp,
    AtomicOp,
    CallSrc,
    InsnClass,
    Mode,
    PseudoSrc,
    Source,
)
from ..isa.versions import required_version
from .errors import Reject
from .ops import Op, decode_all

ALL_ARGS = frozenset(range(1, 6))
CALLER_SAVED = frozenset(range(0, 6))


@dataclass(frozen=True, slots=True)
class Program:
    """The program laid out by slot, split into functions, with liveness at each slot."""

    slots: tuple[Instruction | None, ...]  # None marks the second slot of lddw
    subprogs: tuple[int, ...]  # first slot of each function, ascending; 0 is the main one
    subprog_of: tuple[int, ...]  # per slot: first slot of its function
    prune_points: frozenset[int]
    live: tuple[frozenset[int], ...]  # registers live on entry to each slot
    ops: tuple[Op | None, ...]  # ``slots`` decoded once, for the checks

    def __len__(self) -> int:
        return len(self.slots)


def _fail(slot: int, reason: str) -> Reject:
    return Reject(reason, slot)


def layout(insns: Sequence[Instruction], caps: Capabilities) -> Program:
    """Check the static rules and lay the program out by slot, or raise ``Reject``."""
    if not insns:
        raise _fail(0, "the program is empty: there is no instruction to run")
    slots: list[Instruction | None] = []
    for insn in insns:
        slots.append(insn)
        if insn.width == 2:
            slots.append(None)
    n = len(slots)
    limit = caps.limits.max_insns
    if n > limit:
        raise _fail(limit, f"BPF program is too large: {n} instructions, the device allows "
                           f"{limit}")
    for slot, insn in enumerate(slots):
        if insn is not None:
            _check_fields(slot, insn, caps)
    calls = _check_targets(slots)
    subprogs = tuple(sorted({0} | set(calls.values())))
    subprog_of = _assign_functions(slots, subprogs)
    _check_boundaries(slots, subprogs, subprog_of)
    _check_reachable(slots, subprog_of)
    _check_call_graph(slots, subprogs, subprog_of, calls, caps.limits.max_call_frames)
    prune = set()
    for slot, insn in enumerate(slots):
        if insn is None:
            continue
        if insn.is_jump:
            prune.add(slot + 1 + insn.jump_offset)
            if not insn.is_unconditional_jump:
                prune.add(slot + 1)
        elif insn.is_call:
            prune.add(slot + 1)
    prune.discard(n)
    return Program(tuple(slots), subprogs, tuple(subprog_of), frozenset(prune),
                   _liveness(slots), decode_all(tuple(slots)))


def _check_fields(slot: int, insn: Instruction, caps: Capabilities) -> None:
    problem = insn.field_problem()
    if problem is not None:
        raise _fail(slot, problem)
    need = required_version(insn)
    if need > caps.isa_version:
        raise _fail(slot, f"invalid insn '{insn}': it needs ISA v{need} and the device "
                          f"supports v{caps.isa_version}")
    if insn.cls == InsnClass.LD and insn.mode in (Mode.ABS, Mode.IND):
        raise _fail(slot, "BPF_LD_[ABS|IND] instructions not allowed for this program type")
    if insn.is_call:
        if not insn.is_helper_call and not insn.is_local_call:
            kind = "kernel function calls" if insn.src == CallSrc.KFUNC else "indirect calls"
            raise _fail(slot, f"{kind} are not supported by the device")
    if insn.is_lddw and insn.src in (PseudoSrc.BTF_ID, PseudoSrc.FUNC):
        raise _fail(slot, f"unsupported bpf_ld_imm64 source {PseudoSrc(insn.src).name}: "
                          "the device has no kernel symbols or callbacks")


def _check_targets(slots: list[Instruction | None]) -> dict[int, int]:
    """Every jump and call lands on an instruction start; returns call slot -> target."""
    n = len(slots)
    calls = {}
    for slot, insn in enumerate(slots):
        if insn is None:
            continue
        if insn.is_jump:
            target = slot + 1 + insn.jump_offset
            if not 0 <= target < n:
                raise _fail(slot, f"jump out of range from insn {slot} to {target}")
            if slots[target] is None:
                raise _fail(slot, f"jump into the middle of ldimm64 insn {target - 1}")
        elif insn.is_local_call:
            target = slot + 1 + insn.imm
            if not 0 <= target < n or slots[target] is None:
                raise _fail(slot, f"function call to invalid insn {target}: "
                                  "the target is not an instruction of the program")
            if target == 0:
                raise _fail(slot, f"recursive call from insn {slot} to 0 (the main program)")
            calls[slot] = target
    return calls


def _assign_functions(slots: list[Instruction | None], subprogs: tuple[int, ...]) -> list[int]:
    out = []
    k = 0
    for slot in range(len(slots)):
        if k + 1 < len(subprogs) and slot == subprogs[k + 1]:
            k += 1
        out.append(subprogs[k])
    return out


def _check_boundaries(slots: list[Instruction | None], subprogs: tuple[int, ...],
                      subprog_of: list[int]) -> None:
    ends = [s - 1 for s in subprogs[1:]] + [len(slots) - 1]
    for end in ends:
        last = slots[end]
        if last is None:  # a function ending in lddw falls through
            raise _fail(end - 1, "last insn is not an exit or jmp")
        if not (last.is_exit or last.is_unconditional_jump):
            raise _fail(end, "last insn is not an exit or jmp")
    for slot, insn in enumerate(slots):
        if insn is not None and insn.is_jump:
            target = slot + 1 + insn.jump_offset
            if subprog_of[target] != subprog_of[slot]:
                raise _fail(slot, f"jump out of range from insn {slot} to {target}: the "
                                  "target is in another function")


def successors(slots: Sequence[Instruction | None], slot: int) -> tuple[int, ...]:
    """Where control goes next within the function (calls return to the next slot)."""
    insn = slots[slot]
    assert insn is not None
    if insn.is_exit:
        return ()
    nxt = slot + insn.width
    if insn.is_jump:
        target = slot + 1 + insn.jump_offset
        if insn.is_unconditional_jump:
            return (target,)
        return (nxt, target) if target != nxt else (nxt,)
    return (nxt,)


def _check_reachable(slots: list[Instruction | None], subprog_of: list[int]) -> None:
    seen = [False] * len(slots)
    work = [0]
    seen[0] = True
    while work:
        slot = work.pop()
        insn = slots[slot]
        assert insn is not None
        nexts = list(successors(slots, slot))
        if insn.is_local_call:
            nexts.append(slot + 1 + insn.imm)
        for nxt in nexts:
            if nxt < len(slots) and not seen[nxt]:
                seen[nxt] = True
                work.append(nxt)
    for slot, insn in enumerate(slots):
        if insn is not None and not seen[slot]:
            raise _fail(slot, f"unreachable insn {slot}")


def _check_call_graph(slots: list[Instruction | None], subprogs: tuple[int, ...],
                      subprog_of: list[int], calls: dict[int, int], max_frames: int) -> None:
    graph: dict[int, list[tuple[int, int]]] = {s: [] for s in subprogs}
    for site, target in calls.items():
        graph[subprog_of[site]].append((site, target))
    on_path: list[int] = []

    def visit(fn: int) -> None:
        on_path.append(fn)
        if len(on_path) > max_frames:
            raise _fail(fn, f"the call stack of {len(on_path)} frames is too deep "
                            f"(the device allows {max_frames})")
        for site, target in graph[fn]:
            if target in on_path:
                raise _fail(site, f"recursive call from insn {site} to {target}")
            visit(target)
        on_path.pop()

    visit(0)


def _uses_defs(insn: Instruction) -> tuple[frozenset[int], frozenset[int]]:
    """Registers an instruction reads and writes (for liveness)."""
    cls = insn.cls
    if insn.is_exit:
        return frozenset({0}), frozenset()
    if insn.is_call:
        return ALL_ARGS, CALLER_SAVED
    if insn.is_lddw:
        return frozenset(), frozenset({insn.dst})
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        op = insn.alu_op
        if op == AluOp.MOV:
            uses = {insn.src} if insn.source == Source.X else set()
        elif op in (AluOp.NEG, AluOp.END):
            uses = {insn.dst}
        else:
            uses = {insn.dst} | ({insn.src} if insn.source == Source.X else set())
        return frozenset(uses), frozenset({insn.dst})
    if cls in (InsnClass.JMP, InsnClass.JMP32):
        if insn.is_unconditional_jump:
            return frozenset(), frozenset()
        uses = {insn.dst} | ({insn.src} if insn.source == Source.X else set())
        return frozenset(uses), frozenset()
    if cls == InsnClass.LDX:
        return frozenset({insn.src}), frozenset({insn.dst})
    if cls == InsnClass.ST:
        return frozenset({insn.dst}), frozenset()
    if cls == InsnClass.STX:
        if insn.mode == Mode.ATOMIC:
            uses = {insn.dst, insn.src}
            defs: set[int] = set()
            if insn.imm == AtomicOp.CMPXCHG:
                uses.add(0)
                defs.add(0)
            elif insn.imm & ATOMIC_FETCH:
                defs.add(insn.src)
            return frozenset(uses), frozenset(defs)
        return frozenset({insn.dst, insn.src}), frozenset()
    return frozenset(), frozenset()


def _liveness(slots: list[Instruction | None]) -> tuple[frozenset[int], ...]:
    n = len(slots)
    info = [(_uses_defs(insn) if insn is not None else (frozenset(), frozenset()))
            for insn in slots]
    succ = [(successors(slots, s) if slots[s] is not None else ()) for s in range(n)]
    live: list[frozenset[int]] = [frozenset()] * n
    changed = True
    while changed:
        changed = False
        for s in range(n - 1, -1, -1):
            if slots[s] is None:
                continue
            out: frozenset[int] = frozenset()
            for t in succ[s]:
                if t < n:
                    out |= live[t]
            uses, defs = info[s]
            new = uses | (out - defs)
            if new != live[s]:
                live[s] = new
                changed = True
    return tuple(live)
