"""Stack liveness: which stack slots the paths from a checkpoint read before writing them.

Pruning compares a checkpoint's stack slot by slot. Programs keep much on the stack (keys,
spilled packet pointers, parsed headers) that the rest of a path never reads again, and states
differing only there look different: every path to the statistics at the end of a load
balancer stays apart. The kernel marks reads as they happen and compares only slots read
(``REG_LIVE_READ`` on stack slots, ``mark_reg_read``); so does this module:

* a read of a slot (a fill, part of a slot, a helper reading memory, a variable offset over
  several slots) marks it read in the checkpoint the path descends from, and in that one's
  ancestors, up to the segment that wrote the whole slot last (a read there saw that write);
* a state pruned by a checkpoint reads, from then on, what that checkpoint's paths read;
* a checkpoint compares only the slots its paths read. A closed checkpoint's marks are final:
  every path from it is explored (``explored.finish``).

A slot is a precision location (``precision.slot_loc``): depth in the call stack and slot
number, so callers' slots read through pointers passed down are marked in their own frame.

This is not register liveness (``isa.liveness``, shared with the lowering): that one is a
fixpoint over the control-flow graph, computed once per program; this one follows the reads
of the paths actually explored, between checkpoints, as they happen.
"""

from __future__ import annotations

from .precision import STRIDE, slot_loc
from .state import SLOT, Kept, State

EMPTY: frozenset[int] = frozenset()


class AllSlots(set):
    """The read marks of a checkpoint whose paths may read anything: every slot counts."""

    def __contains__(self, loc: object) -> bool:
        return True

    def add(self, loc: int) -> None:
        pass


ALL_SLOTS = AllSlots()


def slots_between(lo: int, end: int) -> range:
    """The numbers of the stack slots holding bytes [lo, end) (offsets from fp; slot 0 is
    fp-8)."""
    return range((-end) // SLOT, (-lo - 1) // SLOT + 1)


def read(state: State, frameno: int, lo: int, end: int) -> None:
    """Bytes [lo, end) of frame ``frameno``'s stack (offsets from its fp) were read."""
    for k in slots_between(lo, end):
        mark(state, slot_loc(frameno, k))


def mark(state: State, loc: int) -> None:
    if loc in state.written:
        return  # this path wrote it since its checkpoint: the value read is its own
    cp: Kept | None = state.parent
    while cp is not None and cp.stack_read is not None:
        if loc in cp.stack_read:
            return  # marked, and so are the ancestors it reaches
        cp.stack_read.add(loc)
        if loc in cp.written:
            return
        cp = cp.parent


def wrote(state: State, frameno: int, addr: int) -> None:
    """The whole slot at ``addr`` (8-aligned, from frame ``frameno``'s fp) was written."""
    loc = slot_loc(frameno, -addr // SLOT - 1)
    if loc not in state.written:
        state.written = state.written | {loc}


def everything(state: State, stop: Kept | None = None) -> None:
    """Every checkpoint on the path compares every slot (a state pruned where its future is
    not fully known: the read marks it would bring are not final); with ``stop``, an open
    checkpoint on the path that covers the state, only those below it: ``stop``'s own paths
    read whatever the state's would, and mark it and its ancestors as they do."""
    cp: Kept | None = state.parent
    while cp is not None and cp is not stop and cp.stack_read is not None and \
            cp.stack_read is not ALL_SLOTS:
        cp.stack_read = ALL_SLOTS
        cp = cp.parent


def inherit(state: State, old: Kept) -> None:
    """``state`` was pruned by ``old``: its path reads what ``old``'s paths read."""
    if old.stack_read is ALL_SLOTS:
        everything(state)  # anything may be read: an empty set to iterate, so said outright
        return
    if old.stack_read:
        limit = len(state.frames) * STRIDE  # locations of frames the state has
        written = state.written
        first = state.parent
        for loc in old.stack_read:  # ``mark`` of each, inline: a pruned state has many
            if loc >= limit or loc in written:
                continue
            cp = first
            while cp is not None:
                read = cp.stack_read
                if read is None or loc in read:
                    break  # untracked, or marked (and so are the ancestors it reaches)
                read.add(loc)
                if loc in cp.written:
                    break
                cp = cp.parent
