"""Callbacks: subprogram addresses (``lddw func``) and ``bpf_loop``, which calls one.

``lddw func`` loads PTR_TO_FUNC: a pointer to the subprogram starting at ``Reg.off`` that
nothing may read, write, compare or move; only a helper that takes a callback takes it.

``bpf_loop(nr_loops, callback_fn, callback_ctx, flags)`` runs ``callback_fn(index, ctx)``
for index 0, 1, ... until it has run ``nr_loops`` times or the callback returns 1. It is
verified as Linux (6.8 and later) verifies it, with the callback run an unknown number of
times rather than summarised:

* At the call, the path goes on after it as if the callback ran no (more) times, and a
  second path enters the callback in a new frame: R1 the index (a u32), R2 ``callback_ctx``
  (a pointer into a caller's stack, or NULL), R3-R5 unreadable. The callback reaches the
  caller's stack only through that pointer.
* The callback's ``exit`` needs a number in [0, 1] in R0 and goes back to the helper call
  itself, whose arguments the caller still holds: the call is checked again with the stack
  as the callback left it, which starts the next run and the path that stops there.
* The caller's frame counts the runs on its path (``Frame.cb_depth``, the kernel's
  ``callback_depth``); no run starts once it reaches the most ``nr_loops`` can be (capped
  at BPF_MAX_LOOPS, past which the helper fails with -E2BIG), so a loop of a known count
  is explored that many times. ``nr_loops`` is thus demanded precise.
* The call is a prune point that always keeps its state; a state there that an open
  checkpoint on its own path covers (every scalar compared) is pruned: further runs change
  nothing the earlier ones did not explore (``explored.py``). That is how a loop of an
  unknown count converges, as in the kernel. A state with more runs behind it is never
  covered by one with fewer (``prune.covers``).

So the path after the call is explored after 0, 1, ... runs until the states converge or
``nr_loops`` is reached: every number of runs the helper may make is covered.

``flags`` must be 0 (a known constant): the helper fails with -EINVAL otherwise, and the
device refuses such a call where Linux accepts it (docs/verifier.md). A callback, and what it
calls, may not tail call.
"""

from __future__ import annotations

from ..helpers.prototypes import BPF_MAX_LOOPS, HelperId, helper_name, prototype
from . import locks, ops
from .alu import read_reg
from .env import Env
from .precision import CALL, record
from .program import Program
from .reject import Reject
from .scalar import Scalar
from .state import NOT_INIT, SCALAR, TYPE_NAMES, UNKNOWN, Frame, Reg, RegType, State

#: What a callback returns: 0 to go on, 1 to stop (the kernel's callback_ret_range).
RETURN_RANGE = (0, 1)
_INDEX = Reg(SCALAR, Scalar.urange(0, (1 << 32) - 1))


def func_pointer(target: int) -> Reg:
    """The register ``lddw func`` loads: the subprogram starting at slot ``target``."""
    return Reg(RegType.PTR_TO_FUNC, off=target)


def in_callback(prog: Program, state: State) -> bool:
    """Whether the current frame is a callback's (its ``exit`` returns to a helper call)."""
    return state.frame.callsite in prog.callback_calls


def under_callback(prog: Program, state: State) -> bool:
    """Whether any frame of the state runs a callback (or runs below one)."""
    return any(frame.callsite in prog.callback_calls for frame in state.frames[1:])


def check_tail_call(prog: Program, state: State) -> None:
    """A tail call replaces the running program; from a callback it would leave the loop
    with its frames behind. Linux 6.18 refuses it with a verifier bug (EFAULT); the device
    refuses it in words."""
    if under_callback(prog, state):
        raise Reject("bpf_tail_call is not allowed in a callback: it would end the program "
                     "in the middle of bpf_loop")


def check_callback_call(env: Env, state: State, op: ops.Op, slot: int) -> tuple[State, ...]:
    """A call to ``bpf_loop``: the state after it (no more runs) and, while more runs may
    come, the state entering the callback."""
    hid = op.imm
    locks.check_call(state, hid)  # a callback run still holding one comes back here too
    proto = prototype(hid)
    if proto is None or hid not in env.caps.helpers or hid != HelperId.LOOP:
        raise Reject(f"unknown func {helper_name(hid)}#{hid}: the device does not offer it")
    name = proto.kernel_name
    count = read_reg(state, 1)
    if count.type != SCALAR:
        raise Reject("R1 leaks addr into helper function")
    fn = read_reg(state, 2)
    if fn.type != RegType.PTR_TO_FUNC:
        raise Reject(f"R2 type={TYPE_NAMES[fn.type]} expected=func")
    ctx = read_reg(state, 3)
    if ctx.type == SCALAR:
        if not (ctx.var.is_const and ctx.var.value == 0):
            raise Reject(f"R3 type=scalar expected=fp: {name} takes a stack pointer or NULL")
    elif ctx.type != RegType.PTR_TO_STACK:
        raise Reject(f"R3 type={TYPE_NAMES[ctx.type]} expected=fp")
    flags = read_reg(state, 4)
    if flags.type != SCALAR:
        raise Reject("R4 leaks addr into helper function")
    # the number of runs, a NULL context and the flags decide what is explored
    env.demand(state, 1, 3, 4)
    if not (flags.var.is_const and flags.var.value == 0):
        raise Reject(f"R4 flags of {name} must be 0 (the helper fails with -EINVAL for any "
                     f"other value), not {flags.var}")
    runs = min(count.var.umax, BPF_MAX_LOOPS)
    caller = state.frame
    succ: tuple[State, ...]
    if caller.cb_depth < runs:
        run = state.copy()
        run.frame.cb_depth += 1
        run.callbacks += 1
        _enter_callback(env, run, slot, fn.off, ctx)
        if env.precision is not None:
            record(run, CALL, slot, run.insn)
        succ = (state, run)
    else:
        succ = (state,)
    # the helper returns: no (more) runs on this path
    caller.cb_depth = 0
    regs = caller.regs
    for r in range(1, 6):
        regs[r] = NOT_INIT
    regs[0] = UNKNOWN
    state.insn = slot + 1
    return succ


def _enter_callback(env: Env, state: State, slot: int, target: int, ctx: Reg) -> None:
    if len(state.frames) >= env.caps.limits.max_call_frames:
        raise Reject(f"the call stack of {len(state.frames) + 1} frames is too deep")
    frameno = len(state.frames)
    regs = [NOT_INIT] * 11
    regs[1] = _INDEX
    regs[2] = ctx
    regs[10] = Reg(RegType.PTR_TO_STACK, frameno=frameno)
    state.push(Frame(regs, {}, slot, target, frameno))
    state.insn = target


def leave_callback(env: Env, state: State) -> None:
    """``exit`` from a callback: R0 must be 0 or 1; back to the helper call, which runs the
    callback again or returns."""
    r0 = read_reg(state, 0)
    if r0.type != SCALAR:
        raise Reject("R0 not a scalar value: a callback returns a number")
    env.demand(state, 0)
    lo, hi = RETURN_RANGE
    if r0.var.umax > hi or r0.var.umin < lo:
        raise Reject(f"At callback return the register R0 has {r0._replace(id=0)} should have "
                     f"been in [{lo}, {hi}]")
    callee = state.pop()
    state.insn = callee.callsite
