"""The program as the verifier explores it: laid out by the shared structural pass, decoded,
with its prune points and the registers live at each slot.

The structure (functions, jump targets, the kernel's ``check_subprogs``/``check_cfg`` rules,
reachability, recursion and call depth) is ``isa.structure``'s, the one every consumer of
bytecode uses; this module adds the device's rules for single instructions (ISA version,
what the device cannot run), and what only exploring needs: ``Op``s, prune points, the
``may_goto`` and callback call sites, and register liveness. A subprogram's address
(``lddw func``, a callback for ``bpf_loop``) starts a function as a call does, makes it
reachable, and counts as a call from the function that takes it, for recursion and depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..caps.capabilities import Capabilities
from ..helpers.prototypes import CALLBACK_HELPERS, prototype
from ..isa.instruction import Instruction
from ..isa.liveness import ARGS, CLOBBERED, UsesDefs, solve, uses_defs
from ..isa.opcodes import (
    CALL,
    CALLX,
    CLASS_MASK,
    LDDW,
    MODE_MASK,
    CallSrc,
    InsnClass,
    Mode,
    PseudoSrc,
)
from ..isa.structure import (
    Layout,
    StructureError,
    build_layout,
    check_call_graph,
    check_reachable,
)
from ..isa.versions import required_version
from . import ops
from .ops import Op
from .reject import Reject
from .state import Reg

#: The newest ISA version an instruction can require (``isa.versions.required_version``).
_NEWEST_ISA = 4

_JUMP_CLASSES = frozenset({InsnClass.JMP, InsnClass.JMP32})



@dataclass(frozen=True, slots=True)
class Program:
    """The program laid out by slot, split into functions, with liveness at each slot."""

    slots: tuple[Instruction | None, ...]  # None marks the second slot of lddw
    subprogs: tuple[int, ...]  # first slot of each function, ascending; 0 is the main one
    subprog_of: tuple[int, ...]  # per slot: first slot of its function
    prune_points: frozenset[int]
    live: tuple[frozenset[int], ...]  # registers live on entry to each slot
    ops: tuple[Op | None, ...]  # ``slots`` decoded once, for the checks
    #: slots of ``may_goto``: prune points that always keep a checkpoint, where a state an
    #: open checkpoint covers is pruned rather than called an infinite loop
    may_goto: frozenset[int] = frozenset()
    #: per slot: 1 for an instruction of the jump classes (calls and exit too), else 0
    jumps: bytes = b""
    #: slots of calls to helpers that run a callback (``bpf_loop``): prune points that always
    #: keep a checkpoint, where each callback run comes back (``callbacks.py``)
    callback_calls: frozenset[int] = frozenset()
    #: slot of each ``lddw func`` -> the first slot of the subprogram it loads
    func_refs: tuple[tuple[int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.slots)


#: Registers a called function leaves as it found them.
CALLEE_SAVED = frozenset({6, 7, 8, 9})


def live_regs(prog: Program, frames: Sequence[Any], insn: int, depth: int) -> frozenset[int]:
    """The registers of frame ``depth`` a path at ``insn`` may still read: those live there in
    the innermost frame; in a caller, the callee-saved ones live after its call; under a
    callback, all those live at the helper call it returns to (which runs again with its
    arguments)."""
    if depth == len(frames) - 1:
        return prog.live[insn]
    callsite = frames[depth + 1].callsite
    if callsite in prog.callback_calls:
        return prog.live[callsite]
    return prog.live[callsite + 1] & CALLEE_SAVED


def _fail(slot: int, reason: str) -> StructureError:
    return StructureError(reason, insn_index=slot)


def layout(insns: Sequence[Instruction], caps: Capabilities) -> Program:
    """Check the static rules and lay the program out by slot, or raise ``Reject``."""
    try:
        shape = build_layout(insns, max_insns=caps.limits.max_insns,
                             rule=partial(_check_fields, caps=caps), calls_to_main=False,
                             loops=False)
        check_reachable(shape)
        check_call_graph(shape, caps.limits.max_call_frames)
    except StructureError as err:
        raise Reject(err.reason, err.insn_index) from None
    slots = shape.slots
    n = len(slots)
    consts: dict[int, Reg] = {}
    decoded = [None if insn is None else Op(insn, consts) for insn in slots]
    prune = set()
    may_goto = set()
    callback_calls = set()
    for slot, op in enumerate(decoded):
        if op is None:
            continue
        if op.kind == ops.HELPER_CALL and op.imm in CALLBACK_HELPERS:
            callback_calls.add(slot)
            prune.add(slot)
        if op.kind == ops.MAY_GOTO:
            may_goto.add(slot)
            prune.update((slot, slot + 1, slot + 1 + op.jump_offset))
        elif op.kind == ops.BRANCH:
            prune.add(slot + 1 + op.jump_offset)
            prune.add(slot)  # before the branch: one check there answers for both ways
        elif op.kind == ops.JA:
            prune.add(slot + 1 + op.jump_offset)
        elif op.kind == ops.LOCAL_CALL:  # the call, the function it enters, the return
            prune.update((slot, slot + 1 + op.imm, slot + 1))
        elif op.kind == ops.HELPER_CALL:
            prune.add(slot + 1)
    prune.discard(n)
    jumps = bytes(int(insn is not None and insn.cls in _JUMP_CLASSES) for insn in slots)
    return Program(slots, shape.subprograms, shape.function_of, frozenset(prune),
                   _liveness(shape), tuple(decoded), frozenset(may_goto),
                   jumps, frozenset(callback_calls), shape.func_refs)


def _check_fields(slot: int, insn: Instruction, *, caps: Capabilities) -> None:
    """The device's rules for one instruction, after its fields: the ISA version it needs,
    and what the device has no means to run."""
    # required_version gives 1..4: a device of ISA v4 runs every instruction, no need to ask
    need = required_version(insn) if caps.isa_version < _NEWEST_ISA else 1
    if need > caps.isa_version:
        raise _fail(slot, f"invalid insn '{insn}': it needs ISA v{need} and the device "
                          f"supports v{caps.isa_version}")
    opcode = insn.opcode  # tested directly: Instruction's properties build enum members
    if opcode & CLASS_MASK == InsnClass.LD and opcode & MODE_MASK in (Mode.ABS, Mode.IND):
        raise _fail(slot, "BPF_LD_[ABS|IND] instructions not allowed for this program type")
    if opcode == CALLX or opcode == CALL and insn.src not in (CallSrc.HELPER, CallSrc.LOCAL):
        kind = "kernel function calls" if insn.src == CallSrc.KFUNC else "indirect calls"
        raise _fail(slot, f"{kind} are not supported by the device")
    if opcode == LDDW and insn.src == PseudoSrc.BTF_ID:
        raise _fail(slot, "unsupported bpf_ld_imm64 source BTF_ID: the device has no kernel "
                          "symbols")


def _liveness(shape: Layout) -> tuple[frozenset[int], ...]:
    """Registers live on entry to each slot (``isa.liveness``), a helper call reading only its
    prototype's arguments as the kernel's liveness does: registers after them are not live
    there, so states differing in them are alike."""
    facts: list[UsesDefs] = []
    for insn in shape.slots:
        if insn is None:
            facts.append((0, 0))
        elif insn.opcode == CALL and insn.src == CallSrc.HELPER:
            proto = prototype(insn.imm)
            reads = ARGS if proto is None else ((1 << (len(proto.args) + 1)) - 2) & ARGS
            facts.append((reads, CLOBBERED))
        else:
            facts.append(uses_defs(insn))
    live, _ = solve(shape, facts, through_calls=False)
    sets: dict[int, frozenset[int]] = {}
    for mask in live:
        if mask not in sets:
            sets[mask] = frozenset(r for r in range(11) if mask >> r & 1)
    return tuple(sets[mask] for mask in live)
