"""Prune-point bookkeeping: the indexed lookups answer as a scan of the list in order would."""

from __future__ import annotations

from offload.isa import assemble
from offload.verifier.cfg import layout
from offload.verifier.explored import EXPLORE, LOOP, PRUNED, Checkpoint, PrunePoint, finish
from offload.verifier.scalar import Scalar
from offload.verifier.state import NOT_INIT, Frame, Reg, RegType, State

from .suite import FULL

# r1 is live at the loop head (slot 1)
PROG = layout(assemble("mov %r1, 0\nloop:\nadd %r1, 1\njlt %r1, 9, loop\nmov %r0, 2\nexit"),
              FULL)


def state(r1: Reg) -> State:
    regs = [NOT_INIT] * 11
    regs[1] = r1
    regs[10] = Reg(RegType.PTR_TO_STACK)
    return State([Frame(regs, {}, -1, 0, 0)], 0, 0, 1, None, None)


def keep(point: PrunePoint, s: State, parent: Checkpoint) -> Checkpoint:
    return point.add(s, parent, point.keys(s))


def verdict(point: PrunePoint, s: State) -> int:
    return point.check(PROG, s, point.keys(s))


def test_an_open_equal_state_is_a_loop_and_a_closed_covering_one_prunes():
    root = Checkpoint(None, None)
    point = PrunePoint(PROG, 1)
    five = state(Reg.const(5))
    cp = keep(point, five, root)
    assert verdict(point, five) == LOOP
    six = state(Reg.const(6))
    assert verdict(point, six) == EXPLORE
    finish(cp)
    assert cp.branches == 0
    assert verdict(point, five) == PRUNED


def test_the_first_deciding_checkpoint_in_list_order_wins():
    root = Checkpoint(None, None)
    small = state(Reg.scalar(Scalar.urange(0, 10)))
    five = state(Reg.const(5))
    # a closed covering state listed before an open equal one: pruned
    point = PrunePoint(PROG, 1)
    wide = keep(point, small, root)
    keep(point, five, root)
    finish(wide)
    assert verdict(point, five) == PRUNED
    # the open equal state listed first: an infinite loop, whatever comes after it
    point = PrunePoint(PROG, 1)
    keep(point, five, root)
    wide = keep(point, small, root)
    finish(wide)
    assert verdict(point, five) == LOOP


def test_closed_checkpoints_are_found_by_shape_or_an_unset_register():
    root = Checkpoint(None, None)
    point = PrunePoint(PROG, 1)
    packet = Reg(RegType.PTR_TO_PACKET, off=4)
    for cp in [keep(point, state(packet), root), keep(point, state(Reg.const(5)), root)]:
        finish(cp)
    assert verdict(point, state(packet)) == PRUNED
    assert verdict(point, state(packet._replace(off=6))) == EXPLORE  # covers needs equal offsets
    assert verdict(point, state(Reg.const(5))) == PRUNED
    assert verdict(point, state(Reg.const(7))) == EXPLORE
    unset = keep(point, state(NOT_INIT), root)  # r1 never read on the paths from it
    finish(unset)
    assert verdict(point, state(Reg.const(7))) == PRUNED
    assert verdict(point, state(packet._replace(off=6))) == PRUNED


def test_a_full_point_makes_room_by_evicting_the_least_useful_closed_checkpoint():
    """Checkpoints no state of their shape meets again never miss, so misses alone never
    evict them: a full point evicts the closed one that pruned least, the oldest first."""
    root = Checkpoint(None, None)
    point = PrunePoint(PROG, 1)
    useful = keep(point, state(Reg.const(1)), root)
    idle = [keep(point, state(Reg.const(v)), root) for v in (2, 3)]
    for cp in (useful, *idle):
        finish(cp)
    assert verdict(point, state(Reg.const(1))) == PRUNED  # a hit for ``useful``
    assert point.kept == 3
    assert point.make_room() and point.kept == 2
    assert verdict(point, state(Reg.const(2))) == EXPLORE  # the oldest idle one went
    assert verdict(point, state(Reg.const(3))) == PRUNED
    assert verdict(point, state(Reg.const(1))) == PRUNED
    # open checkpoints are never evicted
    point = PrunePoint(PROG, 1)
    keep(point, state(Reg.const(1)), root)
    assert not point.make_room() and point.kept == 1



def test_a_checkpoint_that_may_read_any_slot_passes_that_on_to_what_it_prunes():
    """Pruned by a checkpoint whose paths may read anything (``liveness.ALL_SLOTS``), a state's
    own checkpoints must compare every slot too: an empty set to iterate says nothing."""
    from offload.verifier import liveness

    root = Checkpoint(None, None)
    point = PrunePoint(PROG, 1, tracked=True)
    parent = keep(point, state(Reg.const(1)), root)
    old = keep(point, state(Reg.const(2)), root)
    old.stack_read = liveness.ALL_SLOTS
    cur = state(Reg.const(2))
    cur.parent = parent
    liveness.inherit(cur, old)
    assert parent.stack_read is liveness.ALL_SLOTS
