"""``verify``: explore every path of a program over abstract states, with pruning.

Depth-first like the kernel's ``do_check``: the fall-through of a conditional jump goes first,
the other successor waits on a stack. At prune points (jump targets, after calls) a state
covered by a fully explored one stops (``prune.covers``); one *exactly* equal to a state still
being explored on its own path is an infinite loop. Bounded loops are simply explored until they
end, within ``max_processed_insns``; a loop bounded by ``may_goto`` ends where an open
checkpoint at the may_goto covers a later iteration (``explored.py``). On rejection the
failing path is replayed from its recorded jumps to produce the kernel-style log.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..caps.capabilities import Capabilities
from ..engine.facts import (
    Access,
    AccessFact,
    ArgFact,
    CallFact,
    Fact,
    NoWrapFact,
    Reach,
)
from ..engine.memory import RegionKind
from ..helpers.prototypes import CALLBACK_HELPERS, ArgType, HelperId, prototype
from ..isa.instruction import Instruction
from ..isa.opcodes import AluOp, InsnClass, PseudoSrc
from ..program import FuncInfo
from ..uapi import MapType, ProgType
from . import gc_pause, globals, liveness, ops
from .alu import check_alu, write_reg
from .branch import branch
from .callbacks import (
    check_callback_call,
    check_tail_call,
    func_pointer,
    in_callback,
    leave_callback,
)
from .calls import check_helper_call, check_program_exit, enter_function, leave_function
from .env import GPL_COMPATIBLE, Env, MapResolver, PointerUses, resolve_map
from .errors import VerifierError
from .explored import LOOP, PRUNED, Checkpoint, PrunePoint, finish, worth_keeping
from .log import LogLine, VerifierLog, insn_line
from .memory import check_atomic, check_load, check_store
from .precision import (
    CALL,
    CALLBACK_RETURN,
    FILL,
    JUMP,
    LINK,
    RETURN,
    SPILL,
    Precision,
    record,
    reg_loc,
    slot_loc,
)
from .program import Program, layout
from .reject import Reject
from .state import (
    NOT_INIT,
    PTR_TO_STACK,
    SCALAR,
    SLOT,
    UNKNOWN,
    Frame,
    PathNode,
    Reg,
    RegType,
    Slot,
    State,
)

#: Lines kept from the end of a failing path.
MAX_LOG_LINES = 2000


@dataclass(frozen=True, slots=True)
class VerifierStats:
    """What verification cost: the kernel's ``processed N insns ... total_states ... peak``."""

    insns_processed: int
    total_states: int
    peak_states: int
    stack_depth: tuple[int, ...]  # bytes per function, in slot order (main first)
    log: VerifierLog | None = None  # every processed instruction, at log_level 2
    #: What the verifier proved about each load, store, atomic and helper call: the memory
    #: its pointers reach on every explored path (kinds, which maps, which stack frames).
    #: Engines use them to drop checks the verifier made and to check the rest.
    memory_facts: Mapping[int, AccessFact | CallFact] = field(default_factory=dict)
    #: 64-bit add/sub/mul/lsh slots whose result never wraps around on any path.
    no_wrap: Mapping[int, NoWrapFact] = field(default_factory=dict)

    def engine_facts(self) -> dict[int, Fact]:
        """Everything an engine may rely on, by slot: memory reached, and arithmetic that
        never wraps; each fact names the instruction it was proven for."""
        facts: dict[int, Fact] = dict(self.memory_facts)
        facts.update(self.no_wrap)
        return facts


#: The region kind each pointer type reaches.
_REGION_KINDS = {RegType.PTR_TO_CTX: RegionKind.CONTEXT, RegType.PTR_TO_PACKET: RegionKind.PACKET,
                 RegType.PTR_TO_PACKET_META: RegionKind.PACKET,
                 RegType.PTR_TO_STACK: RegionKind.STACK,
                 RegType.PTR_TO_MAP_VALUE: RegionKind.MAP_VALUE,
                 RegType.PTR_TO_RINGBUF_MEM: RegionKind.RINGBUF}
_ACCESS_OPS = {ops.LOAD: Access.LOAD, ops.STORE: Access.STORE, ops.ATOMIC: Access.ATOMIC}
#: Helper arguments an engine checks: memory and context pointers, and map pointers.
_POINTER_ARGS = frozenset({ArgType.PTR_TO_MAP_KEY, ArgType.PTR_TO_MAP_VALUE,
                           ArgType.PTR_TO_UNINIT_MAP_VALUE, ArgType.PTR_TO_MEM,
                           ArgType.PTR_TO_UNINIT_MEM, ArgType.PTR_TO_CTX,
                           ArgType.CONST_MAP_PTR, ArgType.PTR_TO_SPIN_LOCK,
                           ArgType.PTR_TO_RINGBUF_MEM})
_MAP_POINTERS = frozenset({RegType.CONST_PTR_TO_MAP, RegType.CONST_PTR_TO_MAP_OR_NULL})


_WRAP_OPS = frozenset({AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.LSH})
_UNSEEN = object()
_U64 = 1 << 64


def _cannot_wrap(state: State, op: ops.Op) -> bool:
    """Whether a 64-bit add, sub, mul or lsh of two scalars stays within 0..2^64-1 for every
    value the ranges allow (so an engine need not reduce the result modulo 2^64)."""
    dst = state.frame.regs[op.dst]
    src = state.frame.regs[op.src] if op.reg_operand else op.imm_reg
    if src is None or dst.type != RegType.SCALAR or src.type != RegType.SCALAR:
        return False
    a, b = dst.var, src.var
    if op.alu_op == AluOp.ADD:
        return a.umax + b.umax < _U64
    if op.alu_op == AluOp.SUB:
        return a.umin >= b.umax
    if op.alu_op == AluOp.MUL:
        return a.umax * b.umax < _U64
    return b.umax < 64 and a.umax << b.umax < _U64


def _linked(state: State, op: ops.Op) -> tuple[int, ...]:
    """The locations a conditional jump narrows together with its operands: every scalar
    sharing an operand's id (copies of one value), for precision walks."""
    regs = state.frame.regs
    ids = {regs[op.dst].id} if regs[op.dst].type == SCALAR else set()
    if op.reg_operand and regs[op.src].type == SCALAR:
        ids.add(regs[op.src].id)
    ids.discard(0)
    if not ids:
        return ()
    locs = []
    for depth, frame in enumerate(state.frames):
        for r, reg in enumerate(frame.regs):
            if reg.id in ids and reg.type == SCALAR:
                locs.append(reg_loc(depth, r))
        for k, slot in frame.stack.items():
            if slot.spilled is not None and slot.spilled.id in ids and \
                    slot.spilled.type == SCALAR:
                locs.append(slot_loc(depth, k))
    return tuple(locs)


def _widen(prev: Checkpoint | None, state: State) -> None:
    """The kernel's ``widen_imprecise_scalars`` at a may_goto, and where a callback run
    comes back to its helper call: a scalar nothing has relied on so far (not precise in
    ``prev``, the previous iteration's checkpoint there: the nearest up the path in the same
    calls) that changed since ``prev`` becomes unknown, so that a loop counting what nothing
    checks converges. Widening only loses knowledge: always sound."""
    while prev is not None and not _same_calls(prev.state, state):
        prev = prev.up
    if prev is None or prev.state is None or prev.precise is None:
        return
    old, precise = prev.state, prev.precise
    for depth, (of, cf) in enumerate(zip(old.frames, state.frames)):
        base = reg_loc(depth, 0)
        regs = cf.regs
        for r in range(10):
            o, c = of.regs[r], regs[r]
            if o.type == SCALAR and c.type == SCALAR and base + r not in precise and \
                    o.var != c.var:
                regs[r] = UNKNOWN
        for k, cslot in cf.stack.items():  # replacing values leaves the iteration valid
            oslot = of.stack.get(k)
            ospill = oslot.spilled if oslot is not None else None
            cspill = cslot.spilled
            if ospill is not None and cspill is not None and ospill.type == SCALAR and \
                    cspill.type == SCALAR and slot_loc(depth, k) not in precise and \
                    ospill.var != cspill.var:
                cf.stack[k] = Slot(cslot.kinds, UNKNOWN)


def _nearest_at(cp: object, slot: int) -> Checkpoint | None:
    """The nearest checkpoint at ``slot`` at or above ``cp`` on a path."""
    while isinstance(cp, Checkpoint) and (cp.point is None or cp.slot != slot):
        cp = cp.parent
    return cp if isinstance(cp, Checkpoint) else None


def _same_calls(old: State | None, cur: State) -> bool:
    """Whether two states are in the same chain of calls (the same call sites)."""
    return old is not None and len(old.frames) == len(cur.frames) and all(
        of.callsite == cf.callsite for of, cf in zip(old.frames, cur.frames))


def _filled_from(state: State, ptr: Reg, op: ops.Op) -> tuple[int, ...]:
    """The spilled stack slots a load through ``ptr`` took its value from (precision walks):
    a whole spilled register, part of a spilled constant, or zeros spread over spills."""
    frame = state.frames[ptr.frameno]
    var = ptr.var
    lo = ptr.off + op.off + var.smin
    hi = ptr.off + op.off + var.smax + op.nbytes
    locs = []
    for k in liveness.slots_between(lo, hi):
        spilled = frame.stack.get(k)
        if spilled is not None and spilled.spilled is not None:
            locs.append(slot_loc(ptr.frameno, k))
    return tuple(locs)


def note_pointer(env: Env, state: State, slot: int, op: ops.Op, regno: int) -> None:
    """Remember what register ``regno`` points to when the instruction at ``slot`` uses it
    (facts for engines): its type, its map (and whether that map is an inner map, which the
    verifier names by its outer map), and its stack frame counted back from the current one."""
    reg = state.frame.regs[regno]
    seen = env.accesses.get(slot)
    if seen is None:
        seen = env.accesses[slot] = PointerUses(op, {})
    t = reg.type
    key: tuple[RegType, int, bool, int]
    if t == PTR_TO_STACK:
        key = (t, 0, False, state.frame.frameno - reg.frameno)
    elif reg.map is not None:
        outer = env.outer_maps
        if outer is None:
            outer = env.outer_maps = frozenset(
                r.map_handle for r in env.lddw.values()
                if r.map is not None and r.map.type.is_map_in_map)
        inner = reg.map_handle in outer and not reg.map.type.is_map_in_map
        key = (t, reg.map_handle, inner, 0)
    else:
        key = (t, 0, False, 0)
    keys = seen.regs.get(regno)
    if keys is None:
        keys = seen.regs[regno] = set()
    keys.add(key)


def _arg_fact(regno: int, keys: set[tuple[RegType, int, bool, int]],
              nullable: bool, passed: Reach | None = None) -> ArgFact | None:
    """The memory a pointer reached over every path, or None when it was not always memory
    (NULL aside where allowed). A global function's memory argument reaches ``passed``."""
    kinds: set[RegionKind] = set()
    maps: set[int] = set()
    inner_of: set[int] = set()
    frames: set[int] = set()
    for t, handle, inner, frame in keys:
        if t == RegType.PTR_TO_MEM and passed is not None:
            kinds |= passed.kinds
            maps |= passed.maps
            inner_of |= passed.inner_of
            frames |= {frame + up for up in passed.frames}
            continue
        kind = _REGION_KINDS.get(t)
        if kind is None:
            if nullable and t == RegType.SCALAR:
                continue
            return None
        kinds.add(kind)
        if kind == RegionKind.MAP_VALUE:
            (inner_of if inner else maps).add(handle)
        elif kind == RegionKind.STACK:
            frames.add(frame)
    return ArgFact(frozenset(kinds), frozenset(maps), frozenset(inner_of), frozenset(frames),
                   regno=regno, nullable=nullable)


def memory_facts(accesses: Mapping[int, PointerUses],
                 passed: Reach | None = None) -> dict[int, AccessFact | CallFact]:
    """Slot -> the memory each load, store, atomic and helper call reaches on every verified
    path. An access whose pointer was not always memory gets no fact (an engine given facts
    treats it as one the verifier never let run). ``passed``: the memory any call handed a
    global function's memory argument (``passed_reach``); an access through one is proven
    only to lie in that memory, and an engine checks its bounds."""
    facts: dict[int, AccessFact | CallFact] = {}
    for slot, seen in accesses.items():
        op = seen.op
        if op.kind == ops.HELPER_CALL:
            facts[slot] = _call_fact(op, seen.regs, passed)
            continue
        reg = op.src if op.kind == ops.LOAD else op.dst
        keys = seen.regs.get(reg, set())
        arg = _arg_fact(reg, keys, False, passed)
        if arg is None or not arg.kinds:
            continue
        proven = all(t != RegType.PTR_TO_MEM for t, _, _, _ in keys)
        facts[slot] = AccessFact(arg.kinds, arg.maps, arg.inner_of, arg.frames,
                                 op=_ACCESS_OPS[op.kind], reg=reg, off=op.off,
                                 size=op.nbytes, proven=proven)
    return facts


def passed_reach(env: Env) -> Reach | None:
    """The memory calls handed global functions' memory arguments, as seen from the
    function's frame: a caller's stack frame is one or more calls up (any up to the deepest
    chain of calls), map values by their maps, the packet, ring buffer records."""
    if not env.mem_passed:
        return None
    kinds: set[RegionKind] = set()
    maps: set[int] = set()
    inner_of: set[int] = set()
    frames: set[int] = set()
    outer = {r.map_handle for r in env.lddw.values()
             if r.map is not None and r.map.type.is_map_in_map}
    for t, handle, spec in env.mem_passed:
        kind = _REGION_KINDS.get(t)
        if kind is None:
            continue  # memory a global function got itself: what its callers passed
        kinds.add(kind)
        if kind == RegionKind.MAP_VALUE:
            inner = handle in outer and spec is not None and not spec.type.is_map_in_map
            (inner_of if inner else maps).add(handle)
        elif kind == RegionKind.STACK:
            frames.update(range(1, env.caps.limits.max_call_frames))
    return Reach(frozenset(kinds), frozenset(maps), frozenset(inner_of), frozenset(frames))


def _call_fact(op: ops.Op, regs: Mapping[int, set[tuple[RegType, int, bool, int]]],
               passed: Reach | None = None) -> CallFact:
    """The pointer arguments of one helper call; an argument that was not always memory (or
    a map pointer the program loaded itself) is left unchecked by engines."""
    proto = prototype(op.imm)
    memory, map_args, printed = [], [], []
    for index, arg in enumerate(proto.args if proto is not None else ()):
        regno = index + 1
        keys = regs.get(regno)
        if not keys:
            continue
        if arg.type == ArgType.ANYTHING:  # printed: a pointer here may be read as a string
            fact = _arg_fact(regno, keys, True, passed)
            if fact is not None and fact.kinds:
                printed.append(fact)
            continue
        if arg.type == ArgType.CONST_MAP_PTR:
            if all(t in _MAP_POINTERS and not inner for t, _, inner, _ in keys):
                map_args.append((regno, frozenset(handle for _, handle, _, _ in keys)))
            continue
        fact = _arg_fact(regno, keys, arg.maybe_null, passed)
        if fact is not None:
            memory.append(fact)
    return CallFact(op.imm, tuple(memory), tuple(map_args), tuple(printed))


def no_wrap_facts(no_wrap: Mapping[int, NoWrapFact | None]) -> dict[int, NoWrapFact]:
    """The arithmetic that never wrapped on any path."""
    return {slot: fact for slot, fact in no_wrap.items() if fact is not None}


def _no_wrap_fact(op: ops.Op) -> NoWrapFact:
    if op.reg_operand:
        return NoWrapFact(op.alu_op, op.dst, src=op.src)
    return NoWrapFact(op.alu_op, op.dst, imm=op.imm)


class Observer:
    """Watches a verification as it runs (the soundness oracle records it); does nothing
    unless a subclass says otherwise."""

    #: Whether the states it sees must bound every concrete state by every scalar: pruning
    #: then compares all scalars, not only those a check relied on (``precision.py``). The
    #: soundness oracle needs it; precision tracking itself is checked by comparing verdicts.
    compares_all_scalars = False
    #: Whether every prune point keeps a checkpoint, as the kernel's BPF_F_TEST_STATE_FREQ
    #: makes it (``verify(state_freq=True)``), so pruning is exercised wherever it can be.
    keeps_every_state = False

    def layout(self, prog: Program) -> None:
        """The program as the verifier laid it out (slots, functions, liveness)."""

    def state(self, slot: int, state: State) -> None:
        """A state about to be processed at ``slot``: the verifier's own object, so copy
        it to keep it."""


def verify(insns: Sequence[Instruction], *, prog_type: ProgType = ProgType.XDP,
           caps: Capabilities, maps: MapResolver | None = None,
           log_level: int = 1, observer: Observer | None = None,
           precision: bool = True, license: str | None = None,
           state_freq: bool = False, expected_attach_type: int = 0,
           functions: Sequence[FuncInfo] = ()) -> VerifierStats:
    """Accept the program for this device (statistics) or raise ``VerifierError``.

    ``maps`` resolves the handle in an ``lddw map_fd(N)`` / ``map_value(N)`` to its MapSpec.
    ``log_level`` 0 skips the failing-path log, 1 keeps it, 2 also logs every instruction
    processed on acceptance. ``observer`` sees every processed state (the soundness oracle
    records them). ``precision`` False compares every scalar when pruning instead of only
    those a check relied on (``precision.py``): slower, for checking precision tracking.
    ``license``: the program's, which GPL-only helpers need GPL-compatible (as the kernel's
    ``license_is_gpl_compatible``); None is a program whose license nobody gave, allowed them.
    ``state_freq``: keep a checkpoint at every prune point rather than only after a few jumps
    and instructions (``explored.worth_keeping``), as the kernel's BPF_F_TEST_STATE_FREQ
    does: more pruning to test, more states to keep. ``expected_attach_type``: the
    ``enum bpf_attach_type`` given at load; only a devmap program (BPF_XDP_DEVMAP) may read
    ``xdp_md.egress_ifindex``, as in the kernel. ``functions``: the program's BTF
    ``func_info`` (``ProgramSpec.functions``); its global subprograms are verified once, on
    their own, and calls to them checked against their prototypes (``globals.py``); without
    it every subprogram is static, as for the kernel.

    Only ``VerifierError`` leaves this function: a broken invariant inside the verifier (an
    exception other than a refusal) refuses the program as the kernel's "verifier bug" does,
    with EFAULT and the instruction being checked - never a traceback for the caller.
    """
    slot = 0
    try:
        with gc_pause.paused():
            return _verify(insns, prog_type, caps, maps, log_level, observer, precision,
                           license, state_freq, expected_attach_type, functions)
    except VerifierError:
        raise
    except RecursionError:
        raise VerifierError(slot, "the program is too complex to verify (nesting too deep)",
                            VerifierLog(reason="too complex") if log_level else None,
                            errno.E2BIG) from None
    except Exception as exc:  # noqa: BLE001 - the security boundary turns bugs into refusals
        reason = f"verifier bug: {type(exc).__name__}: {exc}".rstrip(": ")
        at = getattr(exc, "__verifier_slot__", 0)
        raise VerifierError(at, reason, VerifierLog(reason=reason) if log_level else None,
                            errno.EFAULT) from exc


def _verify(insns: Sequence[Instruction], prog_type: ProgType, caps: Capabilities,
            maps: MapResolver | None, log_level: int,
            observer: Observer | None, precision: bool = True,
            license: str | None = None, state_freq: bool = False,
            expected_attach_type: int = 0, functions: Sequence[FuncInfo] = ()) -> VerifierStats:
    resolver: MapResolver = maps if maps is not None else {}
    try:
        prog = layout(insns, caps)
    except Reject as err:
        code = errno.E2BIG if "too large" in err.reason else errno.EINVAL
        raise VerifierError(err.insn or 0, err.reason,
                            VerifierLog(reason=err.reason) if log_level else None,
                            code) from None
    env = Env(prog, caps, prog_type)
    env.gpl_compatible = license is None or license in GPL_COMPATIBLE
    env.state_freq = state_freq or (observer is not None and observer.keeps_every_state)
    env.expected_attach_type = expected_attach_type
    env.functions = globals.global_functions(prog, functions)
    if precision and not (observer is not None and observer.compares_all_scalars):
        env.precision = Precision(prog)
    try:
        _check_program_type(env)
        _resolve_lddw(env, resolver)
    except Reject as err:
        raise VerifierError(err.insn or 0, err.reason,
                            VerifierLog(reason=err.reason) if log_level else None,
                            errno.EINVAL) from None
    if observer is not None:
        observer.layout(prog)
    explorer = _Explorer(env, log_level, observer)
    try:
        return explorer.run()
    except Reject as err:
        slot = err.insn if err.insn is not None else explorer.slot
        log = explorer.replay(err.reason, slot) if log_level else None
        raise VerifierError(slot, err.reason, log, getattr(err, "errno", errno.EACCES)) \
            from None
    except Exception as exc:
        exc.__verifier_slot__ = explorer.slot  # type: ignore[attr-defined]
        raise


def _check_program_type(env: Env) -> None:
    if env.prog_type not in env.caps.prog_types:
        raise Reject(f"program type {env.prog_type.name} is not supported by device "
                     f"{env.caps.name}", 0)
    if env.prog_type != ProgType.XDP:
        raise Reject(f"program type {env.prog_type.name} has no context layout in the "
                     "verifier: only XDP programs can be verified", 0)


def _resolve_lddw(env: Env, maps: MapResolver) -> None:
    """Turn each ``lddw`` into the register it loads (map pointer, map value, number)."""
    prog = env.prog
    for slot, op in enumerate(prog.ops):
        if op is None or op.kind != ops.LDDW:
            continue
        insn = prog.slots[slot]
        if insn is None:
            raise Reject("verifier bug: lddw without its instruction", slot)
        pseudo = insn.src
        if pseudo == PseudoSrc.IMM64:
            env.lddw[slot] = Reg.const(insn.imm64)
            continue
        if pseudo == PseudoSrc.FUNC:
            if slot + 1 + insn.imm in env.functions:  # the kernel's check_ld_imm
                raise Reject("callback function not static", slot)
            env.lddw[slot] = func_pointer(slot + 1 + insn.imm)
            continue
        try:
            spec = resolve_map(maps, insn.imm)
        except Reject as err:
            raise Reject(err.reason, slot) from None
        if spec.type not in env.caps.map_types:
            raise Reject(f"map type {spec.type.name} of map '{spec.name}' is not supported by "
                         f"device {env.caps.name}", slot)
        if pseudo in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
            env.lddw[slot] = Reg(RegType.CONST_PTR_TO_MAP, map=spec, map_handle=insn.imm)
            continue
        if spec.type != MapType.ARRAY or spec.max_entries != 1:
            raise Reject(f"direct value access on map '{spec.name}' needs a single-entry "
                         "array map", slot)
        if insn.next_imm >= spec.value_size:
            raise Reject(f"invalid access to map value pointer, value_size={spec.value_size} "
                         f"off={insn.next_imm}", slot)
        env.lddw[slot] = Reg(RegType.PTR_TO_MAP_VALUE, map=spec, map_handle=insn.imm,
                             off=insn.next_imm)


def _initial_state() -> State:
    regs = [NOT_INIT] * 11
    regs[1] = Reg(RegType.PTR_TO_CTX)
    regs[10] = Reg(RegType.PTR_TO_STACK)
    return State([Frame(regs, {}, -1, 0, 0)], 0, 0, 0, None, None)


class _Explorer:
    def __init__(self, env: Env, log_level: int, observer: Observer | None = None) -> None:
        self.env = env
        self.observer = observer
        self.prog: Program = env.prog
        self.log_level = log_level
        self.slot = 0
        self.failing_path: PathNode | None = None
        self.lines: list[LogLine] = []
        self.notes: list[LogLine] = []  # lines step() adds after its instruction's
        #: the global function verified on its own now (None: the main program)
        self.function: globals.GlobalFunc | None = None
        self.verified: set[int] = set()  # global functions verified so far

    # ------------------------------------------------------------ one instruction
    def step(self, state: State) -> tuple[State, ...]:
        """Execute the instruction at ``state.insn``; the successor states, possibly none."""
        env = self.env
        slot = state.insn
        op = self.prog.ops[slot]
        if op is None:
            raise Reject(f"verifier bug: insn {slot} is the second half of lddw", slot)
        kind = op.kind
        if kind == ops.ALU:
            if op.alu_op in _WRAP_OPS and op.bits == 64 and env.precision is None:
                # Only without precision tracking: a state pruned for its imprecise numbers
                # may reach here with values the explored ones never had, so no bound on the
                # result is known for it (and demanding one would keep every counter precise).
                seen = env.no_wrap.get(slot, _UNSEEN)
                if seen is not None:
                    env.no_wrap[slot] = None if not _cannot_wrap(state, op) else \
                        _no_wrap_fact(op) if seen is _UNSEEN else seen
            check_alu(env, state, op)
        elif kind == ops.BRANCH:
            target = slot + 1 + op.off
            if target == slot + 1:
                # Both edges lead to the next instruction, each with its own narrowing: the
                # state goes on as it was (the union of both), after the comparison's own
                # checks. Keeping one narrowed edge would prove what was never checked;
                # exploring both would double the paths at every such jump.
                branch(env, state.copy(), op)
                state.insn = target
                return (state,)
            linked = _linked(state, op) if env.precision is not None else ()
            taken, fall = branch(env, state, op)
            if taken is not None:
                taken.insn = target
            if fall is not None:
                fall.insn = slot + 1
            if env.precision is not None:
                for succ in (taken, fall):
                    if succ is not None and linked:
                        record(succ, LINK, slot, -1, linked)
                if taken is not None:
                    record(taken, JUMP, slot, target)
            if taken is not None and fall is not None:
                return fall, taken
            return tuple(s for s in (fall, taken) if s is not None)
        elif kind == ops.LOAD:
            note_pointer(env, state, slot, op, op.src)
            ptr = state.frame.regs[op.src]
            check_load(env, state, op)
            if env.precision is not None and ptr.type == PTR_TO_STACK:
                locs = _filled_from(state, ptr, op)
                if locs:
                    record(state, FILL, slot, -1, locs)
        elif kind == ops.STORE:
            note_pointer(env, state, slot, op, op.dst)
            check_store(env, state, op)
            ptr = state.frame.regs[op.dst]
            if env.precision is not None and ptr.type == PTR_TO_STACK \
                    and ptr.var.is_const:
                addr = ptr.off + op.off + ptr.var.value
                if addr % SLOT == 0:  # a spill, whole or narrow, replaces what the slot held
                    src = op.src if op.cls == InsnClass.STX else -1
                    record(state, SPILL, slot, src, (slot_loc(ptr.frameno, -addr // SLOT - 1),))
        elif kind == ops.ATOMIC:
            note_pointer(env, state, slot, op, op.dst)
            check_atomic(env, state, op)
        elif kind == ops.LDDW:
            write_reg(state, op.dst, env.lddw[slot])
            state.insn = slot + 2
            return (state,)
        elif kind == ops.EXIT:
            if len(state.frames) > 1:
                if in_callback(self.prog, state):
                    leave_callback(env, state)
                    kind = CALLBACK_RETURN
                    if env.precision is not None:
                        _widen(_nearest_at(state.parent, state.insn), state)
                else:
                    leave_function(state)
                    kind = RETURN
                if env.precision is not None:
                    record(state, kind, slot, state.insn)
                return (state,)
            if env.root:
                globals.check_exit(env, state)
            else:
                check_program_exit(env, state)
            return ()
        elif kind == ops.LOCAL_CALL:
            fn = env.functions.get(slot + 1 + op.imm) if env.functions else None
            if fn is not None:
                globals.check_call(env, state, fn)
                if fn.slot not in env.called:
                    env.called.add(fn.slot)
                if self.log_level >= 2:
                    self.notes.append(LogLine(slot, f"Func#{fn.index} ('{fn.name}') is global "
                                                    "and assumed valid.", "", note=True))
                state.insn = slot + 1
                return (state,)
            enter_function(env, state, op, slot)
            if env.precision is not None:
                record(state, CALL, slot, state.insn)
            return (state,)
        elif kind == ops.HELPER_CALL:
            if op.imm in CALLBACK_HELPERS:
                return check_callback_call(env, state, op, slot)
            if op.imm == HelperId.TAIL_CALL and len(state.frames) > 1:
                check_tail_call(self.prog, state)
            proto = prototype(op.imm)
            for index, arg in enumerate(proto.args if proto is not None else ()):
                if arg.type in _POINTER_ARGS or arg.pointer_ok:
                    note_pointer(env, state, slot, op, index + 1)
            check_helper_call(env, state, op)
        elif kind == ops.MAY_GOTO:
            target = slot + 1 + op.jump_offset
            state.insn = target
            if target == slot + 1:  # may_goto +0: both edges lead on
                return (state,)
            fall = state.copy()
            fall.insn = slot + 1
            fall.may_goto += 1  # one more iteration the runtime counter pays for
            if env.precision is not None:
                record(state, JUMP, slot, target)
                own = state.parent
                if isinstance(own, Checkpoint) and own.slot == slot and own.up is not None:
                    _widen(own.up, fall)
            return state, fall  # as the kernel: the jump first, the fall-through waits
        else:  # ops.JA
            state.insn = slot + 1 + op.jump_offset
            if op.jump_offset and env.precision is not None:
                record(state, JUMP, slot, state.insn)
            return (state,)
        state.insn = slot + 1
        return (state,)

    # ------------------------------------------------------------ exploration
    def run(self) -> VerifierStats:
        env, prog = self.env, self.prog
        limits = env.caps.limits
        max_processed = limits.max_processed_insns
        max_states = limits.max_states_per_insn
        tracker = env.precision
        tracked = tracker is not None
        points: list[PrunePoint | None] = [
            PrunePoint(prog, slot, tracked) if slot in prog.prune_points else None
            for slot in range(len(prog))]
        root = Checkpoint(None, None)
        first = _initial_state()
        first.parent = root
        cur: State | None = first
        env.root = 0
        pending: list[State] = []
        processed = total_states = peak = 0
        # jump-class instructions stepped, and both counts when the last checkpoint was kept
        jumps = kept_jumps = kept_processed = 0
        is_jump = prog.jumps
        every = env.state_freq
        verbose = self.log_level >= 2
        observe = self.observer.state if self.observer is not None else None
        slot, path = 0, None  # of the state being processed, for the failing path's log
        try:
            while True:
                if cur is None:
                    if not pending:
                        cur = self._next_function(verbose)
                        if cur is None:
                            break
                    else:
                        cur = pending.pop()
                slot, path = cur.insn, cur.path
                processed += 1
                if processed > max_processed:
                    raise Reject(f"BPF program is too large. Processed {processed} insn", slot)
                point = points[slot]
                if point is not None:
                    looping = point.open > 0
                    keep = every or point.forced or worth_keeping(
                        jumps - kept_jumps, processed - kept_processed, looping)
                    keys = point.keys(cur, keep or looping)
                    verdict = point.check(prog, cur, keys, keep)
                    if verdict == LOOP:
                        raise Reject(f"infinite loop detected at insn {slot}", slot)
                    if verdict == PRUNED:
                        if tracker is not None and point.open_hit:
                            # the checkpoint's marks are not final: demand every scalar
                            tracker.demand_all(cur, point.pruned_by)
                            liveness.everything(cur, point.pruned_by if point.callback
                                                else None)
                        elif tracker is not None and point.pruned_by is not None:
                            tracker.inherit(cur, point.pruned_by)
                            liveness.inherit(cur, point.pruned_by)
                        if verbose:
                            self.lines.append(LogLine(slot, "safe", ""))
                        finish(cur.parent)
                        cur = None
                        continue
                    if keep and (point.forced or point.kept < max_states or
                                 point.make_room()):
                        kept = point.add(cur.copy(), cur.parent, keys)
                        cur.parent = kept
                        cur.written = liveness.EMPTY  # a new segment starts here
                        kept_jumps, kept_processed = jumps, processed
                        total_states += 1
                        peak = max(peak, total_states + len(pending))
                if observe is not None:
                    observe(slot, cur)
                jumps += is_jump[slot]
                succ = self.step(cur)
                if verbose:
                    insn = prog.slots[slot]
                    if insn is not None and len(self.lines) < 100_000:
                        self.lines.append(insn_line(slot, insn, succ[0] if succ else None))
                        self.lines.extend(self.notes)
                    self.notes.clear()
                if not succ:
                    finish(cur.parent)
                    cur = None
                elif len(succ) == 1:
                    cur = succ[0]
                else:
                    fall, taken = succ
                    fall.path = PathNode(slot, fall.insn, path)
                    taken.path = PathNode(slot, taken.insn, path)
                    parent = fall.parent
                    if not isinstance(parent, Checkpoint):
                        raise Reject("verifier bug: a branch outside every checkpoint", slot)
                    parent.branches += 1
                    pending.append(taken)
                    cur = fall
                    # states kept or waiting only grow here and where one is kept
                    peak = max(peak, total_states + len(pending))
        finally:
            self.slot, self.failing_path = slot, path
            for point in points:  # checkpoints and their points refer to each other
                if point is not None:
                    point.release()
        depths = self._stack_depths()
        log = VerifierLog(tuple(self.lines)) if verbose else None
        return VerifierStats(processed, total_states, peak, depths, log,
                             memory_facts(self.env.accesses, passed_reach(self.env)),
                             no_wrap_facts(self.env.no_wrap))

    def _next_function(self, verbose: bool) -> State | None:
        """The entry state of the next global function a verified path calls (the lowest
        func#N first, as the kernel goes through them after the main program), or None."""
        env = self.env
        if self.function is not None and verbose:
            fn = self.function
            self.lines.append(LogLine(fn.slot, f"Func#{fn.index} ('{fn.name}') is safe for any "
                                               "args that match its prototype", "", note=True))
        waiting = env.called - self.verified
        if not waiting:
            return None
        fn = env.functions[min(waiting)]
        self.verified.add(fn.slot)
        self.function = fn
        env.root = fn.slot
        if verbose:
            self.lines.append(LogLine(fn.slot, f"Validating {fn.name}() func#{fn.index}...", "",
                                      note=True))
        state = globals.entry_state(env, fn)
        root = Checkpoint(None, None)
        root.slot = fn.slot
        state.parent = root
        return state

    def _stack_depths(self) -> tuple[int, ...]:
        """Per-function stack use, and the combined use along every chain of calls."""
        prog, env = self.prog, self.env
        depth = {fn: -(-env.stack_depth.get(fn, 0) // 8) * 8 for fn in prog.subprogs}
        callees: dict[int, set[int]] = {fn: set() for fn in prog.subprogs}
        for slot, op in enumerate(prog.ops):
            if op is not None and op.kind == ops.LOCAL_CALL:
                callees[prog.subprog_of[slot]].add(slot + 1 + op.imm)
        for slot, target in prog.func_refs:  # a callback runs a frame below its taker's
            callees[prog.subprog_of[slot]].add(target)
        limit = env.caps.limits.stack_size

        def chain(fn: int, frames: int) -> tuple[int, int]:
            best, best_frames = 0, frames
            for callee in callees[fn]:
                total, n = chain(callee, frames + 1)
                if total > best:
                    best, best_frames = total, n
            return depth[fn] + best, best_frames

        total, frames = chain(0, 1)
        if total > limit:
            raise Reject(f"combined stack size of {frames} calls is {total}. Too large", 0)
        return tuple(depth[fn] for fn in prog.subprogs)

    # ------------------------------------------------------------ failing path
    def replay(self, reason: str, fail_slot: int) -> VerifierLog:
        """Run the failing path again, recording a line per instruction."""
        jumps = self.failing_path.jumps() if self.failing_path is not None else []
        env = Env(self.prog, self.env.caps, self.env.prog_type, self.env.lddw)
        env.gpl_compatible = self.env.gpl_compatible
        env.expected_attach_type = self.env.expected_attach_type
        env.functions = self.env.functions
        replayer = _Explorer(env, 0)
        lines: list[LogLine] = []
        fn = self.function
        if fn is None:
            state = _initial_state()
        else:
            env.root = fn.slot
            state = globals.entry_state(env, fn)
            lines.append(LogLine(fn.slot, f"Validating {fn.name}() func#{fn.index}...", "",
                                 note=True))
        dropped = 0
        j = 0
        for _ in range(self.env.caps.limits.max_processed_insns + 1):
            slot = state.insn
            insn = self.prog.slots[slot]
            if insn is None:
                break
            if j >= len(jumps) and slot == fail_slot:
                lines.append(insn_line(slot, insn, state, failed=True))
                break
            try:
                succ = replayer.step(state)
            except Exception:  # noqa: BLE001 - the log ends where the path failed
                lines.append(insn_line(slot, insn, state, failed=True))
                break
            if not succ:
                break
            if len(succ) == 2:
                want = jumps[j][1] if j < len(jumps) and jumps[j][0] == slot else succ[0].insn
                j += 1
                state = succ[0] if succ[0].insn == want else succ[1]
            else:
                state = succ[0]
            lines.append(insn_line(slot, insn, state))
            if len(lines) > MAX_LOG_LINES:
                del lines[: len(lines) - MAX_LOG_LINES]
                dropped += 1
        return VerifierLog(tuple(lines), reason, dropped)
