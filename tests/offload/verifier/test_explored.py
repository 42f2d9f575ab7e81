"""Prune-point bookkeeping: the indexed lookups answer as a scan of the list in order would."""

from __future__ import annotations

import pytest

from offload.isa import assemble
from offload.verifier.explored import EXPLORE, LOOP, PRUNED, Checkpoint, PrunePoint, finish
from offload.verifier.program import layout
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


def _fixture_programs():
    from pathlib import Path

    from offload.loader import load_object
    from offload.program import resolve_map_references

    for path in sorted((Path(__file__).resolve().parents[3] / "fixtures" / "xdp").glob("**/*.o")):
        obj = load_object(path)
        handles = {name: i + 1 for i, name in enumerate(obj.maps)}
        specs = {handles[name]: spec for name, spec in obj.maps.items()}
        for name, prog in obj.programs.items():
            insns = resolve_map_references(prog.instructions, prog.map_refs, handles,
                                           program=name)
            yield f"{path.stem}:{name}", insns, prog, specs


@pytest.mark.parametrize("state_freq", [False, True], ids=["sparse", "every-point"])
def test_a_plan_answers_as_the_full_comparison_on_every_fixture(monkeypatch, state_freq):
    """``prune.Plan`` (a closed checkpoint's comparison worked out once, failing checks
    first) must answer exactly as ``covers``: every fixture verifies with both asked on every
    state tried, precision tracking on and off, and a difference is a verifier bug."""
    from offload.verifier import VerifierError, explored, verify

    monkeypatch.setattr(explored, "CROSS_CHECK", True)
    tried = 0
    for name, insns, prog, specs in _fixture_programs():
        for precision in (True, False):
            try:
                stats = verify(insns, prog_type=prog.type, caps=FULL, maps=specs,
                               log_level=0, precision=precision, state_freq=state_freq,
                               expected_attach_type=prog.expected_attach_type)
            except VerifierError as err:  # some fixtures are refused on purpose
                assert "pruning plan" not in err.reason, (name, err.reason)
                continue
            tried += stats.total_states
    assert tried > 1000


def test_checkpoints_are_kept_after_two_jumps_and_eight_instructions():
    """Not every prune point keeps its state (the kernel's rule): a chain of short branches
    keeps about one checkpoint per two branches and eight instructions; with
    ``state_freq`` every prune point visited not pruned keeps one."""
    from offload.verifier import verify
    from offload.verifier.explored import worth_keeping

    assert not worth_keeping(1, 50, False) and not worth_keeping(5, 7, False)
    assert worth_keeping(2, 8, False)
    # in a loop: only after 20 jumps or 100 instructions
    assert not worth_keeping(19, 99, True)
    assert worth_keeping(20, 0, True) and worth_keeping(0, 100, True)
    body = "\n".join(f"ldxb %r3, [%r2+{i}]\njgt %r3, 7, +1\nadd %r4, 1" for i in range(40))
    text = ("ldxw %r2, [%r1+0]\nldxw %r5, [%r1+4]\nmov %r4, 0\nmov %r3, %r2\nadd %r3, 40\n"
            f"jgt %r3, %r5, out\n{body}\nout:\nmov %r0, 2\nexit")
    sparse = verify(assemble(text), caps=FULL, log_level=0)
    every = verify(assemble(text), caps=FULL, log_level=0, state_freq=True)
    assert every.total_states > 1.5 * sparse.total_states > 0
    # fewer checkpoints prune less: the price of keeping fewer
    assert sparse.insns_processed > every.insns_processed


def test_a_loop_keeps_a_checkpoint_at_least_every_hundred_instructions():
    """An unbounded loop is still refused, within the instruction limit: iterations keep
    checkpoints sparsely, and an open one equal to a later state is an infinite loop."""
    from offload.verifier import VerifierError, verify

    text = ("call 7\nmov %r1, %r0\nloop:\nmov %r2, 1\njeq %r1, 0, loop\n"
            "mov %r0, 2\nexit")
    with pytest.raises(VerifierError, match="infinite loop detected") as refused:
        verify(assemble(text), caps=FULL, log_level=0)
    assert refused.value.insn_index in (2, 3)
