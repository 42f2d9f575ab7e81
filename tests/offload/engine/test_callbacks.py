"""``bpf_loop`` in both engines: what it returns, how often it calls back, frames and budgets.

The programs run unverified (the conformance convention: r1 points at input memory), so the
cases the verifier refuses (flags, a number as the callback) reach the engines too.
"""

from __future__ import annotations

import errno

import pytest

from offload.engine import ExecutionError, Interpreter
from offload.engine.fast import FastInterpreter
from offload.engine.harness import run_on_memory
from offload.helpers.prototypes import BPF_MAX_LOOPS
from offload.isa import assemble
from offload.runtime.xdp import XDP_HELPERS

ENGINES = {"reference": Interpreter, "fast": FastInterpreter}
M64 = (1 << 64) - 1

# bpf_loop(COUNT, cb, r1 = the input memory, FLAGS); the callback adds index + 1 to the u64
# at ctx and stops (returns 1) when the index is STOP. Returns bpf_loop's result; the sum is
# left in the input memory.
SUM = """
mov %r3, %r1
{count}
lddw %r2, func cb
{flags}
call 181
exit
cb:
ldxdw %r3, [%r2+0]
add %r3, %r1
add %r3, 1
stxdw [%r2+0], %r3
mov %r0, 0
jne %r1, {stop}, +1
mov %r0, 1
exit
"""


def run(engine: str, text: str, data: bytes = bytes(8), **options) -> tuple[int, bytes, int]:
    program = ENGINES[engine](assemble(text), XDP_HELPERS, **options)
    result, memory = run_on_memory(program, data)
    return result.r0, memory, result.steps


def sum_program(count: int | str, stop: int = -1, flags: int = 0) -> str:
    count_text = f"lddw %r1, {count:#x}" if isinstance(count, int) else count
    return SUM.format(count=count_text, flags=f"mov %r4, {flags}", stop=stop)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("count", "stop", "calls"), [(0, -1, 0), (1, -1, 1), (5, -1, 5),
                                                     (5, 2, 3), (5, 0, 1)])
def test_the_callback_runs_until_the_count_or_until_it_returns_1(engine, count, stop, calls):
    r0, memory, _ = run(engine, sum_program(count, stop))
    assert r0 == calls
    assert int.from_bytes(memory, "little") == calls * (calls + 1) // 2


@pytest.mark.parametrize("engine", ENGINES)
def test_errors_without_calling_back(engine):
    r0, memory, _ = run(engine, sum_program(3, flags=1))
    assert (r0, memory) == (-errno.EINVAL & M64, bytes(8))
    r0, memory, _ = run(engine, sum_program(BPF_MAX_LOOPS + 1))
    assert (r0, memory) == (-errno.E2BIG & M64, bytes(8))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_count_is_a_u32(engine):
    r0, _, _ = run(engine, sum_program((7 << 32) | 2))
    assert r0 == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_each_call_has_a_fresh_frame_and_the_caller_keeps_its_registers(engine):
    text = """
    mov %r6, 42
    stdw [%r10-8], 5
    mov %r3, %r1
    mov %r1, 3
    lddw %r2, func cb
    mov %r4, 0
    call 181
    ldxdw %r1, [%r10-8]
    add %r6, %r1
    mov %r0, %r6
    exit
    cb:
    ldxdw %r3, [%r10-8]
    add %r3, 100
    stxdw [%r10-8], %r3
    ldxdw %r4, [%r2+0]
    add %r4, %r3
    stxdw [%r2+0], %r4
    mov %r6, 7
    mov %r0, 0
    exit
    """
    r0, memory, _ = run(engine, text)
    assert r0 == 47  # r6 and the caller's stack untouched by the callback
    assert int.from_bytes(memory, "little") == 300  # each call saw a zeroed slot


@pytest.mark.parametrize("engine", ENGINES)
def test_callback_instructions_count_against_the_budget(engine):
    _, _, steps = run(engine, sum_program(10))
    assert steps == 6 + 10 * 7  # the caller, then 7 instructions a call
    with pytest.raises(ExecutionError, match="budget"):
        run(engine, sum_program(1000), max_steps=500)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_callback_is_a_frame_against_the_call_depth(engine):
    nested = sum_program(2).replace("cb:\n", "cb:\ncall local f\n") + "f:\nmov %r0, 0\nexit\n"
    assert run(engine, nested, max_call_frames=3)[0] == 2
    with pytest.raises(ExecutionError, match="too deep"):
        run(engine, nested, max_call_frames=2)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_number_is_not_a_callback(engine):
    text = sum_program(2).replace("lddw %r2, func cb", "mov %r2, 3")
    with pytest.raises(ExecutionError, match="not a subprogram"):
        run(engine, text)
