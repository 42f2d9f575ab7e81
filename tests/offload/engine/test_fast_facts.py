"""The verifier's facts as the fast engine uses them: typed, naming what they were proven for,
checked against the instruction; unproven accesses checked against the memory the facts allow;
proven ones indexing only the region they were proven for; accesses the verifier never saw
refused. Facts are built by hand where a wrong verifier is the point."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from offload.caps import load_profile
from offload.engine import ExecutionError, Interpreter, LoadError, Memory, RegionKind
from offload.engine.compiler import Translator
from offload.engine.facts import Access, AccessFact, CallFact, NoWrapFact
from offload.engine.fast import FastInterpreter
from offload.engine.harness import run_on_memory
from offload.engine.memory import ProvenanceFault
from offload.isa import assemble
from offload.isa.opcodes import AluOp
from offload.maps.spec import MapSpec
from offload.uapi import MapType
from offload.verifier import verify

FULL = load_profile("full")
STACK, PACKET, CONTEXT, VALUE = (RegionKind.STACK, RegionKind.PACKET, RegionKind.CONTEXT,
                                 RegionKind.MAP_VALUE)


def stack_fact(op: Access, reg: int, off: int, size: int, frames=(0,), proven=True) -> AccessFact:
    return AccessFact(frozenset({STACK}), frames=frozenset(frames), op=op, reg=reg, off=off,
                      size=size, proven=proven)


# ---------------------------------------------------------------- what the verifier states
def test_verifier_facts_name_memory_maps_frames_and_instructions():
    maps = {1: MapSpec("counts", MapType.ARRAY, 4, 8, 4),
            2: MapSpec("outer", MapType.ARRAY_OF_MAPS, 4, 4, 2,
                       inner=MapSpec("inner", MapType.ARRAY, 4, 16, 1))}
    insns = assemble("""
        mov %r6, %r1
        ldxw %r7, [%r6+0]
        stw [%r10-4], 0
        lddw %r1, map_fd(1)
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        lddw %r1, 5
        stxdw [%r0+0], %r1
        lddw %r1, map_fd(2)
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r1, %r0
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        ldxdw %r1, [%r0+8]
        mov %r1, %r10
        add %r1, -4
        call local sub
    out:
        mov %r0, 2
        exit
    sub:
        ldxw %r0, [%r1+0]
        mov %r0, 0
        exit
    """)
    stats = verify(insns, caps=FULL, maps=maps)
    facts = stats.engine_facts()
    assert facts[1] == AccessFact(frozenset({CONTEXT}), op=Access.LOAD, reg=6, off=0, size=4)
    assert facts[2] == stack_fact(Access.STORE, 10, -4, 4)
    assert facts[11] == AccessFact(frozenset({VALUE}), maps=frozenset({1}), op=Access.STORE, reg=0,
                                   off=0, size=8)
    assert facts[23] == AccessFact(frozenset({VALUE}), inner_of=frozenset({2}), op=Access.LOAD, reg=0,
                                   off=8, size=8)
    # the callee's load through the caller's frame
    assert facts[29] == stack_fact(Access.LOAD, 1, 0, 4, frames=(1,))
    lookup = facts[7]
    assert isinstance(lookup, CallFact) and lookup.helper == 1
    assert lookup.map_args == ((1, frozenset({1})),)
    (key,) = lookup.memory
    assert (key.regno, key.kinds, key.frames) == (2, frozenset({STACK}), frozenset({0}))
    inner_lookup = facts[21]
    assert isinstance(inner_lookup, CallFact) and inner_lookup.map_args == ()  # inner: run time
    for slot, fact in facts.items():
        assert fact.applies_to(stats_insn(insns, slot))


def stats_insn(insns, slot):
    return Interpreter(insns, {1: lambda *_: 0}, resolve_lddw=lambda i: 0).layout.slots[slot]


def test_no_wrap_facts_are_used_only_for_the_operation_they_were_proven_for():
    insns = assemble("mov %r0, 5\nadd %r0, 7\nexit")
    layout = Interpreter(insns).layout
    proven = NoWrapFact(AluOp.ADD, 0, imm=7)
    source = Translator(layout, max_call_frames=8, facts={1: proven}).source()
    assert "r0 = r0 + 0x7" in source and "r0 = (r0 + 0x7) &" not in source
    for wrong in (NoWrapFact(AluOp.SUB, 0, imm=7), NoWrapFact(AluOp.ADD, 1, imm=7),
                  NoWrapFact(AluOp.ADD, 0, imm=8), NoWrapFact(AluOp.ADD, 0, src=1)):
        with pytest.raises(LoadError, match="does not apply") as info:
            FastInterpreter(insns, facts={1: wrong})
        assert info.value.insn_index == 1


def test_facts_of_another_program_are_refused():
    facts = verify(assemble("ldxw %r0, [%r1+0]\nmov %r0, 2\nexit"), caps=FULL).engine_facts()
    with pytest.raises(LoadError, match="does not apply"):
        FastInterpreter(assemble("ldxw %r0, [%r1+4]\nmov %r0, 2\nexit"), facts=facts)
    with pytest.raises(LoadError, match="does not apply"):
        FastInterpreter(assemble("stw [%r1+0], 1\nmov %r0, 2\nexit"), facts=facts)


# ---------------------------------------------------------------- what the engine does
def run_fast(text: str, facts, data: bytes = bytes(16), **kwargs):
    return run_on_memory(FastInterpreter(assemble(text), facts=facts, **kwargs), data)


def test_an_unproven_access_is_checked_against_the_memory_it_may_reach():
    text = "mov %r2, %r10\nadd %r2, -8\nstdw [%r2+0], 9\nldxdw %r0, [%r2+0]\nexit"
    own = {2: stack_fact(Access.STORE, 2, 0, 8, proven=False), 3: stack_fact(Access.LOAD, 2, 0, 8)}
    assert run_fast(text, own)[0].r0 == 9
    caller = {2: stack_fact(Access.STORE, 2, 0, 8, frames=(1,), proven=False), 3: own[3]}
    with pytest.raises(ProvenanceFault, match="reaches stack frame 0") as info:
        run_fast(text, caller)
    assert info.value.insn_index == 2
    # an access into input memory, which no fact can allow
    with pytest.raises(ProvenanceFault, match="reaches input memory") as info:
        run_fast("ldxb %r0, [%r1+0]\nexit", {0: AccessFact(
            frozenset({PACKET, STACK}), frames=frozenset({0}), op=Access.LOAD, reg=1, off=0, size=1)})
    assert info.value.insn_index == 0


def test_a_proven_access_indexes_only_the_region_it_was_proven_for():
    """A wrong 'proven stack' fact for a store through the input pointer: the store can only
    land in the stack frame, never in input memory."""
    program = FastInterpreter(assemble("mov %r0, 0\nstdw [%r1+0], 7\nexit"),
                              facts={1: stack_fact(Access.STORE, 1, 0, 8)})
    memory = Memory()
    data = memory.add_region(RegionKind.INPUT, bytearray(8), name="input memory")
    with pytest.raises(ExecutionError, match="internal error") as info:
        program.run(memory, data.address)
    assert info.value.insn_index == 1 and data.buffer == bytes(8)


def test_accesses_the_verifier_never_saw_do_not_run_in_a_verified_program():
    with pytest.raises(ProvenanceFault, match="never reached this access") as info:
        run_fast("mov %r0, 1\nldxb %r0, [%r1+3]\nexit", {})
    assert info.value.insn_index == 1
    # the frame pointer's own frame needs no fact
    assert run_fast("stdw [%r10-8], 4\nldxdw %r0, [%r10-8]\nexit", {})[0].r0 == 4


def test_map_values_are_checked_by_owner():
    mine, other = object(), object()
    fact = {0: AccessFact(frozenset({VALUE}), maps=frozenset({7}), op=Access.LOAD, reg=1, off=0,
                          size=8)}
    program = FastInterpreter(assemble("ldxdw %r0, [%r1+0]\nexit"), facts=fact,
                              map_owner={7: mine}.__getitem__)
    memory = Memory()
    good = memory.add_region(VALUE, bytearray(b"\x05" + bytes(7)), name="map 'mine' value",
                             owner=mine)
    bad = memory.add_region(VALUE, bytearray(8), name="map 'other' value", owner=other)
    assert program.run(memory, good.address) == 5
    with pytest.raises(ProvenanceFault, match="R1 reaches map 'other' value") as info:
        program.run(memory, bad.address)
    assert info.value.insn_index == 0
    with pytest.raises(LoadError, match="given no maps"):
        FastInterpreter(assemble("ldxdw %r0, [%r1+0]\nexit"), facts=fact)


def test_helper_pointer_and_map_arguments_are_checked():
    calls = []

    def helper(ex, *args):
        calls.append(args[:2])
        return 0

    fact = {4: CallFact(1, map_args=((1, frozenset({4})),))}
    text = "lddw %r1, map_fd(4)\n{}\nmov %r2, 0\ncall 1\nmov %r0, 0\nexit"
    program = FastInterpreter(assemble(text.format("mov %r1, %r1")), {1: helper},
                              resolve_lddw=lambda insn: 0xFFFF_0000 + insn.imm, facts=fact)
    program.run(Memory())
    assert calls == [(0xFFFF_0004, 0)]
    forged = FastInterpreter(assemble(text.format("add %r1, 1")), {1: helper},
                             resolve_lddw=lambda insn: 0xFFFF_0000 + insn.imm, facts=fact)
    with pytest.raises(ProvenanceFault, match="a map pointer the program loaded") as info:
        forged.run(Memory())
    assert info.value.insn_index == 4 and len(calls) == 1


@pytest.mark.parametrize("leaf", [True, False], ids=["inlined", "called"])
def test_frames_are_counted_from_the_running_function(leaf):
    """A callee reading its caller's stack through a pointer (frame 1), inlined into the
    caller's code or called: the same region as the reference interpreter reads."""
    body = "ldxdw %r0, [%r1+0]\nadd %r0, 1\nexit" if leaf else \
        "ldxdw %r0, [%r1+0]\njeq %r0, 0, +1\nadd %r0, 1\nexit"
    insns = assemble(f"""
        stdw [%r10-8], 41
        mov %r1, %r10
        add %r1, -8
        call local f
        mov %r6, %r0
        mov %r0, 2
        jeq %r6, 42, +1
        mov %r0, 1
        exit
    f:
        {body}
    """)
    facts = verify(insns, caps=FULL).engine_facts()
    assert facts[9] == stack_fact(Access.LOAD, 1, 0, 8, frames=(1,))
    program = FastInterpreter(insns, facts=facts)
    source = Translator(program.layout, max_call_frames=8, facts=facts).source()
    caller, callee = source.split("def F9")
    assert "FRAME_AT(mem, depth + -1)" in callee
    assert ("UNPACK_Q(S, r1 - SB)" in caller) is leaf  # inlined: the caller's own frame
    assert run_on_memory(program, b"")[0].r0 == 2 == run_on_memory(Interpreter(insns),
                                                                    b"")[0].r0
    wrong = dict(facts)
    wrong[9] = stack_fact(Access.LOAD, 1, 0, 8, frames=(0,), proven=False)
    with pytest.raises(ProvenanceFault, match="reaches stack frame 0") as info:
        run_on_memory(FastInterpreter(insns, facts=wrong), b"")
    assert info.value.insn_index == 9


def test_an_internal_error_names_its_instruction():
    """A wrong 'proven packet' fact: the load indexes the packet buffer with an address
    from elsewhere and fails inside the generated code; the error names the load."""
    fact = {2: AccessFact(frozenset({PACKET}), op=Access.LOAD, reg=1, off=0, size=4)}
    program = FastInterpreter(assemble("mov %r0, 0\nmov %r0, 1\nldxw %r0, [%r1+0]\nexit"),
                              facts=fact)
    memory = Memory()
    packet = memory.add_region(PACKET, bytearray(64), name="packet")
    elsewhere = memory.add_region(RegionKind.INPUT, bytearray(8), name="input memory")
    with pytest.raises(ExecutionError, match="internal error") as info:
        program.run(memory, elsewhere.address, env=SimpleNamespace(packet=packet))
    assert info.value.insn_index == 2
