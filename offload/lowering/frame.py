"""How deep each function's stack frame is used, when that can be known statically.

A rewrite that finds no dead register spills one to the stack, so it needs a slot no
instruction of the program touches: below the deepest byte the function ever addresses
through its frame pointer. That depth is known only when every frame access is r10 plus a
constant. The analysis follows copies of r10 (``mov rX, r10``, ``add rX, K``) forward through
the CFG as sets of constant offsets, records the lowest byte reached by loads, stores and
atomics through them, and gives up - the frame is then *not static* - when a frame pointer
escapes where its uses cannot be followed: stored to memory, passed to a subprogram (which
could address below it), or combined with anything but a constant. Passing one to a helper is
fine - helpers access memory upward from the pointer they are given - unless the program has
callbacks (``lddw`` of a function), which a helper may hand the pointer to.
"""

from __future__ import annotations

from dataclasses import dataclass

from offload.isa import AluOp, AtomicOp, InsnClass, JmpOp, Mode, PseudoSrc, Source
from offload.isa.opcodes import ATOMIC_FETCH
from offload.isa.structure import Layout

#: More distinct offsets than this for one register (a pointer advanced in a loop) is not static.
MAX_OFFSETS = 16

Offsets = frozenset[int] | None  # None: not a frame pointer
State = tuple[Offsets, ...]


@dataclass(frozen=True, slots=True)
class FrameUse:
    """The frame use of one function: ``depth`` bytes below r10, or why it is not static."""

    start: int
    depth: int
    not_static: str | None = None


class _NotStatic(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def frame_use(layout: Layout, subprogram: int) -> FrameUse:
    """Analyse the function with index ``subprogram`` (0 is the main program)."""
    start, end = layout.subprogram_bounds(subprogram)
    callbacks = any(insn is not None and insn.pseudo == PseudoSrc.FUNC for insn in layout.slots)
    try:
        depth = _deepest(layout, start, end, callbacks)
    except _NotStatic as problem:
        return FrameUse(start, 0, problem.reason)
    return FrameUse(start, depth)


def _join(a: State, b: State, slot: int) -> State:
    merged: list[Offsets] = []
    for x, y in zip(a, b):
        if x is None and y is None:
            merged.append(None)
            continue
        # A frame pointer on some paths only still reaches only these offsets of the frame.
        union = (x or frozenset()) | (y or frozenset())
        if len(union) > MAX_OFFSETS:
            raise _NotStatic(f"R{len(merged)} moves through the stack frame in a loop at "
                             f"insn {slot}")
        merged.append(union)
    return tuple(merged)


def _deepest(layout: Layout, start: int, end: int, callbacks: bool) -> int:
    entry: State = (None,) * 10 + (frozenset({0}),)
    states: dict[int, State] = {start: entry}
    work = [start]
    depth = 0
    while work:
        slot = work.pop()
        state, reached = _transfer(layout, slot, states[slot], callbacks)
        for access in reached:
            depth = max(depth, -access)
        for nxt in layout.successors(slot):
            if not start <= nxt < end:
                continue
            old = states.get(nxt)
            new = state if old is None else _join(old, state, nxt)
            if new != old:
                states[nxt] = new
                work.append(nxt)
    return depth


def _transfer(layout: Layout, slot: int, state: State,
              callbacks: bool) -> tuple[State, list[int]]:
    """The state after the instruction at ``slot`` and the frame offsets it accesses."""
    insn = layout.slots[slot]
    assert insn is not None
    regs = list(state)
    cls = insn.cls
    d, s = insn.dst, insn.src
    reached: list[int] = []

    def access(base: int) -> None:
        offsets = regs[base]
        if offsets is not None:
            reached.extend(offset + insn.off for offset in offsets)

    def escape(reg: int, how: str) -> None:
        if regs[reg] is not None:
            raise _NotStatic(f"a pointer to the stack frame (R{reg}) {how} at insn {slot}")

    if cls in (InsnClass.ALU, InsnClass.ALU64):
        op = insn.alu_op
        reg_src = insn.source == Source.X and op not in (AluOp.END, AluOp.NEG)
        wide = cls == InsnClass.ALU64
        if op == AluOp.MOV and wide and reg_src and not insn.off:
            regs[d] = regs[s]
        elif op in (AluOp.ADD, AluOp.SUB) and wide and not reg_src and \
                (moved := regs[d]) is not None:
            delta = insn.imm if op == AluOp.ADD else -insn.imm
            regs[d] = frozenset(offset + delta for offset in moved)
        else:
            if reg_src:
                escape(s, "is used in arithmetic other than adding a constant")
            if op != AluOp.MOV:
                escape(d, "is used in arithmetic other than adding a constant")
            regs[d] = None
    elif cls in (InsnClass.JMP, InsnClass.JMP32):
        if insn.jmp_op == JmpOp.CALL:
            if insn.is_local_call or callbacks:
                for arg in range(1, 6):
                    escape(arg, "is passed to a subprogram" if insn.is_local_call
                           else "is passed to a helper in a program with callbacks")
            for arg in range(1, 6):  # a helper reaches memory from the pointer upward
                reached.extend(regs[arg] or ())
            for reg in range(6):
                regs[reg] = None
    elif insn.is_lddw:
        regs[d] = None
    elif cls == InsnClass.LD:
        for reg in range(6):
            regs[reg] = None
    elif cls == InsnClass.LDX:
        access(s)
        regs[d] = None
    elif cls == InsnClass.ST:
        access(d)
    else:
        access(d)
        escape(s, "is stored to memory")
        if insn.mode == Mode.ATOMIC:
            if insn.imm == AtomicOp.CMPXCHG:
                regs[0] = None
            elif insn.imm & ATOMIC_FETCH:  # the fetch forms and xchg write src
                regs[s] = None
    return tuple(regs), reached
