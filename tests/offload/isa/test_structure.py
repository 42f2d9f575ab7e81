"""The one structural pass: the verifier, the engines and the lowering refuse a malformed
program in the same words, and see the same functions, successors and blocks."""

from __future__ import annotations

import pytest

from offload.caps import load_profile
from offload.engine.interpreter import Interpreter
from offload.isa import assemble
from offload.isa.liveness import live_out, solve, uses_defs
from offload.isa.structure import StructureError, build_layout
from offload.lowering import LoweringError, lower
from offload.verifier import VerifierError, verify

FULL = load_profile("full")

MALFORMED = [
    ("ja +5\nmov %r0, 2\nexit", "jump out of range from insn 0 to 6"),
    ("call local +20\nmov %r0, 2\nexit", "function call to invalid insn 21"),
    ("ja +1\nlddw %r0, 0x100000001\nmov %r0, 2\nexit",
     "jump into the middle of ldimm64 insn 1"),
    ("mov %r0, 2\njeq %r1, 0, +2\ncall local +1\nexit\nmov %r0, 1\nexit",
     "jump out of range from insn 1 to 4: the target is in another function"),
    ("mov %r0, 2\nmov %r0, 1", "last insn is not an exit or jmp"),
]


@pytest.mark.parametrize(("text", "reason"), MALFORMED)
def test_every_consumer_refuses_a_malformed_program_in_the_same_words(text, reason):
    insns = assemble(text)
    with pytest.raises(StructureError, match=reason):
        build_layout(insns)
    with pytest.raises(StructureError, match=reason):
        Interpreter(insns)
    with pytest.raises(VerifierError, match=reason):
        verify(insns, caps=FULL)
    with pytest.raises(LoweringError, match=reason):
        lower(insns, 1)


def test_the_layout_knows_functions_successors_and_blocks():
    layout = build_layout(assemble("""
        mov %r1, 1
        call local fn
        jeq %r0, 0, +2
        lddw %r0, 0x100000001
        exit
    fn:
        mov %r0, %r1
        exit
    """))
    assert layout.subprograms == (0, 6)
    assert layout.function_of == (0,) * 6 + (6, 6)
    assert layout.calls == ((1, 6),)
    assert layout.successors(2) == (3, 5)
    assert layout.successors(3) == (5,)
    assert layout.successors(5) == ()
    assert layout.block_leaders() == [0, 3, 5, 6]


def test_liveness_reads_through_a_call_only_when_asked():
    layout = build_layout(assemble("mov %r6, 1\ncall local +1\nexit\nmov %r0, %r6\nexit"))
    facts = [uses_defs(insn) if insn is not None else (0, 0) for insn in layout.slots]
    assert live_out(layout)[0] & 1 << 6  # the callee reads r6 on entry
    _, out = solve(layout, facts, through_calls=False)
    assert not out[0] & 1 << 6
