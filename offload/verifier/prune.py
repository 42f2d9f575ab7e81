"""State pruning: is a new state covered by one already proven safe?

``covers(old, cur)`` holds when every concrete machine state ``cur`` stands for is one ``old``
stands for (the kernel's ``states_equal`` with range inclusion): dead registers are ignored,
scalars and pointer offsets must lie within the old ranges, packet ranges must be at least as
large, stack bytes at least as initialised, and ids must map one to one (two registers linked
in ``old`` must be linked in ``cur``). With ``exact=True`` the states must be the same, which is
how an infinite loop is recognised.

With precision tracking (``precision.py``) only the old state's *precise* scalars are compared:
``precise`` holds their locations, and any scalar covers an imprecise one (kernel ``regsafe``:
"!rold->precise" is safe), in registers and in spilled slots alike. ``None`` compares them all.
``pkt_need``/``meta_need``: how much of the old state's proven packet and metadata length
must be proven in the new one too (``Checkpoint.pkt_need``); ``stack_read``: the only stack
slots compared, those the old state's paths read (``liveness``), or None for all.
"""

from __future__ import annotations

from collections.abc import Iterable

from .cfg import Program, live_regs
from .liveness import ALL_SLOTS
from .precision import ALL, SLOTS, STRIDE
from .state import (
    EMPTY_SLOT,
    MAYBE_NULL,
    PACKETS,
    SCALAR,
    UNINIT,
    ByteKind,
    Frame,
    Reg,
    State,
)

#: Pointers whose id means something: the null check or the packet range they share
_LINKED_BY_ID = MAYBE_NULL | PACKETS


class IdMap:
    """A one-to-one correspondence between ids of the old and of the current state."""

    __slots__ = ("fwd", "back", "fresh")

    def __init__(self) -> None:
        self.fwd: dict[int, int] = {}
        self.back: dict[int, int] = {}
        self.fresh = -1

    def same(self, old: int, cur: int) -> bool:
        if old == 0:
            return True  # the old state placed no constraint
        if cur == 0:
            cur = self.fresh  # an unlinked register: an id nothing else shares
            self.fresh -= 1
        if self.fwd.setdefault(old, cur) != cur:
            return False
        return self.back.setdefault(cur, old) == old


def reg_covers(old: Reg, cur: Reg, ids: IdMap, exact: bool) -> bool:
    if old is cur and not old.id:
        return True
    if old.type == UNINIT:
        return exact is False or cur.type == UNINIT
    if old.type != cur.type:
        return False
    t = old.type
    if t == SCALAR:
        if exact:
            return old.var == cur.var and ids.same(old.id, cur.id)
        return old.var.includes(cur.var) and ids.same(old.id, cur.id)
    if old.off != cur.off or old.map_handle != cur.map_handle or old.frameno != cur.frameno:
        return False
    if old.map is not cur.map and old.map != cur.map:
        return False
    if exact:
        if old.var != cur.var or old.range != cur.range:
            return False
    elif not old.var.includes(cur.var) or cur.range < old.range:
        return False
    if t in _LINKED_BY_ID:
        return ids.same(old.id, cur.id)
    return True


_LOOSE_KINDS = frozenset({ByteKind.MISC, ByteKind.ZERO})


def _stack_covers(old: Frame, cur: Frame, ids: IdMap, exact: bool,
                  precise: frozenset[int] | set[int] | None, base: int,
                  stack_read: set[int] | None = None) -> bool:
    keys: Iterable[int]
    if exact:
        keys = old.stack.keys() | cur.stack.keys()
    elif stack_read is None or stack_read is ALL_SLOTS:
        keys = old.stack.keys()
    else:  # only the slots read later: usually far fewer than the slots written
        first = base + SLOTS
        keys = [loc - first for loc in stack_read if first <= loc < base + STRIDE]
    for k in keys:
        o = old.stack.get(k, EMPTY_SLOT)
        c = cur.stack.get(k, EMPTY_SLOT)
        if o is c and (o.spilled is None or not o.spilled.id):
            continue
        if not exact and precise is not None and o.spilled is not None and \
                o.spilled.type == SCALAR and base + SLOTS + k not in precise:
            # an imprecise number: any number here will do, spilled or in plain bytes
            if c.spilled is not None:
                if c.spilled.type != SCALAR:
                    return False
            elif not _LOOSE_KINDS.issuperset(c.kinds):
                return False
            continue
        if exact:
            if o.kinds != c.kinds:
                return False
            if o.spilled is not None and not reg_covers(o.spilled, c.spilled, ids, True):
                return False
            continue
        if o.spilled is not None:
            if c.spilled is None or not reg_covers(o.spilled, c.spilled, ids, False):
                return False
            continue
        c_scalar_spill = c.spilled is not None and c.spilled.type == SCALAR
        c_zero_spill = c_scalar_spill and c.spilled.is_const and c.spilled.var.value == 0
        for ok, ck in zip(o.kinds, c.kinds):
            if ok == ByteKind.INVALID or ok == ck and ck != ByteKind.SPILL:
                continue
            if ok == ByteKind.MISC and (ck == ByteKind.ZERO or c_scalar_spill):
                continue
            if ok == ByteKind.ZERO and c_zero_spill:
                continue
            return False
    return True


def covers(prog: Program, old: State, cur: State, *, exact: bool = False,
           precise: frozenset[int] | set[int] | None = None, pkt_need: int = ALL,
           meta_need: int = ALL, stack_read: set[int] | None = None) -> bool:
    """Whether ``cur`` needs no further exploration because ``old`` was proven safe.

    A conjunction of checks per frame, register and stack slot; only the id map is shared, and
    whether ids correspond one to one does not depend on the order they are seen in, so the
    checks run in whatever order rejects soonest.
    """
    old_frames, cur_frames = old.frames, cur.frames
    if len(old_frames) != len(cur_frames):
        return False
    if exact:
        if old.pkt_len != cur.pkt_len or old.meta_len != cur.meta_len:
            return False
    elif min(old.pkt_len, pkt_need) > cur.pkt_len or \
            min(old.meta_len, meta_need) > cur.meta_len:
        return False
    ids = IdMap()
    top = len(old_frames) - 1
    for depth in range(top, -1, -1):
        of, cf = old_frames[depth], cur_frames[depth]
        if of.callsite != cf.callsite:
            return False
        live = live_regs(prog, old_frames, cur.insn, depth)
        oregs, cregs = of.regs, cf.regs
        base = depth * STRIDE
        for r in live:
            o, c = oregs[r], cregs[r]
            if o is c and not o.id or r == 10:
                continue  # the same register value, or the frame pointer
            if o.type == SCALAR and c.type == SCALAR and not exact:
                if precise is not None and base + r not in precise:
                    continue  # imprecise: nothing relied on its value
                if not o.id:
                    if not o.var.includes(c.var):  # reg_covers' most common case, inline
                        return False
                    continue
            if not reg_covers(o, c, ids, exact):
                return False
        if (of.stack or exact and cf.stack) and \
                not _stack_covers(of, cf, ids, exact, precise, base, stack_read):
            return False
    return True
