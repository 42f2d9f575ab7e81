"""Acquired references: objects a program holds and must give back on every path.

A helper that *acquires* (a socket lookup, a ring buffer reservation) returns a pointer to an
object the program must release again (``bpf_sk_release``, ``bpf_ringbuf_submit`` or
``_discard``) before it ends, as the kernel's reference tracking requires. The state keeps one
``Ref`` per acquisition: a fresh id and the instruction that acquired it (``alloc_insn`` in
the kernel's words). Every register or spilled copy of the pointer carries the id as
``Reg.ref``:

- a NULL check proves every copy sharing the pointer's id NULL or not (``branch``); on the
  NULL side there is nothing to release and the reference is dropped;
- a release takes the unmodified pointer and makes every copy, in every frame, unreadable, so
  the object is never used, nor released, again;
- ``exit`` from the program, and a tail call, refuse while a reference is held; a return
  from a bpf-to-bpf call does not, since caller and callee share the references.

Pruning compares reference sets: the same number, in order, with ids in the one-to-one
correspondence the registers use (the kernel's ``refsafe``).
"""

from __future__ import annotations

from typing import NamedTuple

from .reject import Reject
from .state import NOT_INIT, POINTERS, Reg, State


class Ref(NamedTuple):
    """One acquired object: its id and the instruction that acquired it."""

    id: int
    insn: int


def acquire(state: State, ref_id: int, insn: int) -> None:
    """The path now holds the object ``ref_id`` acquired at ``insn``."""
    state.refs = (*state.refs, Ref(ref_id, insn))


def holds(state: State, ref_id: int) -> bool:
    return any(ref.id == ref_id for ref in state.refs)


def drop(state: State, ref_id: int) -> None:
    """Forget ``ref_id`` without touching registers (a NULL result holds nothing)."""
    state.refs = tuple(ref for ref in state.refs if ref.id != ref_id)


def release(state: State, ref_id: int) -> bool:
    """Give ``ref_id`` back: every register and spilled copy derived from it becomes
    unreadable (NOT_INIT, as for an unprivileged loader). False if the path does not hold it."""
    if not holds(state, ref_id):
        return False
    drop(state, ref_id)

    def invalidate(reg: Reg) -> Reg:
        return NOT_INIT if reg.ref == ref_id else reg

    state.map_regs(invalidate, POINTERS)
    return True


def unreleased(state: State) -> str | None:
    """The kernel's words for the references still held, or None."""
    if not state.refs:
        return None
    return "; ".join(f"Unreleased reference id={ref.id} alloc_insn={ref.insn}"
                     for ref in state.refs)


def check_released(state: State, why: str = "") -> None:
    """Refuse if the path still holds a reference (at ``exit``, before a tail call)."""
    leaked = unreleased(state)
    if leaked is not None:
        raise Reject(leaked + (f" ({why})" if why else ""))


def refs_cover(old: tuple[Ref, ...], cur: tuple[Ref, ...], same) -> bool:
    """Whether the current references match the old ones: as many, in order, each id in the
    correspondence ``same(old_id, cur_id)`` (an ``IdMap``) keeps."""
    if len(old) != len(cur):
        return False
    return all(same(o.id, c.id) for o, c in zip(old, cur))
