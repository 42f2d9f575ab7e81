"""Precision tracking: which scalars the safety of a path depends on.

Pruning compares a new state with one already proven safe. Comparing every scalar's range
makes states that differ only in numbers nothing checks (a protocol field, a counter that only
feeds a checksum) look different, and a parser that walks headers in a loop then explores
each combination separately: the paths multiply and verification never ends. The kernel's
answer (``mark_chain_precision``, kernel/bpf/verifier.c) is followed here:

* scalars start *imprecise*: an imprecise scalar in a checkpoint covers any scalar;
* a check whose verdict depends on a scalar's value *demands* it: an offset added to a pointer,
  a helper's size argument, a conditional jump only one side of which can happen, the value at
  ``exit``, arithmetic an engine may compute without wrapping;
* a demand is walked back along the path that made it, instruction by instruction, turning
  "this register" into the registers and spilled stack slots it was computed from, and every
  checkpoint on the way records them as precise. A checkpoint that records nothing new stops
  the walk (its ancestors got the same marks when it did);
* a state pruned by a checkpoint inherits that checkpoint's precise marks as demands, because
  its own ancestors now rely on the same values.

The packet length a state has proven (``State.pkt_len``, which the kernel does not have) is
tracked the same way: a checkpoint compares only as much of its proven length as an access
after it relied on (``Checkpoint.pkt_need``).

The walk needs the path's instructions; between jumps they are consecutive, so the path keeps
a persistent list of ``Step`` records: the jumps, calls and returns that were not a fall
through, the stack slots a load read a spilled register from or a store spilled one into, and
the registers a conditional jump narrowed together (scalars linked by a copy).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..isa.opcodes import ATOMIC_FETCH, AluOp, AtomicOp
from . import ops
from .program import live_regs
from .state import SCALAR, Kept, State, Step

if TYPE_CHECKING:
    from .program import Program

#: A location is ``depth * STRIDE + index``: registers 0-10, then stack slot k at ``SLOTS + k``
STRIDE = 1 << 12
SLOTS = 16

#: Instructions one walk goes back before it marks everything instead
MAX_WALK = 1024

#: A checkpoint's ``pkt_need`` when every byte it proved counts
ALL = 1 << 62

# Step kinds.
JUMP, CALL, RETURN, FILL, SPILL, LINK, CALLBACK_RETURN = range(7)


def reg_loc(depth: int, regno: int) -> int:
    return depth * STRIDE + regno


def slot_loc(depth: int, k: int) -> int:
    return depth * STRIDE + SLOTS + k


_NO_LOCS: tuple[int, ...] = ()
_MOV, _END = AluOp.MOV, AluOp.END  # (enum members looked up once: see state.py)
_TRANSFERS = frozenset({JUMP, CALL, RETURN, CALLBACK_RETURN})
_ARGS = range(1, 6)
#: A callee's argument register -> the caller's register it came from (0: from nothing).
_CALL_ARGS = {r: r for r in _ARGS}
_CALLBACK_ARGS = {1: 0, 2: 3}


def record(state: State, kind: int, slot: int, dst: int = -1,
           locs: tuple[int, ...] = _NO_LOCS) -> None:
    state.hist = Step(kind, slot, dst, locs, state.hist)


class Precision:
    """The precision marks of one verification: demands walk back and mark checkpoints."""

    __slots__ = ("prog", "walks", "steps")

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.walks = 0  # demands that marked something (statistics)
        self.steps = 0  # instructions walked back over

    # ------------------------------------------------------------ demands
    def demand_regs(self, state: State, regnos: Iterable[int]) -> None:
        """The check at ``state.insn`` relies on these registers of the current frame."""
        depth = len(state.frames) - 1
        locs = {depth * STRIDE + r for r in regnos
                if r >= 0 and state.frame.regs[r].type == SCALAR}
        if locs:
            self.walk(state, locs)

    def demand_packet(self, state: State, length: int, meta: bool) -> None:
        """The check at ``state.insn`` relies on ``length`` bytes of packet (or metadata)
        proven by the state's length rather than by a pointer's own range.

        A checkpoint that had proven as much needs a covered state to have proven as much;
        one that had proven less did not provide it (the path proved it later, and would
        again for any state it covers), nor did any before it (lengths only grow along a
        path, or restart from 0 where the packet moves).
        """
        cp = state.parent
        while cp is not None and cp.state is not None:
            old = cp.state
            if cp.all_precise or (old.meta_len if meta else old.pkt_len) < length:
                return
            if meta:
                cp.meta_need = max(cp.meta_need, length)
            else:
                cp.pkt_need = max(cp.pkt_need, length)
            cp = cp.parent

    def demand_all(self, state: State, old: Kept) -> None:
        """``state`` was pruned at a may_goto by ``old``, an open checkpoint on its own path,
        with every scalar compared: what follows it may rely on any of them, and on all of
        ``old``'s proven packet. Walked back along the path (through ``old``, the previous
        iteration, and above), as a demand at ``state`` would be: the checkpoints between get
        what each value came from, without marking everything up to the program's entry."""
        if old.state is not None:
            if old.state.pkt_len:
                self.demand_packet(state, old.state.pkt_len, meta=False)
            if old.state.meta_len:
                self.demand_packet(state, old.state.meta_len, meta=True)
        locs = set()
        frames = state.frames
        for depth, frame in enumerate(frames):
            for r in live_regs(self.prog, frames, state.insn, depth):  # what ``covers`` reads
                if frame.regs[r].type == SCALAR:
                    locs.add(reg_loc(depth, r))
            for k, slot in frame.stack.items():
                if slot.spilled is not None and slot.spilled.type == SCALAR:
                    locs.add(slot_loc(depth, k))
        if locs:
            self.walk(state, locs)

    def inherit(self, state: State, old: Kept) -> None:
        """``state`` was pruned by ``old``: it relies on whatever ``old`` relied on."""
        if old.state is not None:
            pkt = min(old.state.pkt_len, old.pkt_need)
            if pkt:
                self.demand_packet(state, pkt, meta=False)
            meta = min(old.state.meta_len, old.meta_need)
            if meta:
                self.demand_packet(state, meta, meta=True)
        if not old.precise:
            return
        frames = state.frames
        top = len(frames) - 1
        live_top = self.prog.live[state.insn]
        locs = set()
        for loc in old.precise:
            depth, index = divmod(loc, STRIDE)
            if depth > top:
                continue
            if index < SLOTS:
                if depth == top and index not in live_top:
                    continue
                if frames[depth].regs[index].type != SCALAR:
                    continue
            locs.add(loc)
        if locs:
            self.walk(state, locs)

    # ------------------------------------------------------------ the walk
    def walk(self, state: State, locs: set[int]) -> None:
        """Mark ``locs`` (inputs of the instruction at ``state.insn``) precise in every
        checkpoint of this path, back to where they were computed or already marked."""
        prog_ops = self.prog.ops
        cp = state.parent
        if cp is None or cp.all_precise:
            return  # everything on this path is precise already
        hist = state.hist
        pos = state.insn
        depth = len(state.frames) - 1
        steps = 0
        marked = False
        while locs:
            if cp is None:
                break
            if steps > MAX_WALK:
                # A path that long since its checkpoints (a loop past the states an
                # instruction may keep) would be walked again by every demand on it
                self.everything(state)
                return
            if pos == cp.slot and hist is cp.hist:
                if cp.state is None:
                    break  # the program's entry
                new = self._mark(cp, locs)
                if new is None:
                    self.everything(state)
                    return
                if not new:
                    break
                marked = True
                cp = cp.parent
                if cp is None:
                    break
            # one instruction back along the path
            steps += 1
            if hist is not None and hist.kind in _TRANSFERS and hist.dst == pos:
                transfer = hist
                hist = hist.prev
                prev = transfer.slot
                if transfer.kind == CALL:
                    # entering the callee: its R1-R5 were the caller's (a callback's R1 is
                    # the iteration number, from nothing; its R2 the caller's R3)
                    args = _CALLBACK_ARGS if prev in self.prog.callback_calls else _CALL_ARGS
                    moved = set()
                    base = depth * STRIDE
                    for loc in locs:
                        d, index = divmod(loc, STRIDE)
                        if d < depth:
                            moved.add(loc)
                        elif d == depth and index in args:
                            if args[index]:
                                moved.add(base - STRIDE + args[index])
                        else:  # anything else of the callee cannot exist before the call
                            self.everything(state)
                            return
                    locs = moved
                    depth -= 1
                    pos = prev
                    continue
                if transfer.kind == CALLBACK_RETURN:
                    # back at the helper call from a callback run: the caller's registers
                    # are as they were, and nothing of the callback's frame is passed back
                    depth += 1
                    pos = prev
                    continue
                if transfer.kind == RETURN:
                    # the callee's R0 became the caller's; R1-R5 were clobbered
                    base = depth * STRIDE
                    r0 = base in locs
                    locs = {loc for loc in locs
                            if not base + 1 <= loc <= base + 5 and loc != base}
                    depth += 1
                    if r0:
                        locs.add(depth * STRIDE)
                    pos = prev
                    continue
            else:
                prev = pos - 1
                if prev >= 0 and prog_ops[prev] is None:
                    prev -= 1  # the second half of an lddw
                if prev < 0:
                    self.everything(state)
                    return
            pos = prev
            step = hist if hist is not None and hist.slot == prev and \
                hist.kind not in _TRANSFERS else None
            if step is not None:
                hist = step.prev
            back = self._back(prog_ops[prev], depth, locs, step)
            if back is None:
                self.everything(state)
                return
            locs = back
        self.steps += steps
        if marked:
            self.walks += 1

    @staticmethod
    def _back(op: ops.Op | None, depth: int, locs: set[int],
              step: Step | None) -> set[int] | None:
        """The locations the outputs ``locs`` of ``op`` were computed from (None: unknown)."""
        if op is None:
            return None
        base = depth * STRIDE
        kind = op.kind
        if kind == ops.ALU:
            d = base + op.dst
            if d not in locs:
                return locs
            alu_op = op.alu_op
            if alu_op == _MOV:
                locs.discard(d)
                if op.reg_operand:
                    locs.add(base + op.src)
            elif op.reg_operand and alu_op != _END:
                locs.add(base + op.src)
            return locs
        if kind == ops.BRANCH:
            if step is not None and step.kind == LINK:
                linked = step.locs
                if any(loc in locs for loc in linked):
                    locs.update(linked)
            if op.reg_operand:
                d, s = base + op.dst, base + op.src
                if d in locs or s in locs:
                    locs.add(d)
                    locs.add(s)
            return locs
        if kind == ops.LOAD:
            d = base + op.dst
            if d in locs:
                locs.discard(d)
                if step is not None and step.kind == FILL:
                    locs.update(step.locs)
            return locs
        if kind == ops.STORE:
            if step is not None and step.kind == SPILL and step.locs[0] in locs:
                locs.discard(step.locs[0])
                if step.dst >= 0:
                    locs.add(base + step.dst)
            return locs
        if kind == ops.ATOMIC:
            if step is not None and step.kind == SPILL:
                locs.discard(step.locs[0])
            if op.imm == AtomicOp.CMPXCHG:
                locs.discard(base)
            elif op.imm & ATOMIC_FETCH or op.imm == AtomicOp.XCHG:
                locs.discard(base + op.src)
            return locs
        if kind == ops.LDDW:
            locs.discard(base + op.dst)
            return locs
        if kind == ops.HELPER_CALL or kind == ops.LOCAL_CALL:
            # a helper, or a global function (a static one's call is a CALL step): R0 is
            # computed from nothing the walk follows, R1-R5 are gone
            for r in range(6):
                locs.discard(base + r)
            return locs
        if kind == ops.JA or kind == ops.MAY_GOTO:
            return locs
        return None  # exit or a call without its record: cannot happen on a walked path

    @staticmethod
    def _mark(cp: Kept, locs: set[int]) -> bool | None:
        """Record ``locs`` in ``cp``; whether any is new (None: a location it does not have).

        Locations that hold no scalar in the checkpoint are dropped: pointers are always
        compared exactly, so nothing before them needs marking for their sake.
        """
        precise = cp.precise
        if cp.state is None or precise is None:
            return None  # the program's entry, or a verification without tracking
        frames = cp.state.frames
        new = False
        drop = []
        for loc in locs:
            depth, index = divmod(loc, STRIDE)
            if depth >= len(frames):
                return None
            frame = frames[depth]
            if index < SLOTS:
                scalar = frame.regs[index].type == SCALAR
            else:
                spilled = frame.stack.get(index - SLOTS)
                scalar = spilled is not None and spilled.spilled is not None and \
                    spilled.spilled.type == SCALAR
            if not scalar:
                drop.append(loc)
            elif loc not in precise:
                precise.add(loc)
                new = True
        for loc in drop:
            locs.discard(loc)
        return new

    @staticmethod
    def everything(state: State) -> None:
        """What a walk could not follow (or a state pruned at a may_goto by an open checkpoint,
        whose marks are not final): every scalar of every checkpoint on the path, and all
        they proved of the packet, are precise; later walks from them end at once."""
        cp = state.parent
        while cp is not None and cp.state is not None and not cp.all_precise:
            cp.all_precise = True
            precise = cp.precise
            if precise is None:
                break  # not tracked: everything counts already
            for depth, frame in enumerate(cp.state.frames):
                for r, reg in enumerate(frame.regs):
                    if reg.type == SCALAR:
                        precise.add(depth * STRIDE + r)
                for k, slot in frame.stack.items():
                    if slot.spilled is not None and slot.spilled.type == SCALAR:
                        precise.add(depth * STRIDE + SLOTS + k)
            cp.pkt_need = cp.meta_need = ALL
            cp = cp.parent
