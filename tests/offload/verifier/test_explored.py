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
    return point.add(s, parent, point.fingerprint(s))


def test_an_open_equal_state_is_a_loop_and_a_closed_covering_one_prunes():
    root = Checkpoint(None, None)
    point = PrunePoint(PROG, 1)
    five = state(Reg.const(5))
    cp = keep(point, five, root)
    assert point.check(PROG, five, point.fingerprint(five)) == LOOP
    six = state(Reg.const(6))
    assert point.check(PROG, six, point.fingerprint(six)) == EXPLORE
    finish(cp)
    assert cp.branches == 0 and point.closed == [cp]
    assert point.check(PROG, five, point.fingerprint(five)) == PRUNED


def test_the_first_deciding_checkpoint_in_list_order_wins():
    root = Checkpoint(None, None)
    small = state(Reg.scalar(Scalar.urange(0, 10)))
    five = state(Reg.const(5))
    # a closed covering state listed before an open equal one: pruned
    point = PrunePoint(PROG, 1)
    wide = keep(point, small, root)
    keep(point, five, root)
    finish(wide)
    assert point.check(PROG, five, point.fingerprint(five)) == PRUNED
    # the open equal state listed first: an infinite loop, whatever comes after it
    point = PrunePoint(PROG, 1)
    keep(point, five, root)
    wide = keep(point, small, root)
    finish(wide)
    assert point.check(PROG, five, point.fingerprint(five)) == LOOP


def test_closed_checkpoints_stay_in_list_order():
    root = Checkpoint(None, None)
    point = PrunePoint(PROG, 1)
    cps = [keep(point, state(Reg.const(n)), root) for n in range(4)]
    for cp in (cps[2], cps[0], cps[3], cps[1]):
        finish(cp)
    assert point.closed == cps
