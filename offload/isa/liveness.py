"""Register liveness: which registers may still be read before they are written, at each slot.

One analysis for every consumer: the lowering borrows a dead register as scratch, the verifier
compares only live registers when it prunes. Both ask the same question over the same
control flow (``structure.Layout``), under the kernel's BPF calling convention: a call reads
its arguments r1-r5 and clobbers r0-r5, r6-r9 are callee-saved (liveness passes straight
through a ``call local``), ``exit`` reads r0, and r10 is the read-only frame pointer. They
differ only in what they pass in: the reads of an instruction (the verifier knows a helper
reads only its prototype's arguments; the lowering asks about upper halves), and whether a
``call local`` also reads what its callee reads on entry (the lowering, which may see
unverified programs; the verifier's own callee reads are r1-r5, which the call reads anyway).

The verifier's stack liveness (``verifier/liveness.py``) is a different analysis: it follows
reads along explored paths, between checkpoints, not over the control-flow graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .instruction import Instruction
from .opcodes import (
    ATOMIC_FETCH,
    CLASS_MASK,
    LDDW,
    MODE_MASK,
    OP_MASK,
    SOURCE_MASK,
    AluOp,
    AtomicOp,
    InsnClass,
    JmpOp,
    Mode,
    Source,
)
from .structure import Layout

ARGS = 0b0000111110  # r1-r5
CLOBBERED = 0b0000111111  # r0-r5
R0 = 0b1

#: Reads and writes of one instruction at a slot, as bit sets.
UsesDefs = tuple[int, int]


def bit(reg: int) -> int:
    return 1 << reg


def uses_defs(insn: Instruction) -> UsesDefs:
    """Registers read and written by one instruction, as bit sets (bit n is rN).

    ``call local`` is returned with only its argument registers read; :func:`solve` adds
    what the callee reads on entry when asked to. Fields are read off the opcode directly:
    the verifier asks this of every slot of every program it loads.
    """
    opcode = insn.opcode
    cls = opcode & CLASS_MASK
    d, s = 1 << insn.dst, 1 << insn.src
    x = opcode & SOURCE_MASK == Source.X
    if cls == InsnClass.ALU or cls == InsnClass.ALU64:
        op = opcode & OP_MASK
        if op == AluOp.MOV:
            return (s if x else 0), d
        if op == AluOp.END or op == AluOp.NEG:
            return d, d
        return d | (s if x else 0), d
    if cls == InsnClass.JMP or cls == InsnClass.JMP32:
        op = opcode & OP_MASK
        if op == JmpOp.EXIT:
            return R0, 0
        if op == JmpOp.CALL:
            return ARGS | (d if x else 0), CLOBBERED
        if op == JmpOp.JA or op == JmpOp.JCOND:  # may_goto tests a hidden counter
            return 0, 0
        return d | (s if x else 0), 0
    if opcode == LDDW:
        return 0, d
    mode = opcode & MODE_MASK
    if cls == InsnClass.LD:  # legacy packet access: ctx in r6, clobbers r0-r5 like a call
        return bit(6) | (s if mode == Mode.IND else 0), CLOBBERED
    if cls == InsnClass.LDX:
        return s, d
    if cls == InsnClass.ST:
        return d, 0
    if mode == Mode.ATOMIC:
        imm = insn.imm
        if imm == AtomicOp.CMPXCHG:
            return d | s | R0, R0
        if imm & ATOMIC_FETCH:  # xchg included
            return d | s, s
        return d | s, 0
    return d | s, 0


def solve(layout: Layout, facts: Sequence[UsesDefs], *,
          through_calls: bool) -> tuple[list[int], list[int]]:
    """Registers live on entry to and right after each slot (bit sets; 0 inside ``lddw``),
    given each slot's reads and writes: the least fixpoint of ``in = uses | (out & ~defs)``,
    ``out`` the union of the successors' ``in``. With ``through_calls`` a ``call local`` also
    reads what its callee reads on entry (r10 aside), and a change at a function's entry
    re-queues the calls to it."""
    size = layout.size
    successors = layout.next_slots
    preds: list[list[int]] = [[] for _ in range(size)]
    callers: dict[int, list[int]] = {}
    callee: dict[int, int] = dict(layout.calls) if through_calls else {}
    for site, target in callee.items():
        callers.setdefault(target, []).append(site)
    slots = [slot for slot, insn in enumerate(layout.slots) if insn is not None]
    for slot in slots:
        for nxt in successors[slot]:
            preds[nxt].append(slot)
    live_in = [0] * size
    live_out = [0] * size
    work = list(slots)  # popped from the end: the last instruction first
    queued = [False] * size
    for slot in slots:
        queued[slot] = True
    not_fp = ~bit(10)
    while work:
        slot = work.pop()
        queued[slot] = False
        after = 0
        for nxt in successors[slot]:
            after |= live_in[nxt]
        uses, defs = facts[slot]
        entered = callee.get(slot)
        if entered is not None:
            uses |= live_in[entered] & not_fp
        live_out[slot] = after
        new_in = uses | (after & ~defs)
        if new_in != live_in[slot]:
            live_in[slot] = new_in
            for other in preds[slot] + callers.get(slot, []):
                if not queued[other]:
                    queued[other] = True
                    work.append(other)
    return live_in, live_out


def live_out(layout: Layout, uses_of: Callable[[Instruction], int] | None = None
             ) -> dict[int, int]:
    """For each instruction slot, the registers live right after it (bit sets), a ``call
    local`` reading what its callee reads. ``uses_of`` replaces the reads (the lowering's
    upper halves); writes always kill the whole register."""
    facts: list[UsesDefs] = []
    for insn in layout.slots:
        if insn is None:
            facts.append((0, 0))
            continue
        uses, defs = uses_defs(insn)
        facts.append((uses if uses_of is None else uses_of(insn), defs))
    _, out = solve(layout, facts, through_calls=True)
    return {slot: out[slot] for slot, insn in enumerate(layout.slots) if insn is not None}
