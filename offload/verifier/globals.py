"""Global functions: verified once, on their own, and called by their BTF prototype.

Linux verifies a subprogram whose BTF ``func_info`` says GLOBAL apart from its callers
(``do_check_common`` for it, after the main program, once for every program that calls it):
it starts with its arguments typed from the prototype - a number, the context, or ``size``
bytes of memory that may be NULL, so the function must check it (or may not be, with the
``arg:nonnull`` tag, and every call must pass memory) - with an empty stack and no
packet range, and must return a number. A call to it checks each argument against the
prototype (``btf_check_subprog_call``) as a helper's memory argument is checked, read and
written; then the caller goes on with R0 an unknown number and R1-R5 unreadable: the stack
behind a memory argument holds unknown numbers, and if the function may change the packet
(a helper that moves it, anywhere below it) every packet pointer is gone. No global function
may be called while a ``bpf_spin_lock`` is held, and none may be a callback.

Static subprograms, and every subprogram of a program without ``func_info``, are still
verified at each call with the caller's state (``calls.enter_function``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..helpers.prototypes import READ_WRITE, HelperId, HelperProto, prototype
from ..program import ArgKind, FuncArg, FuncInfo
from . import locks, ops, refs
from .alu import read_reg
from .callbacks import under_callback
from .calls import clear_packet_pointers
from .env import Env
from .memory import HelperWrite, check_helper_mem
from .program import Program
from .reject import Reject
from .state import NOT_INIT, NOT_NULL, SCALAR, TYPE_NAMES, UNKNOWN, Frame, Reg, RegType, State

_MEM_ARGS = frozenset({RegType.PTR_TO_STACK, RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META,
                       RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_VALUE_OR_NULL,
                       RegType.PTR_TO_RINGBUF_MEM, RegType.PTR_TO_RINGBUF_MEM_OR_NULL,
                       RegType.PTR_TO_MEM, RegType.PTR_TO_MEM_OR_NULL})


@dataclass(frozen=True, slots=True)
class GlobalFunc:
    """A global subprogram: ``index`` is the kernel's func#N (subprograms by address, the
    main one 0), ``problem`` the kernel's reason its prototype cannot be used, if any."""

    slot: int
    index: int
    name: str
    args: tuple[FuncArg, ...]
    problem: str
    changes_pkt_data: bool
    tail_calls: bool  # it may make a tail call, itself or below it


def global_functions(prog: Program, functions: Iterable[FuncInfo]) -> dict[int, GlobalFunc]:
    """First slot -> the program's global subprograms (the main one never counts)."""
    found = {}
    moving = _reaching(prog, lambda proto: proto.changes_pkt_data)
    tailing = _reaching(prog, lambda proto: proto.id == HelperId.TAIL_CALL)
    for info in functions:
        if info.slot == 0 or not info.is_global or info.slot not in prog.subprogs:
            continue
        proto = info.proto
        if proto is None:
            continue
        found[info.slot] = GlobalFunc(info.slot, prog.subprogs.index(info.slot), info.name,
                                      proto.args, proto.problem, info.slot in moving,
                                      info.slot in tailing)
    return found


def _reaching(prog: Program, wanted: Callable[[HelperProto], bool]) -> set[int]:
    """Functions that may call a helper ``wanted`` picks, themselves or through anything they
    call or run as a callback: one that changes packet data (the kernel's
    ``changes_pkt_data`` of a subprogram), ``bpf_tail_call``."""
    calls: dict[int, set[int]] = {fn: set() for fn in prog.subprogs}
    movers = set()
    for slot, op in enumerate(prog.ops):
        if op is None:
            continue
        fn = prog.subprog_of[slot]
        if op.kind == ops.LOCAL_CALL:
            calls[fn].add(slot + 1 + op.imm)
        elif op.kind == ops.HELPER_CALL:
            proto = prototype(op.imm)
            if proto is not None and wanted(proto):
                movers.add(fn)
    for slot, target in prog.func_refs:
        calls[prog.subprog_of[slot]].add(target)
    changed = True
    while changed:
        changed = False
        for fn, callees in calls.items():
            if fn not in movers and callees & movers:
                movers.add(fn)
                changed = True
    return movers


def entry_state(env: Env, fn: GlobalFunc) -> State:
    """The state a global function is verified from: its own frame 0, arguments typed from
    the prototype (memory maybe-NULL, each with an id for its null check)."""
    regs = [NOT_INIT] * 11
    for i, arg in enumerate(fn.args):
        if arg.kind == ArgKind.SCALAR:
            regs[i + 1] = UNKNOWN
        elif arg.kind == ArgKind.CTX:
            regs[i + 1] = Reg(RegType.PTR_TO_CTX)
        elif arg.kind == ArgKind.MEM_NONNULL:  # every caller passed memory, never NULL
            regs[i + 1] = Reg(RegType.PTR_TO_MEM, range=arg.size)
        else:
            regs[i + 1] = Reg(RegType.PTR_TO_MEM_OR_NULL, range=arg.size, id=env.next_id())
    regs[10] = Reg(RegType.PTR_TO_STACK)
    return State([Frame(regs, {}, -1, fn.slot, 0)], 0, 0, fn.slot, None, None)


def check_call(env: Env, state: State, fn: GlobalFunc) -> None:
    """A call of global function ``fn``: the arguments against its prototype, then what the
    caller may assume afterwards."""
    if state.lock is not None:
        raise Reject("global function calls are not allowed while holding a lock, use static "
                     "function instead")
    if fn.problem:
        raise Reject(f"{_invalid(fn)}: {fn.problem}")
    if fn.tail_calls and under_callback(env.prog, state):
        # verified on its own, the function cannot tell it runs under bpf_loop
        raise Reject(f"bpf_tail_call is not allowed in a callback: {fn.name}() may make one")
    writes = []
    for i, arg in enumerate(fn.args):
        regno = i + 1
        try:
            write = _check_arg(env, state, regno, arg, i)
        except Reject as err:
            raise Reject(f"{_invalid(fn)}: {err.reason}") from None
        if write is not None:
            writes.append(write)
    for write in writes:  # what the function may write through its memory arguments
        write()
    frame = state.frame
    for r in range(1, 6):
        frame.regs[r] = NOT_INIT
    frame.regs[0] = UNKNOWN
    if fn.changes_pkt_data:
        clear_packet_pointers(state)


def _invalid(fn: GlobalFunc) -> str:
    return f"Caller passes invalid args into func#{fn.index} ('{fn.name}')"


def _check_arg(env: Env, state: State, regno: int, arg: FuncArg, index: int) -> HelperWrite:
    """One argument against its prototype type; a memory argument is checked as a helper's
    that reads and writes ``size`` bytes (the kernel's ``check_mem_reg``), and the caller's
    stack it may write is returned, to forget once every argument is checked."""
    reg = read_reg(state, regno)
    if arg.kind == ArgKind.SCALAR:
        if reg.type != SCALAR:
            raise Reject(f"R{regno} is not a scalar")
        return None
    if arg.kind == ArgKind.CTX:
        if reg.type != RegType.PTR_TO_CTX:
            raise Reject(f"arg#{index} expects pointer to ctx")
        if reg.off or not reg.var.is_const or reg.var.value:
            raise Reject(f"dereference of modified ctx ptr R{regno} off={reg.off} disallowed")
        return None
    nonnull = arg.kind == ArgKind.MEM_NONNULL
    if reg.type == SCALAR:
        env.demand(state, regno)  # NULL is allowed (not with arg:nonnull); no other number
        if reg.is_const and reg.var.value == 0:
            if nonnull:
                raise Reject(f"arg#{index} is expected to be non-NULL")
            return None
        raise Reject(f"R{regno} type=scalar expected=fp")
    if reg.type not in _MEM_ARGS:
        raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=fp")
    checked = reg._replace(type=NOT_NULL.get(reg.type, reg.type))  # NULL is passed on as is
    env.demand(state, regno)
    env.mem_passed.add((checked.type, checked.map_handle, checked.map))
    write = check_helper_mem(env, state, regno, checked, arg.size, mode=READ_WRITE)
    if nonnull and reg.type in NOT_NULL:  # after the size, as the kernel checks it
        raise Reject(f"arg#{index} is expected to be non-NULL")
    return write


def check_exit(env: Env, state: State) -> None:
    """``exit`` of a global function verified on its own: no lock, no reference left (it
    got none and must give back what it took), R0 a number (the kernel's
    ``check_return_code`` for a subprogram)."""
    locks.check_exit(state)
    refs.check_released(state)
    r0 = state.frame.regs[0]
    if r0.type == RegType.NOT_INIT:
        raise Reject("R0 !read_ok")
    if r0.type != SCALAR:  # unprivileged, a pointer is a leak first (privileged: "At
        # subprogram exit the register R0 is not a scalar value")
        raise Reject("R0 leaks addr as return value")
