"""``bpf_loop`` in the engines: a helper that calls back into the program.

As in Linux, ``bpf_loop(nr_loops, callback_fn, callback_ctx, flags)`` fails with -EINVAL
when ``flags`` is not 0 and with -E2BIG when ``nr_loops`` (a u32) exceeds BPF_MAX_LOOPS;
otherwise it calls ``callback_fn(index, callback_ctx)`` (R3-R5 zero) for index 0, 1, ...
until ``nr_loops`` calls were made or one returned non-zero, and returns how many calls it
made. ``callback_fn`` is what ``lddw func`` loads: the callback's first slot.

The reference interpreter runs callbacks in its one instruction loop: the call pushes a
frame that remembers the loop (``LoopRun``), and the callback's ``exit`` either starts the
next call in a fresh frame at the same depth or returns to after the helper call. So every
callback instruction counts against the run's step budget and is traced, and each call is
one more frame against ``max_call_frames``, as a local call is. The fast engine calls the
callback's Python function in a loop (``compiler.py``), checking the budget each time.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Container
from typing import Any

from ..helpers.prototypes import BPF_MAX_LOOPS
from .alu import M32, M64
from .errors import ExecutionError
from .memory import REGION_SHIFT
from .provenance import TAG

_EINVAL = -errno.EINVAL & M64
_E2BIG = -errno.E2BIG & M64

Step = Callable[[list[int], Any], int]


def loop_refusal(nr_loops: int, flags: int) -> int | None:
    """What ``bpf_loop`` returns without calling back (an error, or 0 for no loops), or None
    when it runs the callback."""
    if flags:
        return _EINVAL
    count = nr_loops & M32
    if count > BPF_MAX_LOOPS:
        return _E2BIG
    return 0 if count == 0 else None


class LoopRun:
    """One ``bpf_loop`` call under way: the frame its callback runs in remembers it."""

    __slots__ = ("target", "index", "count", "ctx", "ctx_tag", "args")

    def __init__(self, target: int, count: int, ctx: int, ctx_tag: int,
                 args: tuple[int, ...] = ()) -> None:
        self.target = target
        self.index = 0
        self.count = count
        self.ctx = ctx
        self.ctx_tag = ctx_tag
        #: the caller's R1-R5 at the call, which it holds until the helper returns (the
        #: soundness oracle reads them, as the verifier keeps them)
        self.args = args

    def enter(self, r: list[int], ex: Any) -> int:
        """Start the callback for ``index`` in a fresh frame at the current depth."""
        frame = ex.stack_for(len(ex.frames))
        r[1], r[2], r[3], r[4], r[5] = self.index, self.ctx, 0, 0, 0
        r[10] = frame.end_address
        if len(r) > TAG:
            r[1 + TAG], r[2 + TAG] = 0, self.ctx_tag
            r[3 + TAG] = r[4 + TAG] = r[5 + TAG] = 0
            r[10 + TAG] = frame.base >> REGION_SHIFT
        return self.target


def loop_step(slot: int, subprograms: Callable[[], Container[int]], max_call_frames: int,
              new_frame: Callable[[int, list[int], LoopRun], Any],
              check_args: Callable[[list[int], Any], None] | None) -> Step:
    """The interpreter's step for ``call bpf_loop`` at ``slot``; ``subprograms()`` the
    program's function starts (known once it is laid out); ``new_frame(return_pc,
    regs, run)`` builds the frame that saves the caller's registers, ``check_args`` checks
    the arguments' provenance (None without provenance)."""
    nxt = slot + 1

    def call_loop(r: list[int], ex: Any) -> int:
        if check_args is not None:
            check_args(r, ex)
        result = loop_refusal(r[1], r[4])
        if result is None:
            target = r[2]
            if target not in subprograms():
                raise _error(f"bpf_loop's callback {target:#x} is not a subprogram of the "
                             "program", slot)
            if len(ex.frames) + 1 >= max_call_frames:
                raise _error(f"the call stack is too deep: more than {max_call_frames} "
                             "frames", slot)
            run = LoopRun(target, r[1] & M32, r[3], r[3 + TAG] if len(r) > TAG else 0,
                          (r[1], r[2], r[3], r[4], r[5]))
            ex.frames.append(new_frame(nxt, r, run))
            return run.enter(r, ex)
        r[0] = result
        r[1] = r[2] = r[3] = r[4] = r[5] = 0
        if len(r) > TAG:
            r[TAG] = r[1 + TAG] = r[2 + TAG] = r[3 + TAG] = r[4 + TAG] = r[5 + TAG] = 0
        return nxt
    return call_loop


def loop_exit(r: list[int], ex: Any, frame: Any) -> int | None:
    """A callback's ``exit``: the next call's first slot (the frame pushed back), or None
    when the loop is over (R0 = the calls made, R1-R5 cleared; the caller restores the
    rest)."""
    run: LoopRun = frame.loop
    run.index += 1
    if not r[0] and run.index < run.count:
        ex.frames.append(frame)
        return run.enter(r, ex)
    r[0] = run.index
    r[1] = r[2] = r[3] = r[4] = r[5] = 0
    if len(r) > TAG:
        r[TAG] = r[1 + TAG] = r[2 + TAG] = r[3 + TAG] = r[4 + TAG] = r[5 + TAG] = 0
    return None


def _error(reason: str, slot: int) -> Exception:
    return ExecutionError(reason, insn_index=slot)
