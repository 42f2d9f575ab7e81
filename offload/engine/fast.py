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
from collections.abc import Callable, Mapping, Sequence
from types import CodeType
from typing import Any

from ..isa.codec import encode
from ..isa.instruction import Instruction
from ..isa.opcodes import LDDW, PseudoSrc
from .alu import ALU32_OPS, ALU64_OPS, M64, bswap, sign_extend
from .compiler import translate
from .interpreter import (
    DEFAULT_MAX_STEPS,
    MAX_CALL_FRAMES,
    Execution,
    ExecutionError,
    Helper,
    Interpreter,
    TailCall,
    _Finish,
    _loop,
)
from .memory import Memory, MemoryFault

CACHE_SIZE = 256
_CODE_CACHE: OrderedDict[tuple[bytes, int, tuple[tuple[int, str], ...]], CodeType] = \
    OrderedDict()


def _budget_exhausted(budget: int, slot: int) -> ExecutionError:
    return ExecutionError(
        f"instruction budget of {budget} exhausted (the program may not terminate)",
        insn_index=slot)


def _too_deep(limit: int, slot: int) -> ExecutionError:
    return ExecutionError(f"the call stack is too deep: more than {limit} frames",
                          insn_index=slot)


def _fault(memory: Memory, slot: int, address: int, size: int, write: bool) -> None:
    """Raise the fault the memory model reports for this access, at this instruction."""
    try:
        memory.resolve(address, size, write)
    except MemoryFault as fault:
        raise fault.at(slot) from None
    raise ExecutionError("internal error: an access the fast path refused is valid",
                         insn_index=slot)


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
        "FAULT": _fault, "LOAD": _load, "CALLX": _callx, "MemoryFault": MemoryFault, "TailCall": TailCall,
        "BudgetExhausted": _budget_exhausted, "TooDeep": _too_deep,
    }
    for size, code in ((1, "B"), (2, "H"), (4, "I"), (8, "Q")):
        layout = struct.Struct("<" + code)
        namespace[f"UNPACK_{code}"] = layout.unpack_from
        namespace[f"PACK_{code}"] = layout.pack_into
    return namespace


_BASE = _base_namespace()


def compiled_code(program_bytes: bytes, source: Callable[[], str], max_call_frames: int,
                  facts: Mapping[int, str] | None = None) -> CodeType:
    """The compiled translation of a program, from the cache when it was seen before."""
    key = (program_bytes, max_call_frames, tuple(sorted((facts or {}).items())))
    code = _CODE_CACHE.get(key)
    if code is None:
        code = compile(source(), "<offload-fast-engine>", "exec")
        _CODE_CACHE[key] = code
        if len(_CODE_CACHE) > CACHE_SIZE:
            _CODE_CACHE.popitem(last=False)
    else:
        _CODE_CACHE.move_to_end(key)
    return code


class FastInterpreter(Interpreter):
    """A drop-in :class:`Interpreter` that runs the program's Python translation."""

    def __init__(self, insns: Sequence[Instruction], helpers: Mapping[int, Helper] | None = None,
                 *, resolve_lddw: Callable[[Instruction], int] | None = None,
                 max_steps: int = DEFAULT_MAX_STEPS, max_call_frames: int = MAX_CALL_FRAMES,
                 max_insns: int = 1_000_000, facts: Mapping[int, str] | None = None) -> None:
        """``facts`` are the verifier's ``memory_facts`` for a verified XDP program: the
        accesses they name skip the checks the verifier already made."""
        super().__init__(insns, helpers, resolve_lddw=resolve_lddw, max_steps=max_steps,
                         max_call_frames=max_call_frames, max_insns=max_insns)
        layout = self.layout
        code = compiled_code(encode(layout.instructions),
                             lambda: translate(layout, max_call_frames=max_call_frames,
                                               facts=facts),
                             max_call_frames, facts)
        namespace = dict(_BASE)
        for helper_id, fn in self.helpers.items():
            namespace[f"H{helper_id}"] = fn
        for slot, insn in enumerate(layout.slots):
            if insn is not None and insn.opcode == LDDW and insn.src != PseudoSrc.IMM64:
                assert resolve_lddw is not None  # the reference preparation checked it
                namespace[f"K{slot}"] = resolve_lddw(insn) & M64
        exec(code, namespace)  # noqa: S102 - our own translation of a checked program
        self._entry = namespace["F0"]

    def run(self, memory: Memory, *args: int, env: Any = None) -> int:
        """Run with r1.. = args and return r0: the packet path's entry, kept short (no
        result record)."""
        run, regs = self._start(memory, args, env)
        return _loop(self, regs, run)

    def _run(self, regs: list[int], run: Execution) -> tuple[TailCall | None, int]:
        try:
            results = self._entry(run, *regs, 0)
        except TailCall as call:
            return call, 0
        except _Finish as finish:
            return None, finish.value
        except (struct.error, AttributeError, TypeError, KeyError, IndexError) as err:
            # Only an access the verifier proved safe skips its checks; if one still misses,
            # the verifier was wrong: stop with a typed error, never a traceback.
            raise ExecutionError(f"internal error: a verified access was not valid ({err})",
                                 insn_index=0) from err
        return None, results[0]
