"""Calls and returns: helper prototypes, bpf-to-bpf frames, and the rules at ``exit``.

Helper arguments are checked against ``offload.helpers.prototypes`` the way the kernel's
``check_func_arg`` does (map pointer first, then key/value memory of the map's sizes, memory
of a fixed size or plus a bounded size argument, context; packet memory only for helpers that
take it; no changes to maps programs may only read); afterwards R1-R5 are unreadable and R0
holds what the prototype returns, and the stack it may have written holds unknown numbers
(``memory.check_helper_mem``). A local call gets a fresh frame with R1-R5 passed in and its
own stack; ``exit`` from it restores the caller with R6-R9 preserved. ``bpf_spin_lock`` and
its rules are in ``locks``.

Helpers that acquire an object (a socket lookup, a ring buffer reservation) give R0 a
reference the path then holds, and helpers that release one take the unmodified pointer and
invalidate every copy of it (``refs``); a tail call, or ``exit`` from the program, with a
reference still held is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from ..helpers.prototypes import (
    MAP_TYPE_HELPERS,
    REFUSED_HELPERS,
    Arg,
    ArgType,
    HelperId,
    HelperProto,
    RetType,
    helper_name,
    prototype,
)
from ..maps.spec import MapSpec
from ..uapi import XdpAction
from . import locks, refs
from .alu import read_reg
from .env import Env
from .memory import HelperWrite, check_helper_mem, map_can_write
from .ops import Op
from .reject import Reject, VerifierBug
from .scalar import Scalar
from .state import NOT_INIT, SOCKETS, TYPE_NAMES, UNKNOWN, Frame, Reg, RegType, State

_MEM_TYPES = "fp, pkt, pkt_meta, map_value, ringbuf_mem, mem"
_MEM_REG_TYPES = frozenset({RegType.PTR_TO_STACK, RegType.PTR_TO_PACKET,
                            RegType.PTR_TO_PACKET_META, RegType.PTR_TO_MAP_VALUE,
                            RegType.PTR_TO_RINGBUF_MEM, RegType.PTR_TO_MEM})
#: What R0 of an acquiring helper is, before its null check.
_ACQUIRED = {RetType.PTR_TO_SOCKET_OR_NULL: RegType.PTR_TO_SOCKET_OR_NULL,
             RetType.PTR_TO_SOCK_COMMON_OR_NULL: RegType.PTR_TO_SOCK_COMMON_OR_NULL,
             RetType.PTR_TO_RINGBUF_MEM_OR_NULL: RegType.PTR_TO_RINGBUF_MEM_OR_NULL}
_PKT_TYPES = frozenset({RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META,
                        RegType.PTR_TO_PACKET_END})
#: Pointers into the packet that only helpers with ``pkt_access`` take as arguments.
_PKT_ARG_TYPES = frozenset({RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META})


def check_helper_call(env: Env, state: State, insn: Op) -> None:
    hid = insn.imm
    locks.check_call(state, hid)
    proto = prototype(hid)
    refused = REFUSED_HELPERS.get(hid)
    if refused is not None:
        raise Reject(f"unknown func {helper_name(hid)}#{hid}: the device does not offer it: "
                     f"{refused}")
    if proto is None or hid not in env.caps.helpers:
        why = "" if proto is None else ": the device does not offer it"
        raise Reject(f"unknown func {helper_name(hid)}#{hid}{why}")
    if proto.gpl_only and not env.gpl_compatible:
        raise Reject("cannot call GPL-restricted function from non-GPL compatible program")
    if proto.prog_types is not None and env.prog_type not in proto.prog_types:
        raise Reject(f"unknown func {proto.kernel_name}#{hid}: not available to "
                     f"{env.prog_type.name} programs")
    map_reg, writes, released, alloc_size = _check_args(env, state, proto)
    if released:
        # every copy of the object goes, spilled ones and the callers' too (release_reference)
        if not refs.release(state, released):
            raise Reject(f"func {proto.kernel_name}#{hid} reference has not been acquired "
                         "before")
    if hid == HelperId.TAIL_CALL:
        refs.check_released(state, "tail_call would lead to reference leak")
    for write in writes:  # the helper runs: what it may write is unknown from now on
        write()
    if hid == locks.SPIN_LOCK:
        locks.take(state, locks.check_arg(1, state.frame.regs[1]))
    elif hid == locks.SPIN_UNLOCK:
        locks.release(state, locks.check_arg(1, state.frame.regs[1]))
    frame = state.frame
    for r in range(1, 6):
        frame.regs[r] = NOT_INIT
    if proto.ret == RetType.INTEGER:
        frame.regs[0] = UNKNOWN if proto.ret_range is None else \
            Reg(RegType.SCALAR, Scalar.urange(*proto.ret_range))
    elif proto.ret == RetType.VOID:
        frame.regs[0] = NOT_INIT
    elif proto.acquires:
        # a maybe-NULL result gets an id for its null check, then the reference's id replaces
        # it (as the kernel numbers them: the first reference of a program is id=2)
        env.next_id()
        ref_id = env.next_id()
        refs.acquire(state, ref_id, state.insn)
        frame.regs[0] = Reg(_ACQUIRED[proto.ret], id=ref_id, ref=ref_id, range=alloc_size)
    else:
        outer = map_reg.map if map_reg is not None else None
        if map_reg is None or outer is None:
            raise VerifierBug(f"{proto.kernel_name}#{hid} returns a map value but "
                              "took no map")
        if outer.type.is_map_in_map:
            if outer.inner is None:
                raise Reject(f"map-in-map '{outer.name}' has no inner map template")
            frame.regs[0] = Reg(RegType.CONST_PTR_TO_MAP_OR_NULL, map=outer.inner,
                                map_handle=map_reg.map_handle, id=env.next_id())
        else:
            frame.regs[0] = Reg(RegType.PTR_TO_MAP_VALUE_OR_NULL, map=outer,
                                map_handle=map_reg.map_handle, id=env.next_id())
    if proto.changes_pkt_data:
        clear_packet_pointers(state)


def clear_packet_pointers(state: State) -> None:
    """The packet moved: every pointer into it is gone (unprivileged: unreadable)."""
    state.pkt_len = 0
    state.meta_len = 0
    state.map_regs(lambda r: NOT_INIT, _PKT_TYPES)


def _check_args(env: Env, state: State, proto: HelperProto
                ) -> tuple[Reg | None, list[Callable[[], None]], int, int]:
    """Check R1-R5 against the prototype; the map argument, if any, the stack writes the
    helper may make (made by the caller once every argument is checked), the reference it
    releases (0 for none) and the size it allocates."""
    writes: list[Callable[[], None]] = []
    map_reg: Reg | None = None
    map_spec: MapSpec | None = None
    released = alloc_size = 0
    ref_regno = 0  # the argument that carried a reference, if one did
    args = proto.args
    for i, arg in enumerate(args):
        regno = i + 1
        if arg.type == ArgType.DONTCARE:
            continue
        if arg.pointer_ok and state.frame.regs[regno].type == RegType.NOT_INIT:
            continue  # a printed argument the format need not use: the kernel never reads it
        reg = read_reg(state, regno)
        t = arg.type
        write: HelperWrite = None
        if reg.ref and t != ArgType.ANYTHING:
            if ref_regno:  # the kernel's "more than one arg with ref_obj_id"
                raise Reject(f"more than one arg with ref_obj_id R{regno} {reg.ref} "
                             f"{state.frame.regs[ref_regno].ref}")
            ref_regno = regno
        if t == ArgType.ANYTHING:
            if reg.type != RegType.SCALAR and not arg.pointer_ok:
                raise Reject(f"R{regno} leaks addr into helper function")
            continue
        if reg.type in _PKT_ARG_TYPES and not proto.pkt_access:
            raise Reject(f"helper access to the packet is not allowed: R{regno} points into "
                         f"the packet and {proto.kernel_name} does not take packet memory")
        if t == ArgType.CONST_MAP_PTR:
            if reg.type != RegType.CONST_PTR_TO_MAP:
                if reg.type == RegType.CONST_PTR_TO_MAP_OR_NULL:
                    raise Reject(f"R{regno} type=map_ptr_or_null expected=map_ptr: null-check "
                                 "the inner map first")
                raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=map_ptr")
            if reg.map is None:
                raise VerifierBug(f"R{regno} is a map pointer without its map")
            map_spec = reg.map
            map_reg = reg
            _check_map_compat(proto, reg.map)
            if proto.writes_map and not map_can_write(reg.map):
                raise Reject(f"write into map forbidden: {proto.kernel_name} changes map "
                             f"'{reg.map.name}', which programs may only read")
        elif t == ArgType.PTR_TO_CTX:
            if reg.type != RegType.PTR_TO_CTX:
                raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=ctx")
            if reg.off or not reg.var.is_const or reg.var.value:
                raise Reject(f"dereference of modified ctx ptr R{regno} off={reg.off} "
                             "disallowed")
        elif t in (ArgType.PTR_TO_MAP_KEY, ArgType.PTR_TO_MAP_VALUE,
                   ArgType.PTR_TO_UNINIT_MAP_VALUE):
            if map_spec is None:
                what = "key" if t == ArgType.PTR_TO_MAP_KEY else "value"
                raise VerifierBug(f"{proto.kernel_name} takes a map {what} in R{regno} "
                                  "before its map")
            _expect_mem(reg, regno)
            size = map_spec.key_size if t == ArgType.PTR_TO_MAP_KEY else map_spec.value_size
            write = check_helper_mem(env, state, regno, reg, size, mode=arg.access)
        elif t in (ArgType.PTR_TO_MEM, ArgType.PTR_TO_UNINIT_MEM):
            if arg.size:
                write = _fixed_mem(env, state, regno, reg, arg)
            else:
                write = _mem_and_size(env, state, regno, reg, arg,
                                      args[i + 1] if i + 1 < len(args) else None, proto)
        elif t == ArgType.PTR_TO_SPIN_LOCK:
            locks.check_arg(regno, reg)
        elif t in (ArgType.CONST_SIZE, ArgType.CONST_SIZE_OR_ZERO):
            if reg.type != RegType.SCALAR:
                raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=scalar")
            env.demand(state, regno)
        elif t == ArgType.CONST_ALLOC_SIZE_OR_ZERO:
            if reg.type != RegType.SCALAR:
                raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=scalar")
            if not reg.var.is_const:
                raise Reject(f"R{regno} is not a known constant'")
            env.demand(state, regno)
            alloc_size = reg.var.value
        elif t in (ArgType.PTR_TO_SOCK_COMMON, ArgType.PTR_TO_RINGBUF_MEM):
            _check_object(reg, regno, arg)
            if arg.release:
                if not reg.ref:
                    raise Reject(f"R{regno} must be referenced when passed to release "
                                 "function")
                released = reg.ref
        else:
            raise VerifierBug(f"{proto.kernel_name} has argument kind {t.name}, "
                              "which the verifier does not check")
        if write is not None:
            writes.append(write)
            write = None
    return map_reg, writes, released, alloc_size


def _expect_mem(reg: Reg, regno: int) -> None:
    if reg.type not in _MEM_REG_TYPES:
        raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected={_MEM_TYPES}")


def _check_object(reg: Reg, regno: int, arg: Arg) -> None:
    """A socket or a ring buffer reservation handed to a helper: of the right type, not NULL
    (null-checked first), and the object itself; a released one also unmodified."""
    if arg.type == ArgType.PTR_TO_SOCK_COMMON:
        if reg.type not in SOCKETS:
            raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=sock_common, sock")
    elif reg.type != RegType.PTR_TO_RINGBUF_MEM:
        raise Reject(f"R{regno} type={TYPE_NAMES[reg.type]} expected=ringbuf_mem")
    if reg.off and arg.release:
        raise Reject(f"R{regno} must have zero offset when passed to release func or "
                     "trusted arg to kfunc")
    if not reg.var.is_const or reg.var.value:
        raise Reject(f"variable {TYPE_NAMES[reg.type]} access var_off={reg.var.var} "
                     "disallowed")


def _fixed_mem(env: Env, state: State, regno: int, reg: Reg, arg: Arg) -> HelperWrite:
    """A memory argument of a fixed size (``bpf_check_mtu``'s ``u32 *mtu_len``)."""
    _expect_mem(reg, regno)
    return check_helper_mem(env, state, regno, reg, arg.size, mode=arg.access,
                     align=arg.size if arg.aligned else 0)


def _mem_and_size(env: Env, state: State, regno: int, reg: Reg, arg: Arg,
                  size_arg: Arg | None, proto: HelperProto) -> HelperWrite:
    """A memory argument sized by the next register (the kernel's ``check_mem_size_reg``).

    The helper may use any size up to the register's maximum. It fills exactly that many
    bytes only when the size is a known constant; otherwise the bytes must be initialised
    already, as if it read them (the kernel drops MEM_UNINIT for a variable size).
    """
    if size_arg is None or not size_arg.is_size:
        raise VerifierBug(f"{proto.kernel_name} takes memory in R{regno} without "
                          "a size")
    size_reg = read_reg(state, regno + 1)
    if size_reg.type != RegType.SCALAR:
        raise Reject(f"R{regno + 1} type={TYPE_NAMES[size_reg.type]} expected=scalar")
    size = size_reg.var
    env.demand(state, regno + 1, regno)  # the size, and a pointer argument that may be NULL
    if size.smin < 0:
        raise Reject(f"R{regno + 1} min value is negative, either use unsigned or 'var &= const'")
    if size.umax >= 1 << 29:
        raise Reject(f"R{regno + 1} unbounded memory access, use 'var &= const' or "
                     "'if (var < const)'")
    if size.umin == 0 and size_arg.type == ArgType.CONST_SIZE:
        raise Reject(f"R{regno + 1} invalid zero-sized read")
    if arg.maybe_null and reg.type == RegType.SCALAR and reg.is_const and reg.var.value == 0:
        if size.umax:
            raise Reject(f"R{regno} type=scalar expected={_MEM_TYPES}: NULL needs size 0")
        return None
    _expect_mem(reg, regno)
    return check_helper_mem(env, state, regno, reg, size.umax, mode=arg.access,
                            exact=size.is_const)


def _check_map_compat(proto: HelperProto, spec: MapSpec) -> None:
    allowed = MAP_TYPE_HELPERS.get(spec.type)
    if spec.type not in proto.map_types or (allowed is not None and proto.id not in allowed):
        raise Reject(f"cannot pass map_type {int(spec.type)} into func "
                     f"{proto.kernel_name}#{proto.id}")


# ---------------------------------------------------------------- bpf-to-bpf calls
def enter_function(env: Env, state: State, insn: Op, slot: int) -> None:
    if len(state.frames) >= env.caps.limits.max_call_frames:
        raise Reject(f"the call stack of {len(state.frames) + 1} frames is too deep")
    target = slot + 1 + insn.imm
    caller = state.frame
    frameno = len(state.frames)
    regs = [NOT_INIT] * 11
    for r in range(1, 6):
        regs[r] = caller.regs[r]
    regs[10] = Reg(RegType.PTR_TO_STACK, frameno=frameno)
    state.push(Frame(regs, {}, slot, target, frameno))
    state.insn = target


def leave_function(state: State) -> None:
    """``exit`` from a called function: back to the caller with R0 and R6-R9."""
    callee = state.pop()
    r0 = callee.regs[0]  # may be unset: reading it in the caller is then the error
    if r0.type == RegType.PTR_TO_STACK and r0.frameno == callee.frameno:
        raise Reject("cannot return stack pointer to the caller")
    caller = state.frame
    caller.regs[0] = r0
    for r in range(1, 6):
        caller.regs[r] = NOT_INIT
    state.insn = callee.callsite + 1


def read_reg_from(frame: Frame, regno: int) -> Reg:
    reg = frame.regs[regno]
    if reg.type == RegType.NOT_INIT:
        raise Reject(f"R{regno} !read_ok")
    return reg


def check_program_exit(env: Env, state: State) -> None:
    """The end of the program: no bpf_spin_lock held, no reference still held (in the
    kernel's order), R0 an initialised number, optionally an XDP action."""
    locks.check_exit(state)
    refs.check_released(state)
    r0 = read_reg_from(state.frame, 0)
    if r0.type != RegType.SCALAR:
        raise Reject("R0 leaks addr as return value")
    if env.caps.check_xdp_action and env.prog_type.name == "XDP":
        env.demand(state, 0)
        last = max(XdpAction)
        if r0.var.umax > last:
            raise Reject(f"At program exit the register R0 has {r0._replace(id=0)} should have "
                         f"been in [0, {int(last)}]")
