"""Which registers hold a value that is still needed: backward liveness over the CFG.

A rewrite may only borrow a register as scratch where its value is dead, i.e. no path from
that point reads it before writing it. The facts per instruction follow the calling
convention of the kernel's BPF ABI: a call reads its arguments r1-r5 and clobbers r0-r5 (the
helper's result and its scratch registers), r6-r9 are callee-saved (a ``call local`` returns
with them intact, so their liveness passes straight through it), ``exit`` reads r0, and r10 is
the read-only frame pointer, never a candidate. A ``call local`` also reads whatever its callee
reads on entry (for verified programs only r1-r5), which is why the analysis is solved over
the whole program at once: callee entry facts feed their call sites.
"""

from __future__ import annotations

from collections.abc import Callable

from offload.isa import AluOp, AtomicOp, InsnClass, Instruction, JmpOp, Mode, Size, Source
from offload.isa.opcodes import ATOMIC_FETCH
from offload.isa.structure import Layout

ARGS = 0b0000111110  # r1-r5
CLOBBERED = 0b0000111111  # r0-r5
R0 = 0b1


def bit(reg: int) -> int:
    return 1 << reg


def uses_defs(insn: Instruction) -> tuple[int, int]:
    """Registers read and written by one instruction, as bit sets (bit n is rN).

    ``call local`` is returned with only its argument registers read; :func:`live_out` adds
    what the callee reads on entry.
    """
    cls = insn.cls
    d, s = bit(insn.dst), bit(insn.src)
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        op = insn.alu_op
        src = s if insn.source == Source.X and op not in (AluOp.END, AluOp.NEG) else 0
        if op == AluOp.MOV:
            return src, d
        return d | src, d
    if cls in (InsnClass.JMP, InsnClass.JMP32):
        jmp_op = insn.jmp_op
        if jmp_op == JmpOp.EXIT:
            return R0, 0
        if jmp_op == JmpOp.CALL:
            return ARGS | (d if insn.source == Source.X else 0), CLOBBERED
        if jmp_op == JmpOp.JA:
            return 0, 0
        return d | (s if insn.source == Source.X else 0), 0
    if insn.is_lddw:
        return 0, d
    if cls == InsnClass.LD:  # legacy packet access: ctx in r6, clobbers r0-r5 like a call
        return bit(6) | (s if insn.mode == Mode.IND else 0), CLOBBERED
    if cls == InsnClass.LDX:
        return s, d
    if cls == InsnClass.ST:
        return d, 0
    if insn.mode == Mode.ATOMIC:
        if insn.imm == AtomicOp.CMPXCHG:
            return d | s | R0, R0
        if insn.imm == AtomicOp.XCHG or insn.imm & ATOMIC_FETCH:
            return d | s, s
        return d | s, 0
    return d | s, 0


def uses_upper(insn: Instruction) -> int:
    """Registers whose upper 32 bits the instruction reads (bit set).

    32-bit operations, JMP32 compares and stores narrower than 8 bytes see only the low
    half; a rewrite may change the upper half of a register that only such reads follow
    (``upper_live_out``), e.g. zero-extend it in place for a 64-bit compare, which lets a
    verifier learn the compare's bounds on the register itself.
    """
    cls = insn.cls
    uses, _ = uses_defs(insn)
    if cls == InsnClass.ALU:
        wide_end = insn.alu_op == AluOp.END and insn.imm == 64
        return bit(insn.dst) if wide_end else 0
    if cls == InsnClass.ALU64:
        if insn.alu_op == AluOp.MOV and insn.off:  # movsx reads 8, 16 or 32 bits
            return 0
        if insn.alu_op == AluOp.END and insn.imm < 64:
            return 0
        return uses
    if cls == InsnClass.JMP32:
        return 0
    narrow = insn.size != Size.DW
    if cls == InsnClass.STX and narrow:
        extra = R0 if insn.mode == Mode.ATOMIC and insn.imm == AtomicOp.CMPXCHG else 0
        return uses & ~(bit(insn.src) | extra) | bit(insn.dst)
    return uses


def live_out(layout: Layout, uses_of: Callable[[Instruction], int] | None = None
             ) -> dict[int, int]:
    """For each instruction slot, the registers live right after it (bit sets).

    A worklist fixpoint of ``in = uses | (out & ~defs)``, ``out = union of successors' in``;
    a change at a subprogram's entry re-queues the calls to it. ``uses_of`` replaces the
    reads (:func:`uses_upper` gives the liveness of upper halves); writes always kill the
    whole register.
    """
    slots = [slot for slot, insn in enumerate(layout.slots) if insn is not None]
    preds: dict[int, list[int]] = {slot: [] for slot in slots}
    callers: dict[int, list[int]] = {}
    facts: dict[int, tuple[int, int]] = {}
    for slot in slots:
        insn = layout.slots[slot]
        assert insn is not None
        uses, defs = uses_defs(insn)
        facts[slot] = (uses if uses_of is None else uses_of(insn), defs)
        for nxt in layout.successors(slot):
            preds[nxt].append(slot)
        if insn.is_local_call:
            callers.setdefault(slot + 1 + insn.imm, []).append(slot)
    live_in = dict.fromkeys(slots, 0)
    out = dict.fromkeys(slots, 0)
    work = list(slots)  # popped from the end: the last instruction first
    queued = set(work)
    while work:
        slot = work.pop()
        queued.discard(slot)
        insn = layout.slots[slot]
        assert insn is not None
        after = 0
        for nxt in layout.successors(slot):
            after |= live_in[nxt]
        uses, defs = facts[slot]
        if insn.is_local_call:
            uses |= live_in[slot + 1 + insn.imm] & ~bit(10)
        out[slot] = after
        new_in = uses | (after & ~defs)
        if new_in != live_in[slot]:
            live_in[slot] = new_in
            for other in preds[slot] + callers.get(slot, []):
                if other not in queued:
                    queued.add(other)
                    work.append(other)
    return out
