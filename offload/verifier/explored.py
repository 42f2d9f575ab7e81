"""The states kept at prune points, and whether a new state there needs exploring.

Like the kernel's ``is_state_visited``, each prune point keeps a list of checkpoints (states
seen there) and a new state is checked against them in list order: a *closed* checkpoint (every
path from it explored) that covers the new state proves it safe; an *open* one (a path from it
still being explored) exactly equal to it is an infinite loop. The first checkpoint in the list
that answers decides.

Scanning the whole list for every state is what made long loops slow (a loop head keeps up to
``max_states_per_insn`` open checkpoints). So open checkpoints are looked up by fingerprint
(equal states have equal fingerprints) and closed ones are kept apart, in list order, giving the
same answer as the scan.
"""

from __future__ import annotations

from bisect import insort

from .cfg import Program
from .prune import covers
from .state import State

#: Verdicts of ``PrunePoint.check``.
EXPLORE, PRUNED, LOOP = 0, 1, 2


class Checkpoint:
    """A state kept at a prune point; ``branches`` counts its paths still being explored."""

    __slots__ = ("state", "branches", "parent", "fingerprint", "point", "index")

    def __init__(self, state: State | None, parent: Checkpoint | None, fingerprint: int = 0,
                 point: PrunePoint | None = None, index: int = 0) -> None:
        self.state = state
        self.branches = 1
        self.parent = parent
        self.fingerprint = fingerprint
        self.point = point  # None for the root, which stands for the program entry
        self.index = index  # position in its prune point's list


class PrunePoint:
    """The checkpoints of one slot: open ones by fingerprint, closed ones by position."""

    __slots__ = ("slot", "regs", "count", "closed", "by_fingerprint")

    def __init__(self, prog: Program, slot: int) -> None:
        self.slot = slot
        #: registers a fingerprint reads: the live ones (r10 is always the frame pointer)
        self.regs = tuple(sorted(r for r in prog.live[slot] if r != 10))
        self.count = 0
        self.closed: list[Checkpoint] = []
        self.by_fingerprint: dict[int, list[Checkpoint]] = {}

    def fingerprint(self, state: State) -> int:
        """Equal for states ``covers(exact=True)`` calls equal: live registers without ids."""
        regs = state.frame.regs
        key = [len(state.frames), state.pkt_len, state.meta_len]
        for r in self.regs:
            reg = regs[r]
            key += (reg.type, reg.var, reg.off, reg.range)
        return hash(tuple(key))

    def check(self, prog: Program, cur: State, fingerprint: int) -> int:
        """EXPLORE, PRUNED or LOOP for ``cur``, as the first deciding checkpoint says."""
        loop_at = self.count  # past the end: no open checkpoint equals ``cur``
        for cp in self.by_fingerprint.get(fingerprint, ()):
            if cp.branches > 0 and covers(prog, cp.state, cur, exact=True):
                loop_at = cp.index
                break
        pkt_len, meta_len = cur.pkt_len, cur.meta_len
        for cp in self.closed:
            if cp.index > loop_at:
                break
            old = cp.state
            # covers() would say no at once: the old state proved more of the packet (a loop
            # over headers leaves many such states); skipping the call saves most of the time
            if old.pkt_len > pkt_len or old.meta_len > meta_len:  # type: ignore[union-attr]
                continue
            if covers(prog, old, cur):  # type: ignore[arg-type]
                return PRUNED
        return LOOP if loop_at < self.count else EXPLORE

    def add(self, state: State, parent: Checkpoint | None, fingerprint: int) -> Checkpoint:
        cp = Checkpoint(state, parent, fingerprint, self, self.count)
        self.count += 1
        self.by_fingerprint.setdefault(fingerprint, []).append(cp)
        return cp


def finish(cp: Checkpoint | None) -> None:
    """A path ended: checkpoints whose paths are all explored become closed."""
    while cp is not None:
        cp.branches -= 1
        if cp.branches > 0:
            return
        if cp.point is not None:
            insort(cp.point.closed, cp, key=_position)
        cp = cp.parent


def _position(cp: Checkpoint) -> int:
    return cp.index
