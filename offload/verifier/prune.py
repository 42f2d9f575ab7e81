"""State pruning: is a new state covered by one already proven safe?

``covers(old, cur)`` holds when every concrete machine state ``cur`` stands for is one ``old``
stands for (the kernel's ``states_equal`` with range inclusion): dead registers are ignored,
scalars and pointer offsets must lie within the old ranges, packet ranges must be at least as
large, stack bytes at least as initialised (a spilled number covers bytes written without a
register that may hold a number it holds: zeros for 0), ids must map one to one (two
registers linked in ``old`` must be linked in ``cur``), and the ``bpf_spin_lock`` held must
be the same (``locks.covers``). With ``exact=True`` the states must be the same, which is
how an infinite loop is recognised.

With precision tracking (``precision.py``) only the old state's *precise* scalars are compared:
``precise`` holds their locations, and any scalar covers an imprecise one (kernel ``regsafe``:
"!rold->precise" is safe), in registers and in spilled slots alike. ``None`` compares them all.
The references held (``refs``) must match too, ids through the same correspondence.
``pkt_need``/``meta_need``: how much of the old state's proven packet and metadata length
must be proven in the new one too (``Checkpoint.pkt_need``); ``stack_read``: the only stack
slots compared, those the old state's paths read (``liveness``), or None for all.
A frame whose path has run its callback more times than ``cur``'s (``Frame.cb_depth``) covers
nothing: its paths explored fewer further runs (the kernel's ``callback_depth`` rule).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import locks
from .liveness import ALL_SLOTS
from .precision import ALL, SLOTS, STRIDE
from .program import Program, live_regs
from .refs import refs_cover
from .scalar import Scalar
from .state import (
    EMPTY_SLOT,
    MAYBE_NULL,
    PACKETS,
    SCALAR,
    SLOT,
    UNINIT,
    UNKNOWN,
    ByteKind,
    Frame,
    Reg,
    Slot,
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


def _same_ref(old: int, cur: int, ids: IdMap) -> bool:
    """Both pointers derived from no reference, or from corresponding ones."""
    if not old or not cur:
        return old == cur
    return ids.same(old, cur)


def reg_covers(old: Reg, cur: Reg, ids: IdMap, exact: bool) -> bool:
    if old is cur and not old.id and not old.ref:
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
    if (old.ref or cur.ref) and not _same_ref(old.ref, cur.ref, ids):
        return False
    if old.map is not cur.map and old.map != cur.map:
        return False
    if exact:
        if old.var != cur.var or old.range != cur.range:
            return False
    elif not old.var.includes(cur.var) or cur.range < old.range:
        return False
    if t in _LINKED_BY_ID or old.id:  # a map value's id names the lock it may take
        return ids.same(old.id, cur.id)
    return True


# Python 3.11 looks an enum member up through EnumType.__getattr__, at about ten times the cost
# of a global, so the comparisons below use these names (as state.py does for register types).
_INVALID, _MISC, _ZERO, _SPILL = ByteKind.INVALID, ByteKind.MISC, ByteKind.ZERO, ByteKind.SPILL
_LOOSE_KINDS = frozenset({_MISC, _ZERO})
_ZERO_REG = Reg.const(0)


def _spill_covers(o: Slot, c: Slot, imprecise: bool, ids: IdMap | None) -> bool:
    """An old slot holding a spilled register against the new one.

    ``imprecise``: the old one is a number nothing relied on, so any number in its bytes will
    do - spilled, unknown or zero bytes, never bytes never written - and the bytes a narrow
    spill left as they were are compared as bytes. Otherwise the new slot must hold a
    register the old one covers, spilled to the same bytes: a narrow spill's other bytes may
    have been never written, which a wider fill must still find. ``ids`` may be None only
    when ``imprecise`` (nothing is compared by id then)."""
    os, cs = o.spilled, c.spilled
    if os is None:
        return False  # not a spill: ``_bytes_cover`` compares such slots
    if imprecise:
        if cs is not None and cs.type != SCALAR:
            return False
        spilled_bytes, rest = _spill_layout(o.kinds)
        kinds = c.kinds
        for i in range(spilled_bytes):
            if kinds[i] == _INVALID:
                return False
        return not rest or _bytes_cover(rest, c)
    if ids is None:
        ids = IdMap()
    if cs is None and os.type == SCALAR:
        return _number_bytes_cover(o, os, c, ids)
    return cs is not None and c.kinds == o.kinds and reg_covers(os, cs, ids, False)


def _number_bytes_cover(o: Slot, os: Reg, c: Slot, ids: IdMap) -> bool:
    """An old spilled number others relied on against bytes written without a register:
    they stand for the number they may hold (as the kernel compares them), zeros for 0,
    initialised bytes for any number of their width; the bytes past a narrow spill as
    plain bytes."""
    width, rest = _spill_layout(o.kinds)
    head = c.kinds[:width]
    if not _LOOSE_KINDS.issuperset(head) or rest and not _bytes_cover(rest, c):
        return False
    if _MISC not in head:
        return reg_covers(os, _ZERO_REG, ids, False)
    return reg_covers(os, _WIDTH_VALUES[width], ids, False)


#: the number bytes of a width may hold, by width (0 is never looked up)
_WIDTH_VALUES = (_ZERO_REG, *(Reg.scalar(Scalar.urange(0, (1 << 8 * width) - 1))
                              for width in range(1, SLOT)), UNKNOWN)


#: per kinds of a slot: how many bytes a spill covers, and the (position, kind) of the other
#: bytes that constrain (not never written)
_LAYOUTS: dict[tuple[ByteKind, ...], tuple[int, tuple[tuple[int, ByteKind], ...]]] = {}


def _spill_layout(kinds: tuple[ByteKind, ...]) -> tuple[int, tuple[tuple[int, ByteKind], ...]]:
    """How many bytes a spill covers (0: none) and the (position, kind) of the other bytes
    that constrain a new slot: all but those never written (cached: slots share a few kinds
    tuples)."""
    layout = _LAYOUTS.get(kinds)
    if layout is None:
        spilled_bytes = kinds.count(_SPILL)
        layout = _LAYOUTS[kinds] = (spilled_bytes, tuple(
            (i, kind) for i, kind in enumerate(kinds)
            if i >= spilled_bytes and kind != _INVALID))
    return layout


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
        if o is c and (o.spilled is None or not o.spilled.id and not o.spilled.ref):
            continue
        if exact:
            if o.kinds != c.kinds:
                return False
            if o.spilled is not None and (c.spilled is None or
                                          not reg_covers(o.spilled, c.spilled, ids, True)):
                return False
            continue
        if o.spilled is not None:
            imprecise = precise is not None and o.spilled.type == SCALAR and \
                base + SLOTS + k not in precise
            if not _spill_covers(o, c, imprecise, ids):
                return False
            continue
        if not _bytes_cover(_spill_layout(o.kinds)[1], c):
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
    if (old.lock is not None or cur.lock is not None) and \
            not locks.covers(old.lock, cur.lock, ids):
        return False
    if (old.refs or cur.refs) and not refs_cover(old.refs, cur.refs, ids.same):
        return False
    top = len(old_frames) - 1
    for depth in range(top, -1, -1):
        of, cf = old_frames[depth], cur_frames[depth]
        if of.callsite != cf.callsite:
            return False
        if of.cb_depth > cf.cb_depth if not exact else of.cb_depth != cf.cb_depth:
            return False  # fewer callback runs explored from ``old`` than ``cur`` may make
        live = live_regs(prog, old_frames, cur.insn, depth)
        oregs, cregs = of.regs, cf.regs
        base = depth * STRIDE
        for r in live:
            o, c = oregs[r], cregs[r]
            if o is c and not o.id and not o.ref or r == 10:
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


# What one step of a ``Plan`` compares (the first field of its entries).
_R_ANY_SCALAR = 0  # an imprecise scalar register: any scalar will do
_R_RANGE = 1  # a precise scalar register without id: range inclusion
_R_REG = 2  # any other register: ``reg_covers``
_S_ANY_SCALAR = 3  # an imprecise spilled scalar: any number, spilled or in plain bytes
_S_SPILL = 4  # any other spilled register: ``reg_covers``
_S_BYTES = 5  # plain bytes: the old kinds that constrain, by position
_S_NUMBER = 6  # a precise spilled scalar without id: range inclusion, no id map


class Plan:
    """``covers(prog, old, cur, ...)`` for one closed checkpoint, worked out once.

    A closed checkpoint's precision marks, stack reads and packet needs are final, and every
    state it is tried on is at its own instruction, so which registers and slots are compared,
    and how, is the same each time: only the new state's side varies. The checks are a flat
    list; one that rejects moves to the front, because the state that fails a checkpoint once
    usually fails it the same way the next time.
    """

    __slots__ = ("frames", "callers", "pkt", "meta", "lock", "refs", "checks")

    def __init__(self, prog: Program, old: State, precise: frozenset[int] | set[int] | None,
                 pkt_need: int, meta_need: int, stack_read: set[int] | None) -> None:
        frames = old.frames
        self.frames = len(frames)
        #: per frame: its call site and callback runs, which a new frame must equal and
        #: reach (``covers``)
        self.callers = tuple((f.callsite, f.cb_depth) for f in frames)
        self.pkt = min(old.pkt_len, pkt_need)
        self.meta = min(old.meta_len, meta_need)
        self.lock = old.lock  # the bpf_spin_lock held, compared as ``covers`` does
        self.refs = old.refs  # the references held, compared as ``covers`` does
        #: (kind, frame, register or slot, the old side: a Reg, a Slot, or a Slot and the
        #: bytes it constrains, by kind)
        checks: list[tuple[int, int, int, Any]] = []
        add = checks.append
        everything = stack_read is None or stack_read is ALL_SLOTS
        insn = old.insn
        for depth, frame in enumerate(frames):
            base = depth * STRIDE
            regs = frame.regs
            for r in live_regs(prog, frames, insn, depth):
                o = regs[r]
                t = o.type
                if r == 10 or t == UNINIT:
                    continue  # the frame pointer; an unset register covers anything
                if t == SCALAR:
                    if precise is not None and base + r not in precise:
                        add((_R_ANY_SCALAR, depth, r, o))
                    elif not o.id:
                        add((_R_RANGE, depth, r, o))
                    else:
                        add((_R_REG, depth, r, o))
                else:
                    add((_R_REG, depth, r, o))
            first = base + SLOTS
            for k, slot in frame.stack.items():
                if not everything and first + k not in stack_read:  # type: ignore[operator]
                    continue
                spilled = slot.spilled
                if spilled is not None:
                    if spilled.type != SCALAR:
                        add((_S_SPILL, depth, k, slot))
                    elif precise is not None and first + k not in precise:
                        width, rest = _spill_layout(slot.kinds)
                        add((_S_ANY_SCALAR, depth, k,
                             (slot, width, rest, not spilled.id and not spilled.ref)))
                    elif spilled.id or spilled.ref:
                        add((_S_SPILL, depth, k, slot))
                    else:
                        add((_S_NUMBER, depth, k, slot))
                    continue
                constrained = _spill_layout(slot.kinds)[1]
                if constrained:
                    add((_S_BYTES, depth, k, (slot, constrained)))
        self.checks = checks

    def covers(self, cur: State) -> bool:
        """``covers`` of the checkpoint's state and ``cur``, with the same answer."""
        cur_frames = cur.frames
        if len(cur_frames) != self.frames or self.pkt > cur.pkt_len or \
                self.meta > cur.meta_len:
            return False
        for frame, (callsite, cb_depth) in zip(cur_frames, self.callers):
            if frame.callsite != callsite or frame.cb_depth < cb_depth:
                return False
        ids: IdMap | None = None
        if self.lock is not None or cur.lock is not None:
            ids = IdMap()
            if not locks.covers(self.lock, cur.lock, ids):
                return False
        if self.refs or cur.refs:
            if ids is None:
                ids = IdMap()
            if not refs_cover(self.refs, cur.refs, ids.same):
                return False
        checks = self.checks
        for i, (kind, depth, at, o) in enumerate(checks):
            # the kinds by how often they are met (in stack-heavy programs)
            if kind == _S_ANY_SCALAR:  # as _spill_covers(imprecise=True), inline
                slot, width, rest, same_ok = o
                cslot = cur_frames[depth].stack.get(at, EMPTY_SLOT)
                if cslot is slot and same_ok:
                    continue
                cs = cslot.spilled
                if (cs is None or cs.type == SCALAR) and _INVALID not in cslot.kinds[:width] \
                        and (not rest or _bytes_cover(rest, cslot)):
                    continue
            elif kind == _S_NUMBER:  # as _spill_covers, inline
                cslot = cur_frames[depth].stack.get(at, EMPTY_SLOT)
                if cslot is o:
                    continue
                cs = cslot.spilled
                var = o.spilled.var
                if cs is not None:
                    if cs.type == SCALAR and cslot.kinds == o.kinds and var.includes(cs.var):
                        continue
                else:  # plain bytes: the number they may hold (``_number_bytes_cover``)
                    width, rest = _spill_layout(o.kinds)
                    head = cslot.kinds[:width]
                    if _LOOSE_KINDS.issuperset(head) and \
                            var.includes(_WIDTH_VALUES[width if _MISC in head else 0].var) \
                            and (not rest or _bytes_cover(rest, cslot)):
                        continue
            elif kind == _S_BYTES:
                slot, constrained = o
                cslot = cur_frames[depth].stack.get(at, EMPTY_SLOT)
                if cslot is slot or cslot.kinds == slot.kinds or \
                        _bytes_cover(constrained, cslot):
                    continue  # (the same kinds: no spill among them either)
            elif kind == _S_SPILL:
                cslot = cur_frames[depth].stack.get(at, EMPTY_SLOT)
                cs = cslot.spilled
                if cslot is o and (cs is None or not cs.id and not cs.ref):
                    continue
                if ids is None:
                    ids = IdMap()
                if _spill_covers(o, cslot, False, ids):
                    continue
            elif kind == _R_ANY_SCALAR:
                if cur_frames[depth].regs[at].type == SCALAR:
                    continue
            elif kind == _R_RANGE:  # (a scalar without id: itself is covered)
                c = cur_frames[depth].regs[at]
                if c is o or c.type == SCALAR and o.var.includes(c.var):
                    continue
            else:
                c = cur_frames[depth].regs[at]
                if c is o and not o.id and not o.ref:
                    continue
                if ids is None:
                    ids = IdMap()
                if reg_covers(o, c, ids, False):
                    continue
            if i:  # the check that rejected goes first next time
                checks.insert(0, checks.pop(i))
            return False
        return True


def _bytes_cover(constrained: tuple[tuple[int, ByteKind], ...], c: Slot) -> bool:
    """Whether the bytes of ``c`` are at least as initialised as the old slot's (the kinds it
    constrains, by position): ``_stack_covers``' rule for an old slot holding no register."""
    spilled = c.spilled
    scalar_spill = zero_spill = False
    if spilled is not None and spilled.type == SCALAR:
        scalar_spill = True
        zero_spill = spilled.is_const and spilled.var.value == 0
    kinds = c.kinds
    for i, ok in constrained:
        ck = kinds[i]
        if ok == ck and ck != _SPILL:
            continue
        if ok == _MISC and (ck == _ZERO or scalar_spill):
            continue
        if ok == _ZERO and zero_spill:
            continue
        return False
    return True
