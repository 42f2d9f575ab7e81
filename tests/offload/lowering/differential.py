"""Running a program and its lowering through the reference interpreter side by side.

Programs follow one convention: r1 points at input memory that holds the initial value of
register rN at ``[r1 + 8*N]`` (r1's own word is unused) followed by a scratch area; the
prologue loads the registers the test keeps live, the epilogue stores them back, so equal
output memory means every live register ended equal, and r0 is compared too.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from hypothesis import strategies as st

from offload.conformance.helpers import CONFORMANCE_HELPERS
from offload.engine.harness import run_on_memory
from offload.errors import OffloadError
from offload.isa import Instruction, assemble
from offload.isa.versions import program_version
from offload.lowering import lower_with_report

M64 = (1 << 64) - 1
REGS = (0, 2, 3, 4, 5, 6, 7, 8, 9)  # r1 holds the memory pointer, r10 the frame
SCRATCH_AREA = 80  # byte offset of the free area after the register words
MEMORY_SIZE = SCRATCH_AREA + 64

_EDGES64 = [0, 1, 2, 3, 7, M64, M64 - 1, 1 << 63, (1 << 63) - 1, (1 << 63) + 1, 1 << 31,
            (1 << 31) - 1, (1 << 32) - 1, 1 << 32, 0xFFFFFFFF80000000, 0xFFFFFFFF7FFFFFFF,
            0x80000000, 0x7FFFFFFF, 0x12345678_9ABCDEF0, 0xFFFF, 0x8000, 0x80, 0xFF]
_EDGES32 = [0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xFFFFFFFF, 0xFFFFFFFE, 0xFF, 0x80,
            0xFFFF, 0x8000, 7]

#: 64-bit register values biased toward the corners of both the 64- and the 32-bit ranges.
values64 = st.one_of(
    st.sampled_from(_EDGES64),
    st.builds(lambda hi, lo: (hi << 32) | lo, st.sampled_from([0, M64 >> 32, 1, 0x80000000,
                                                               0x7FFFFFFF, 0xDEADBEEF]),
              st.sampled_from(_EDGES32)),
    st.integers(0, M64),
)
#: 32-bit immediates (as the signed value the field holds).
imms = st.one_of(st.sampled_from([0, 1, -1, 2, -2, 3, -3, 7, -7, 0x7FFFFFFF, -0x80000000,
                                  0x7FFFFFFE, -0x7FFFFFFF, 0x8000, -0x8000]),
                 st.integers(-(1 << 31), (1 << 31) - 1))
regs = st.sampled_from(REGS)


def memory_for(values: dict[int, int], extra: bytes = b"") -> bytes:
    words = [values.get(reg, 0x0101010101010101 * (reg + 1)) & M64 for reg in range(10)]
    data = struct.pack("<10Q", *words) + extra
    return data.ljust(MEMORY_SIZE, b"\xa5")


def harness(body: str, live: Iterable[int]) -> str:
    """Load the ``live`` registers, run ``body``, store them back, return r0."""
    live = sorted(set(live) | {0})
    prologue = "\n".join(f"ldxdw %r{reg}, [%r1+{8 * reg}]" for reg in live)
    epilogue = "\n".join(f"stxdw [%r1+{8 * reg}], %r{reg}" for reg in live)
    return f"{prologue}\n{body}\n{epilogue}\nexit\n"


def outcome(insns: Sequence[Instruction], data: bytes) -> tuple:
    try:
        result, memory = run_on_memory(insns, data, helpers=CONFORMANCE_HELPERS,
                                       max_steps=100_000)
    except OffloadError as err:
        return ("error", type(err).__name__)
    return ("result", result.r0, memory)


def assert_equivalent(program: str | Sequence[Instruction], data: bytes, target: int,
                      **options: object) -> list[Instruction]:
    """Lower ``program`` to ``target`` and check both give the same r0 and memory."""
    insns = assemble(program) if isinstance(program, str) else list(program)
    lowered = lower_with_report(insns, target, **options)  # type: ignore[arg-type]
    assert program_version(lowered.instructions) <= target
    before, after = outcome(insns, data), outcome(lowered.instructions, data)
    assert before[0] == "result", f"the original program does not run: {before}"
    assert before == after, (before, after)
    return list(lowered.instructions)
