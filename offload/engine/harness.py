"""Running a bare program on input memory: the convention of the conformance suites.

r1 holds the address of a writable copy of the input bytes (0 when there are none) and r2
its length; the result is r0. No context, no maps: the program, its stack and that memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..isa.instruction import Instruction
from .interpreter import DEFAULT_MAX_STEPS, ExecResult, Helper, Interpreter
from .memory import Memory, RegionKind


def run_on_memory(insns: Sequence[Instruction] | Interpreter, data: bytes = b"", *,
                  helpers: Mapping[int, Helper] | None = None,
                  max_steps: int = DEFAULT_MAX_STEPS) -> tuple[ExecResult, bytes]:
    """Run and return the result with the input memory as the program left it."""
    program = insns if isinstance(insns, Interpreter) else Interpreter(
        insns, helpers, max_steps=max_steps)
    memory = Memory()
    buffer = bytearray(data)
    address = 0
    if buffer:
        address = memory.add_region(RegionKind.INPUT, buffer, name="input memory").address
    result = program.execute(memory, address, len(buffer))
    return result, bytes(buffer)
