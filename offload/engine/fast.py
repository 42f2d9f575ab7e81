"""The fast engine: programs translated once into Python functions and run as native code.

``FastInterpreter`` accepts and refuses exactly what :class:`~.interpreter.Interpreter` does
(it is one, with a different ``_run``), compiles the translation of :mod:`.compiler` with
``compile()`` and caches the code object by the program's bytes, so devices that load the same
program twice, or a restore of a snapshot, translate it once. Faults, helper calls, tail calls
and budgets behave as in the reference interpreter, which stays the oracle: the tests run
both and compare.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Container, Mapping, Sequence
from types import CodeType, TracebackType
from typing import Any

from ..isa.codec import encode
from ..isa.instruction import Instruction
from ..isa.opcodes import LDDW, PseudoSrc
from .alu import ALU32_OPS, ALU64_OPS, M64, bswap, sign_extend
from .callbacks import loop_refusal
from .compiler import Translator
from .facts import Fact, Reach
from .interpreter import (
    DEFAULT_MAX_STEPS,
    MAX_CALL_FRAMES,
    Execution,
    ExecutionError,
    Helper,
    Interpreter,
    LoadError,
    TailCall,
    _Finish,
    _loop,
)
from .memory import Memory, MemoryFault, ProvenanceFault, Region, RegionKind

CACHE_SIZE = 256
SOURCE_NAME = "<offload-fast-engine>"
#: The compiled translation, the slot of each source line, and the names it needs bound.
Compiled = tuple[CodeType, list[int], dict[str, tuple[str, Any]]]
_CODE_CACHE: OrderedDict[tuple[bytes, int, tuple[tuple[int, Fact], ...] | None], Compiled] = \
    OrderedDict()


def _budget_exhausted(budget: int, slot: int) -> ExecutionError:
    return ExecutionError(
        f"instruction budget of {budget} exhausted (the program may not terminate)",
        insn_index=slot)


def _too_deep(limit: int, slot: int) -> ExecutionError:
    return ExecutionError(f"the call stack is too deep: more than {limit} frames",
                          insn_index=slot)


def _not_callback(target: int, slot: int) -> ExecutionError:
    return ExecutionError(f"bpf_loop's callback {target:#x} is not a subprogram of the "
                          "program", insn_index=slot)


def _fault(memory: Memory, slot: int, address: int, size: int, write: bool) -> None:
    """Raise the fault the memory model reports for this access, at this instruction."""
    try:
        memory.resolve(address, size, write)
    except MemoryFault as fault:
        raise fault.at(slot) from None
    raise ExecutionError("internal error: an access the fast path refused is valid",
                         insn_index=slot)


def _provenance_fault(memory: Memory, slot: int, address: int, size: int, write: bool,
                      who: str, allowed: str) -> None:
    """An access (or a helper's pointer argument) reaching memory its fact does not allow."""
    region = memory.region_at(address)
    if region is None and size:
        _fault(memory, slot, address, size, write)
    reaches = "unmapped memory" if region is None else region.name or region.kind.value
    raise ProvenanceFault(f"{who} reaches {reaches}, which the verifier did not prove it "
                          f"may reach (only {allowed})", address=address, size=size,
                          write=write, insn_index=slot)


def _unverified(memory: Memory, slot: int, address: int, size: int, write: bool,
                who: str) -> None:
    raise ProvenanceFault(f"{who}: the verifier never reached this access", address=address,
                          size=size, write=write, insn_index=slot)


def _frame_at(memory: Memory, depth: int) -> Region | None:
    """The stack frame of call depth ``depth``, if there is one."""
    stacks = memory._stacks
    return stacks[depth] if 0 <= depth < len(stacks) else None


def _load(memory: Memory, slot: int, address: int, size: int) -> int:
    """A load the inline path does not serve (computed memory, or a fault to report)."""
    try:
        return memory.load(address, size)
    except MemoryFault as fault:
        raise fault.at(slot) from None


def _callx(ex: Execution, helper_id: int, slot: int) -> Callable[..., int]:
    fn = ex.program.helpers.get(helper_id)
    if fn is None:
        raise ExecutionError(f"callx to unknown helper #{helper_id}", insn_index=slot)
    return lambda *args: fn(ex, *args)


def _base_namespace() -> dict[str, Any]:
    namespace: dict[str, Any] = {
        "ALU64": ALU64_OPS, "ALU32": ALU32_OPS, "BSWAP": bswap, "SEXT": sign_extend,
        "FAULT": _fault, "LOAD": _load, "CALLX": _callx, "MemoryFault": MemoryFault,
        "TailCall": TailCall, "BudgetExhausted": _budget_exhausted, "TooDeep": _too_deep,
        "PFAULT": _provenance_fault, "UNVERIFIED": _unverified, "FRAME_AT": _frame_at,
        "K_CONTEXT": RegionKind.CONTEXT, "K_PACKET": RegionKind.PACKET, "NO_REACH": {},
        "K_RINGBUF": RegionKind.RINGBUF,
        "LOOP_REFUSAL": loop_refusal, "NotCallback": _not_callback,
    }
    for code in "BHIQ":
        layout = struct.Struct("<" + code)
        namespace[f"UNPACK_{code}"] = layout.unpack_from
        namespace[f"PACK_{code}"] = layout.pack_into
    return namespace


_BASE = _base_namespace()


def compiled_code(program_bytes: bytes, translator: Callable[[], Translator],
                  max_call_frames: int, facts: Mapping[int, Fact] | None = None) -> Compiled:
    """The compiled translation of a program, from the cache when it was seen before."""
    key = (program_bytes, max_call_frames,
           None if facts is None else tuple(sorted(facts.items())))
    compiled = _CODE_CACHE.get(key)
    if compiled is None:
        made = translator()
        source, lines = made.emit()
        compiled = (compile(source, SOURCE_NAME, "exec"), lines, dict(made.names))
        _CODE_CACHE[key] = compiled
        if len(_CODE_CACHE) > CACHE_SIZE:
            _CODE_CACHE.popitem(last=False)
    else:
        _CODE_CACHE.move_to_end(key)
    return compiled


def _admits(reach: Reach, owners: _AnyOf) -> Callable[[Region], bool]:
    """Whether a region is memory ``reach`` allows, for checks outside generated code (a
    stack frame is allowed whichever frame it is: the call depth is not known there)."""
    kinds = reach.kinds

    def admits(region: Region) -> bool:
        kind = region.kind
        if kind not in kinds:
            return False
        return kind != RegionKind.MAP_VALUE or region.owner in owners
    return admits


class _AnyOf:
    """Owners of map values a multi-map fact allows: some maps, and inner maps' values."""

    __slots__ = ("owners", "inner")

    def __init__(self, owners: frozenset[Any], inner: tuple[Container[Any], ...]) -> None:
        self.owners = owners
        self.inner = inner

    def __contains__(self, owner: object) -> bool:
        return owner in self.owners or any(owner in scope for scope in self.inner)


class FastInterpreter(Interpreter):
    """A drop-in :class:`Interpreter` that runs the program's Python translation."""

    def __init__(self, insns: Sequence[Instruction], helpers: Mapping[int, Helper] | None = None,
                 *, resolve_lddw: Callable[[Instruction], int] | None = None,
                 max_steps: int = DEFAULT_MAX_STEPS, max_call_frames: int = MAX_CALL_FRAMES,
                 max_insns: int = 1_000_000, facts: Mapping[int, Fact] | None = None,
                 map_owner: Callable[[int], Any] | None = None,
                 inner_owners: Callable[[int], Container[Any]] | None = None) -> None:
        """``facts`` are the verifier's ``engine_facts`` for a verified XDP program: the
        accesses they prove skip the checks the verifier already made, the others are checked
        against the memory the facts allow. ``map_owner(handle)`` is the owner of that map's
        value regions (``Region.owner``), ``inner_owners(handle)`` holds the owners of the
        values of a map of maps' inner maps: the device resolves the maps the facts name."""
        super().__init__(insns, helpers, resolve_lddw=resolve_lddw, max_steps=max_steps,
                         max_call_frames=max_call_frames, max_insns=max_insns)
        layout = self.layout
        code, self._line_slots, names = compiled_code(
            encode(layout.instructions),
            lambda: Translator(layout, max_call_frames=max_call_frames, facts=facts),
            max_call_frames, facts)
        namespace = dict(_BASE)
        for helper_id, fn in self.helpers.items():
            namespace[f"H{helper_id}"] = fn
        map_pointers: dict[int, int] = {}
        for slot, insn in enumerate(layout.slots):
            if insn is not None and insn.opcode == LDDW and insn.src == PseudoSrc.FUNC:
                namespace[f"K{slot}"] = slot + 1 + insn.imm  # a subprogram: its first slot
            elif insn is not None and insn.opcode == LDDW and insn.src != PseudoSrc.IMM64:
                assert resolve_lddw is not None  # the reference preparation checked it
                namespace[f"K{slot}"] = value = resolve_lddw(insn) & M64
                if insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX):
                    map_pointers[insn.imm] = value
        self._bind(namespace, names, map_pointers, map_owner, inner_owners)
        #: a verified program's helpers read through printed arguments only where a call's
        #: facts allow it (``Execution.check_pointer``)
        self._arg_reach: dict[int, Callable[[Region], bool]] | None = \
            None if facts is None else {}
        exec(code, namespace)  # noqa: S102 - our own translation of a checked program
        self._entry = namespace["F0"]
        namespace["FUNCS"] = {start: namespace[f"F{start}"] for start in layout.subprograms}

    @staticmethod
    def _bind(namespace: dict[str, Any], names: Mapping[str, tuple[str, Any]],
              map_pointers: Mapping[int, int], map_owner: Callable[[int], Any] | None,
              inner_owners: Callable[[int], Container[Any]] | None) -> None:
        """Resolve the maps the facts name (the device's handles) to what the code compares
        regions and map pointers with."""
        def owner(handle: int) -> Any:
            if map_owner is None:
                raise LoadError(f"the verifier's facts name map {handle}, and the engine "
                                "was given no maps", insn_index=0)
            return map_owner(handle)

        def owners(reach: Reach) -> _AnyOf:
            if reach.inner_of and inner_owners is None:
                raise LoadError("the verifier's facts name inner maps, and the engine was "
                                "given no maps", insn_index=0)
            return _AnyOf(frozenset(owner(h) for h in reach.maps),
                          tuple(inner_owners(h) for h in sorted(reach.inner_of))
                          if inner_owners is not None else ())

        for name, (what, data) in names.items():
            if what == "map":
                namespace[name] = owner(data)
            elif what == "map pointer":
                if data not in map_pointers:
                    raise LoadError(f"the verifier's facts name map {data}, which no lddw of "
                                    "the program loads", insn_index=0)
                namespace[name] = map_pointers[data]
            elif what == "owners":
                namespace[name] = owners(data)
            elif what == "printed":
                namespace[name] = {arg.regno: _admits(arg, owners(arg)) for arg in data}

    def run(self, memory: Memory, *args: int, env: Any = None) -> int:
        """Run with r1.. = args and return r0: the packet path's entry, kept short (no
        result record)."""
        run, regs = self._start(memory, args, env)
        return _loop(self, regs, run)

    def _run(self, regs: list[int], run: Execution) -> tuple[TailCall | None, int]:
        run.arg_reach = self._arg_reach
        try:
            results = self._entry(run, *regs, 0)
        except TailCall as call:
            return call, 0
        except _Finish as finish:
            return None, finish.value
        except (struct.error, AttributeError, TypeError, KeyError, IndexError) as err:
            # Only an access the verifier proved safe skips its checks; if one still misses,
            # the verifier was wrong: stop with a typed error, never a traceback.
            slot = self._failing_slot(err.__traceback__)
            raise ExecutionError(f"internal error: a verified access was not valid ({err})",
                                 insn_index=slot) from err
        return None, results[0]

    def _failing_slot(self, tb: TracebackType | None) -> int:
        """The instruction whose translation raised: the innermost line of generated code."""
        line = 0
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == SOURCE_NAME:
                line = tb.tb_lineno
            tb = tb.tb_next
        return self._line_slots[line - 1] if 0 < line <= len(self._line_slots) else 0
