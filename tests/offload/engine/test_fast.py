"""The fast engine against the reference interpreter, the oracle: same results, same memory
after, same faults at the same instruction."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.conformance.helpers import CONFORMANCE_HELPERS
from offload.conformance.suite import all_cases, case_program, conformance_root, parse_case
from offload.engine import Interpreter, Memory, TailCall
from offload.engine.fast import FastInterpreter
from offload.engine.harness import run_on_memory
from offload.errors import OffloadError
from offload.isa import assemble, decode
from offload.isa.instruction import VALID_OPCODES


def outcome(cls, insns, data, **kwargs):
    try:
        program = cls(insns, CONFORMANCE_HELPERS, **kwargs)
        result, after = run_on_memory(program, data)
    except OffloadError as err:
        index = getattr(err, "insn_index", None)
        text = str(err)
        if "budget" in text:  # the fast engine counts per block: same error, block-start index
            index, text = None, text.split(" at insn")[0]
        return "error", type(err).__name__, index, text
    return "result", result.r0, result.steps, after


@pytest.mark.skipif(conformance_root() is None, reason="conformance suites not found")
@pytest.mark.parametrize("path", all_cases(), ids=lambda p: p.name)
def test_conformance_programs_agree(path):
    case = parse_case(path)
    try:
        insns = case_program(case)
    except OffloadError:
        pytest.skip("does not assemble")
    assert outcome(FastInterpreter, insns, case.memory) == outcome(Interpreter, insns,
                                                                   case.memory)


ALU = ["add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "xor", "lsh", "rsh",
       "arsh", "mov"]
JUMPS = ["jeq", "jne", "jgt", "jge", "jlt", "jle", "jset", "jsgt", "jsge", "jslt", "jsle"]
regs = st.integers(0, 5).map(lambda n: f"%r{n}")
imms = st.one_of(st.integers(-4, 40), st.sampled_from([-1, 0x7FFFFFFF, -0x80000000, 63, 64]))


@st.composite
def programs(draw):
    """Straight-line and branching code over r0-r5 with loads and stores into the input
    memory (r1) and the stack, a helper call and a local call; jumps stay forward so most
    programs end, and some fault."""
    n = draw(st.integers(3, 24))
    lines = ["mov %r0, 0", "mov %r6, %r1"]
    for _ in range(n):
        kind = draw(st.sampled_from(["alu", "alu", "alu32", "jump", "load", "store", "stack",
                                     "call", "lddw"]))
        dst = draw(regs.filter(lambda r: r != "%r1"))
        if kind == "alu":
            src = draw(st.one_of(regs, imms.map(str)))
            lines.append(f"{draw(st.sampled_from(ALU))} {dst}, {src}")
        elif kind == "alu32":
            src = draw(st.one_of(regs, imms.map(str)))
            lines.append(f"{draw(st.sampled_from(ALU))}32 {dst}, {src}")
        elif kind == "jump":
            op = draw(st.sampled_from(JUMPS)) + draw(st.sampled_from(["", "32"]))
            lines.append(f"{op} {dst}, {draw(st.one_of(regs, imms.map(str)))}, "
                         f"+{draw(st.integers(0, 3))}")
        elif kind == "load":
            size = draw(st.sampled_from(["b", "h", "w", "dw", "sb", "sh", "sw"]))
            lines.append(f"ldx{size} {dst}, [%r6+{draw(st.integers(0, 12))}]")
        elif kind == "store":
            size = draw(st.sampled_from(["b", "h", "w", "dw"]))
            lines.append(f"stx{size} [%r6+{draw(st.integers(0, 12))}], {dst}")
        elif kind == "stack":
            lines.append(f"stxdw [%r10-{8 * draw(st.integers(1, 4))}], {dst}")
            lines.append(f"ldxw {dst}, [%r10-{4 * draw(st.integers(1, 8))}]")
        elif kind == "call":
            lines.append(draw(st.sampled_from(["call 0", "call 2", "call local sub"])))
        else:
            lines.append(f"lddw {dst}, {draw(st.integers(0, (1 << 64) - 1))}")
    lines += ["exit", "exit", "exit", "exit", "sub:", "add %r0, %r1", "lsh %r0, 3", "exit"]
    return "\n".join(lines)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.binary(min_size=0, max_size=20))
def test_generated_programs_agree(text, data):
    insns = assemble(text)
    assert outcome(FastInterpreter, insns, data) == outcome(Interpreter, insns, data)


slot = st.builds(lambda op, regs, off, imm: struct.pack("<BBhi", op, regs, off, imm),
                 st.sampled_from(sorted(VALID_OPCODES)), st.integers(0, 255),
                 st.integers(-8, 8), st.integers(-64, 64))


@settings(max_examples=300, deadline=None)
@given(st.lists(slot, min_size=1, max_size=16), st.binary(max_size=24))
def test_random_bytecode_agrees(parts, data):
    try:
        insns = decode(b"".join(parts))
    except OffloadError:
        return
    assert outcome(FastInterpreter, insns, data, max_steps=500) == outcome(
        Interpreter, insns, data, max_steps=500)


def test_loops_budgets_and_tail_calls():
    loop = assemble("mov %r0, 0\nl:\nadd %r0, 3\njlt %r0, 3000, l\nexit")
    assert outcome(FastInterpreter, loop, b"") == outcome(Interpreter, loop, b"")
    assert outcome(FastInterpreter, loop, b"", max_steps=100)[:2] == ("error", "ExecutionError")

    target = FastInterpreter(assemble("mov %r0, %r1\nadd %r0, 1\nexit"))

    def tail(ex, ctx, *_):
        raise TailCall(target, ctx)

    caller = FastInterpreter(assemble("mov %r1, 41\ncall 12\nexit"), {12: tail})
    assert caller.run(Memory()) == 42


def test_translations_are_cached():
    from offload.engine import fast

    insns = assemble("mov %r0, 7\nexit")
    FastInterpreter(insns)
    size = len(fast._CODE_CACHE)
    FastInterpreter(insns)
    assert len(fast._CODE_CACHE) == size


def test_verifier_facts_drop_only_proven_wraparound():
    """A 64-bit add the verifier bounds skips its reduction; one that may wrap keeps it, and
    both engines agree either way."""
    from offload.caps import load_profile
    from offload.engine.facts import NoWrapFact
    from offload.isa.opcodes import AluOp
    from offload.verifier import verify

    program = assemble("""
        mov %r6, %r1
        mov %r0, 0
        mov %r2, 0
    loop:
        add %r0, %r2
        add %r2, 1
        jlt %r2, 100, loop
        lddw %r3, 0xffffffffffffffff
        add %r3, %r0
        mov %r0, %r3
        exit
    """)
    # no-wrap facts come only from a verification comparing every scalar when pruning
    assert not verify(program, caps=load_profile("full")).no_wrap
    stats = verify(program, caps=load_profile("full"), precision=False)
    facts = stats.engine_facts()
    assert isinstance(facts.get(3), NoWrapFact) and isinstance(facts.get(4), NoWrapFact)
    assert facts[3].op == AluOp.ADD and (facts[3].dst, facts[3].src) == (0, 2)
    assert 8 not in stats.no_wrap  # r3 = 2^64-1 plus a positive r0 wraps
    expected = run_on_memory(Interpreter(program), b"")[0]
    got = run_on_memory(FastInterpreter(program, facts=facts), b"")[0]
    assert got == expected and got.r0 == (sum(range(100)) - 1)
