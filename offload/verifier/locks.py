"""``bpf_spin_lock``: the one lock a path may hold, and what a path may not do while it does.

The kernel's rules (``process_spin_lock`` and its callers), for a lock in a map value:

- the argument of ``bpf_spin_lock``/``bpf_spin_unlock`` is a map value pointer (null-checked)
  at a constant offset, exactly at the ``struct bpf_spin_lock`` the map's value holds;
- a path holds at most one lock; while it does it calls no helper but ``bpf_spin_unlock``
  (static bpf-to-bpf calls are allowed, and the callee is held to the same rules); the program
  does not end with a lock held; an unlock releases the lock held, named by its map and the
  id of the lookup that gave the pointer (copies of one pointer share the id);
- no load, store, atomic or helper memory access touches a lock word.

A held lock is part of the state pruning compares: a state holding a lock is never covered by
one that does not, and the lock ids correspond through the same id map as the registers'.
The device runs one program at a time, so the engines need no mutual exclusion; they check
that each lock is taken and released as the verifier proved (``offload.runtime.xdp``).
"""

from __future__ import annotations

from ..maps.spec import SPIN_LOCK_SIZE, MapSpec
from .reject import Reject, VerifierBug
from .state import TYPE_NAMES, HeldLock, Reg, RegType, State

#: Helper ids (``enum bpf_func_id``).
SPIN_LOCK, SPIN_UNLOCK = 93, 94


def check_arg(regno: int, reg: Reg) -> HeldLock:
    """The lock an argument of ``bpf_spin_lock``/``bpf_spin_unlock`` names."""
    if reg.type != RegType.PTR_TO_MAP_VALUE:
        raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=map_value")
    if not reg.var.is_const:
        raise Reject(f"R{regno} doesn't have constant offset. bpf_spin_lock has to be at the "
                     "constant offset")
    spec = reg.map
    if spec is None:
        raise VerifierBug(f"R{regno} points to a map value without its map")
    if spec.spin_lock_off is None:
        raise Reject(f"map '{spec.name}' has no valid bpf_spin_lock")
    off = reg.off + reg.var.value
    if off != spec.spin_lock_off:
        raise Reject(f"off {off} doesn't point to 'struct bpf_spin_lock' that is at "
                     f"{spec.spin_lock_off}")
    return HeldLock(reg.map_handle, spec, reg.id)


def take(state: State, lock: HeldLock) -> None:
    if state.lock is not None:
        raise Reject("Locking two bpf_spin_locks are not allowed")
    state.lock = lock


def release(state: State, lock: HeldLock) -> None:
    held = state.lock
    if held is None:
        raise Reject("bpf_spin_unlock without taking a lock")
    if held != lock:
        raise Reject("bpf_spin_unlock of different lock")
    state.lock = None


def check_call(state: State, helper_id: int) -> None:
    """A helper call while a lock is held: only the unlock (checked before the helper is
    even looked up, as the kernel does)."""
    if state.lock is not None and helper_id != SPIN_UNLOCK:
        raise Reject("function calls are not allowed while holding a lock")


def check_exit(state: State) -> None:
    """The program's own ``exit`` (a function's return keeps the lock for its caller). Linux
    6.12 and older say "bpf_spin_unlock is missing"; this is the wording of 6.13 and later."""
    if state.lock is not None:
        raise Reject("BPF_EXIT instruction in main prog cannot be used inside "
                     "bpf_spin_lock-ed region")


def check_field(spec: MapSpec, lo: int, hi: int) -> None:
    """An access that may touch bytes [lo, hi) of a value: none of them may be the lock's."""
    off = spec.spin_lock_off
    if off is not None and lo < off + SPIN_LOCK_SIZE and off < hi:
        raise Reject("bpf_spin_lock cannot be accessed directly by load/store")


def covers(old: HeldLock | None, cur: HeldLock | None, ids) -> bool:  # noqa: ANN001
    """Whether the lock ``old`` held (or not) matches ``cur``'s, for pruning: the same map,
    ids both zero or corresponding through the registers' id map."""
    if old is None or cur is None:
        return old is cur
    if old.map_handle != cur.map_handle or old.map != cur.map:
        return False
    if bool(old.id) != bool(cur.id):
        return False
    return not old.id or ids.same(old.id, cur.id)
