"""may_goto on every engine: each call frame starts with a hidden counter of BPF_MAX_LOOPS; a
may_goto falls through (and takes one) while it lasts and jumps once it is used up.

The counter is patched small (``interpreter.BPF_MAX_LOOPS``, read whenever a frame starts) so
the reference interpreter runs these quickly; one test runs the kernel's own 8M on the fast
engine."""

from __future__ import annotations

import pytest

from offload.engine import Interpreter, Memory, interpreter
from offload.engine.fast import FastInterpreter
from offload.isa import assemble

from .test_fast import outcome

ENGINES = [Interpreter, FastInterpreter,
           lambda insns, *a, **k: Interpreter(insns, *a, provenance={}, **k)]
IDS = ["reference", "fast", "provenance"]

COUNT = """
mov %r0, 0
top:
may_goto done
add %r0, 1
ja top
done:
exit
"""

# The main frame loops until its counter is spent; each call's frame has a counter of its own.
PER_FRAME = """
mov %r6, 0
top:
may_goto done
call local inner
add %r6, %r0
ja top
done:
mov %r0, %r6
exit
inner:
mov %r0, 0
again:
may_goto back
add %r0, 1
ja again
back:
exit
"""

# Two loops in one frame share its counter: the second finds it spent and never iterates.
SHARED = """
mov %r0, 0
first:
may_goto second
add %r0, 1
ja first
second:
may_goto out
add %r0, 1000
ja second
out:
exit
"""

# A loop that ends by its own test first: may_goto never jumps.
OWN_EXIT = """
mov %r0, 0
top:
may_goto out
add %r0, 3
jlt %r0, 12, top
out:
exit
"""


@pytest.fixture
def small_counter(monkeypatch):
    monkeypatch.setattr(interpreter, "BPF_MAX_LOOPS", 5)


@pytest.mark.parametrize("engine", ENGINES, ids=IDS)
@pytest.mark.parametrize(("text", "r0"), [(COUNT, 5), (PER_FRAME, 25), (SHARED, 5),
                                          (OWN_EXIT, 12)], ids=["count", "per-frame",
                                                                "shared", "own-exit"])
def test_counter_semantics(small_counter, engine, text, r0):
    assert engine(assemble(text)).run(Memory()) == r0


@pytest.mark.parametrize("text", [COUNT, PER_FRAME, SHARED, OWN_EXIT])
def test_engines_agree_on_results_steps_and_memory(small_counter, text):
    insns = assemble(text)
    assert outcome(FastInterpreter, insns, b"") == outcome(Interpreter, insns, b"")


def test_every_run_starts_with_a_full_counter(small_counter):
    for engine in (Interpreter, FastInterpreter):
        program = engine(assemble(COUNT))
        assert [program.run(Memory()) for _ in range(3)] == [5, 5, 5]


def test_a_budget_still_stops_a_long_loop():
    """The counter bounds the loop, the instruction budget bounds the run: 8M iterations of
    three instructions do not fit in 1000 steps on either engine."""
    for engine in (Interpreter, FastInterpreter):
        with pytest.raises(Exception, match="instruction budget of 1000 exhausted"):
            engine(assemble(COUNT), max_steps=1000).run(Memory())


def test_the_kernels_counter_on_the_fast_engine():
    """BPF_MAX_LOOPS is 8 * 1024 * 1024 (the kernel selftest cond_break4 returns 0x800000)."""
    assert interpreter.BPF_MAX_LOOPS == 8 * 1024 * 1024
    program = FastInterpreter(assemble(COUNT), max_steps=4 * interpreter.BPF_MAX_LOOPS)
    assert program.run(Memory()) == 0x800000
