"""The states kept at prune points, and whether a new state there needs exploring.

Like the kernel's ``is_state_visited``, each prune point keeps a list of checkpoints (states
seen there) and a new state is checked against them in list order: a *closed* checkpoint (every
path from it explored) that covers the new state proves it safe; an *open* one (a path from it
still being explored) exactly equal to it is an infinite loop. The first checkpoint in the list
that answers decides: the state is pruned when a closed checkpoint listed before the first
equal open one covers it.

Scanning the whole list for every state is what made verification slow (a loop head keeps up
to ``max_states_per_insn`` open checkpoints, a loop over headers as many closed ones). So open
checkpoints are looked up by *fingerprint* (equal states have equal fingerprints) and closed
ones by *shape*: the types and fixed offsets of the live registers, which ``covers`` needs
equal, unless the old register is unset (such checkpoints are always tried). Closed ones are
kept in order of the packet length they proved and relied on (``Checkpoint.pkt_need``),
which ``covers`` needs no larger than the new state's: the search stops at the first that
proved more. A closed checkpoint's precision marks are final (every path from it is explored),
so the order holds.

At a ``may_goto`` (the kernel's rule for it) a loop need not end for the verifier: a state that
an *open* checkpoint there covers - one on its own path, with fewer may_goto fall-throughs
behind it (``State.may_goto``) - is pruned. The runtime counter bounds the loop, and the
checkpoint's exploration covers what follows. Its precision marks are incomplete (it is still
open), so every scalar is compared, and the caller demands every scalar of the pruned state
(``open_hit``, ``Precision.demand_all``). An equal open checkpoint is an infinite loop only
with as many fall-throughs.

A call to a helper that runs a callback (``bpf_loop``) is the same kind of point: each run of
the callback comes back to the call (``callbacks.py``), and a state there that an open
checkpoint on its own path covers is pruned the same way (the kernel's rule for
``calls_callback`` instructions), which is how callback iterations converge. The helper
bounds the runs at run time, so no state there is an infinite loop.
"""

from __future__ import annotations

from bisect import insort

from .precision import ALL
from .program import Program
from .prune import Plan, covers
from .reject import VerifierBug
from .state import Kept, RegType, State

#: Verdicts of ``PrunePoint.check``.
EXPLORE, PRUNED, LOOP = 0, 1, 2

#: Compare every plan's answer with the full comparison's (tests: a plan must never differ).
CROSS_CHECK = False

#: Misses per hit (plus one) a closed checkpoint may have before it is evicted.
EVICT_AFTER = 3

#: Jumps and instructions since the last kept checkpoint below which a new state is not kept
#: (the kernel's figures): an ordinary one, and one in a loop (an open checkpoint at its point).
KEEP_AFTER_JUMPS, KEEP_AFTER_INSNS = 2, 8
LOOP_KEEP_AFTER_JUMPS, LOOP_KEEP_AFTER_INSNS = 20, 100


def worth_keeping(jumps: int, insns: int, looping: bool) -> bool:
    """Whether a state the checkpoints did not prune is kept as a checkpoint, given the jumps
    and instructions stepped since the last one was kept (kernel ``is_state_visited``).

    Programs have a prune point every few instructions; keeping a checkpoint at each costs
    memory, copies and comparisons for little more pruning. Inside a loop (an open checkpoint
    at the same point: the state is on a path from it) successive iterations differ and rarely
    prune one another, so checkpoints there are kept sparser still; a loop that runs long is
    still recognised as it keeps one every ``LOOP_KEEP_AFTER_*``. ``may_goto`` and callback
    calls always keep theirs (``PrunePoint.forced``, the caller's rule)."""
    if looping:
        return jumps >= LOOP_KEEP_AFTER_JUMPS or insns >= LOOP_KEEP_AFTER_INSNS
    return jumps >= KEEP_AFTER_JUMPS and insns >= KEEP_AFTER_INSNS


#: A state's fingerprint (None when not worked out) and shape at one prune point
#: (``PrunePoint.keys``).
Keys = tuple[int | None, tuple[int, ...]]


class Checkpoint:
    """A state kept at a prune point; ``branches`` counts its paths still being explored.

    ``precise`` holds the locations (``precision.reg_loc``/``slot_loc``) of the scalars the
    paths from it relied on, ``pkt_need``/``meta_need`` how much of its proven packet or
    metadata length they relied on; without precision tracking (``precise`` None) all count.
    """

    __slots__ = ("state", "branches", "parent", "keys", "point", "index", "slot", "hist",
                 "precise", "pkt_need", "meta_need", "hits", "misses", "up",
                 "all_precise", "stack_read", "written", "plan", "proven_pkt", "proven_meta")

    def __init__(self, state: State | None, parent: Checkpoint | None,
                 keys: Keys = (0, ()), point: PrunePoint | None = None,
                 index: int = 0, tracked: bool = False) -> None:
        self.state = state
        self.branches = 1
        self.parent = parent
        self.keys = keys
        self.point = point  # None for the root, which stands for the program entry
        self.index = index  # position in its prune point's list
        self.slot = state.insn if state is not None else 0
        self.hist = state.hist if state is not None else None
        self.precise: set[int] | None = set() if tracked else None
        self.pkt_need = self.meta_need = 0 if tracked else ALL
        self.hits = self.misses = 0  # states it pruned, and states it was tried on in vain
        #: every scalar and proven byte marked (``Precision.everything``), as are its ancestors
        self.all_precise = not tracked
        #: stack slots the paths from it read before writing (``liveness``; None: all count),
        #: and the slots the path to it wrote whole since its parent
        self.stack_read: set[int] | None = set() if tracked and state is not None else None
        self.written = state.written if state is not None else frozenset()
        #: at a may_goto: the nearest checkpoint of the same prune point on its path
        self.up: Checkpoint | None = None
        #: once closed and first tried: its comparison, worked out once (``prune.Plan``)
        self.plan: Plan | None = None
        #: once closed: the packet and metadata lengths a state must have proven to be
        #: covered (its proven lengths as far as its paths relied on them; 0: any will do)
        self.proven_pkt = self.proven_meta = 0


#: the closed checkpoints of a shape none has (never added to: nothing in it to evict)
_NONE_CLOSED: list[Checkpoint] = []


class PrunePoint:
    """The checkpoints of one slot: open ones by fingerprint, closed ones by shape."""

    __slots__ = ("slot", "regs", "count", "kept", "open", "by_fingerprint", "closed",
                 "closed_any_shape", "tracked", "pruned_by", "may_goto", "open_hit",
                 "callback", "forced")

    def __init__(self, prog: Program, slot: int, tracked: bool = False) -> None:
        self.slot = slot
        self.tracked = tracked  # precision tracking: checkpoints start with nothing precise
        self.pruned_by: Checkpoint | None = None  # the checkpoint of the last PRUNED
        self.may_goto = slot in prog.may_goto
        self.callback = slot in prog.callback_calls  # a helper call that runs a callback
        #: every state here is kept (loop heads: later iterations are compared with it)
        self.forced = self.may_goto or self.callback
        self.open_hit = False  # whether the last PRUNED came from an open checkpoint
        #: registers the keys read: the live ones (r10 is always the frame pointer)
        self.regs = tuple(sorted(r for r in prog.live[slot] if r != 10))
        self.count = 0  # checkpoints ever added (their ``index``)
        self.kept = 0  # of which not evicted
        self.open = 0  # of which some path is still being explored
        #: open checkpoints by fingerprint (None: kept without one, ``keys``)
        self.by_fingerprint: dict[int | None, list[Checkpoint]] = {}
        self.closed: dict[tuple[int, ...], list[Checkpoint]] = {}
        self.closed_any_shape: list[Checkpoint] = []  # some live register unset

    def keys(self, state: State, fingerprint: bool = True) -> Keys:
        """The fingerprint (equal for states ``covers(exact=True)`` calls equal: live
        registers without ids) and the shape (frames, types and fixed offsets; a scalar's
        offset is always 0) of ``state``, with how many references each holds.

        The fingerprint finds open checkpoints and files new ones: without ``fingerprint``
        (no open checkpoint here, and the state will not be kept) it is not worked out, and
        is None."""
        regs = state.frame.regs
        # states holding different numbers of references never cover each other
        shape: list = [(len(state.frames), len(state.refs))]
        if not fingerprint:
            for r in self.regs:
                reg = regs[r]
                shape += (reg.type, reg.off)
            return None, tuple(shape)
        rest: list[object] = [state.pkt_len, state.meta_len]
        for r in self.regs:
            reg = regs[r]
            shape += (reg.type, reg.off)
            rest += (reg.var, reg.range)
        frozen = tuple(shape)
        return hash((frozen, *rest)), frozen

    def check(self, prog: Program, cur: State, keys: Keys, counting: bool = True) -> int:
        """EXPLORE, PRUNED or LOOP for ``cur``, as the first deciding checkpoint says.

        ``counting``: whether ``cur`` would be kept if not pruned; a miss counts towards
        evicting a checkpoint only then (the kernel's rule), or the states of a loop's
        iterations, seldom kept, would evict the checkpoints that prune its exit."""
        fingerprint, shape = keys
        self.open_hit = False
        if self.forced:
            cp = self._nearest(cur.parent)
            while cp is not None:
                old = cp.state
                if old is not None and cp.branches > 0 and \
                        (self.callback or old.may_goto != cur.may_goto) and \
                        covers(prog, old, cur, precise=None):
                    cp.hits += 1
                    self.pruned_by = cp
                    self.open_hit = True
                    return PRUNED
                cp = cp.up
        loop_at = self.count  # past the end: no open checkpoint equals ``cur``
        for cp in () if self.callback else self.by_fingerprint.get(fingerprint, ()):
            open_state = cp.state
            if cp.branches > 0 and open_state is not None and \
                    open_state.may_goto == cur.may_goto and \
                    open_state.callbacks == cur.callbacks and \
                    covers(prog, open_state, cur, exact=True):
                loop_at = cp.index
                break
        pkt_len, meta_len = cur.pkt_len, cur.meta_len
        cross_check = CROSS_CHECK
        for group in (self.closed.get(shape, _NONE_CLOSED), self.closed_any_shape):
            evict = False
            for cp in group:  # (closed: each has a state, its marks and needs final)
                if cp.proven_pkt > pkt_len:
                    break  # and so do the rest: covers() would say no
                if cp.index > loop_at or cp.proven_meta > meta_len:
                    continue
                plan = cp.plan
                if plan is None:
                    plan = cp.plan = Plan(prog, cp.state,  # type: ignore[arg-type]
                                          cp.precise, cp.pkt_need, cp.meta_need,
                                          cp.stack_read)
                if self._covers(prog, cp, plan, cur) if cross_check else plan.covers(cur):
                    cp.hits += 1
                    self.pruned_by = cp
                    if evict:
                        self._evict(group)
                    return PRUNED
                if counting:
                    cp.misses += 1
                    if cp.misses > EVICT_AFTER * (cp.hits + 1):
                        evict = True
            if evict:
                self._evict(group)
        return LOOP if loop_at < self.count else EXPLORE

    @staticmethod
    def _covers(prog: Program, cp: Checkpoint, plan: Plan, cur: State) -> bool:
        answer = plan.covers(cur)
        if CROSS_CHECK:
            full = covers(prog, cp.state, cur, precise=cp.precise,  # type: ignore[arg-type]
                          pkt_need=cp.pkt_need, meta_need=cp.meta_need,
                          stack_read=cp.stack_read)
            if full != answer:
                raise VerifierBug(f"pruning plan of insn {cp.slot} says {answer}, the full "
                                  f"comparison {full}")
        return answer

    def release(self) -> None:
        """Let go of every checkpoint. They refer to their point, which refers to them: left
        alone, the whole state graph would wait for the cyclic collector, which walks it all
        (a third of a second for a large program) - dropped here, reference counting frees
        it as the verification returns."""
        self.by_fingerprint.clear()
        self.closed.clear()
        self.closed_any_shape.clear()
        self.pruned_by = None

    def make_room(self) -> bool:
        """Evict the closed checkpoint that pruned least (the oldest among equals) so a new
        one fits under ``max_states_per_insn``; False when every kept one is still open.

        Checkpoints of a shape no new state has share are never tried, so never miss: without
        this they would hold their places for good, and every later state at the point would
        go unkept, pruning nothing (the kernel, privileged, has no such limit to fill)."""
        worst: Checkpoint | None = None
        worst_group: list[Checkpoint] | None = None
        for group in (*self.closed.values(), self.closed_any_shape):
            for cp in group:
                if worst is None or (cp.hits, -cp.misses, cp.index) < \
                        (worst.hits, -worst.misses, worst.index):
                    worst, worst_group = cp, group
        if worst is None or worst_group is None:
            return False
        worst_group.remove(worst)
        self.kept -= 1
        return True

    def _evict(self, group: list[Checkpoint]) -> None:
        """Drop the closed checkpoints that keep failing to prune (kernel ``is_state_visited``
        does the same: ``miss_cnt > hit_cnt * n + n``), making room for more useful ones."""
        keep = [cp for cp in group if cp.misses <= EVICT_AFTER * (cp.hits + 1)]
        self.kept -= len(group) - len(keep)
        group[:] = keep

    def add(self, state: State, kept: Kept | None, keys: Keys) -> Checkpoint:
        parent = kept if isinstance(kept, Checkpoint) else None  # (a path's parent always is)
        cp = Checkpoint(state, parent, keys, self, self.count, self.tracked)
        if self.forced:
            cp.up = self._nearest(parent)
        self.count += 1
        self.kept += 1
        self.open += 1
        self.by_fingerprint.setdefault(keys[0], []).append(cp)
        return cp

    def _nearest(self, kept: Kept | None) -> Checkpoint | None:
        """The nearest checkpoint of this prune point at or above ``kept`` on its path."""
        cp = kept if isinstance(kept, Checkpoint) else None
        while cp is not None and cp.point is not self:
            cp = cp.parent
        return cp

    def close(self, cp: Checkpoint) -> None:
        """Every path from ``cp`` is explored: it may now prune the states it covers."""
        self.open -= 1
        state = cp.state
        if state is None:
            raise VerifierBug(f"the program's entry closed as a checkpoint of insn {self.slot}")
        cp.proven_pkt = min(state.pkt_len, cp.pkt_need)
        cp.proven_meta = min(state.meta_len, cp.meta_need)
        shape = cp.keys[1]
        if RegType.NOT_INIT in shape[1::2]:
            group = self.closed_any_shape
        else:
            group = self.closed.setdefault(shape, [])
        insort(group, cp, key=_proven_packet)


def _proven_packet(cp: Checkpoint) -> int:
    """The packet length a new state must have proven to be covered (0: any will do)."""
    return cp.proven_pkt


def finish(kept: Kept | None) -> None:
    """A path ended: checkpoints whose paths are all explored become closed."""
    cp = kept if isinstance(kept, Checkpoint) else None  # (a path's parent always is one)
    while cp is not None:
        cp.branches -= 1
        if cp.branches > 0:
            return
        if cp.point is not None:
            cp.point.close(cp)
        cp = cp.parent
