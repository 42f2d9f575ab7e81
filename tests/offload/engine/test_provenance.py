"""Pointer provenance: a program reaches only memory it was given, whatever the verifier let
through. Device programs run on both engines with a verifier made wrong on purpose (its map
value bounds check switched off); the reference interpreter's tag rules are also checked on
their own, without a verifier."""

from __future__ import annotations

import pytest

import offload.verifier.memory as verifier_memory
from offload.backends.builtin import BuiltinBackend
from offload.caps import load_profile
from offload.engine import Interpreter, Memory, MemoryFault, RegionKind, TailCall
from offload.engine.memory import ProvenanceFault
from offload.engine.provenance import TAG, ArgUse, HelperSig
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapType, ProgType

ENGINES = ("reference", "fast")
KEY0 = bytes(4)
SECRET = b"SECRET!!"


def device(engine: str) -> BuiltinBackend:
    backend = BuiltinBackend(load_profile("full"), engine=engine, seed=1,
                             clock=lambda: 1_000_000)
    backend.create_map(1, MapSpec("mine", MapType.ARRAY, 4, 8, 1))
    backend.create_map(2, MapSpec("other", MapType.ARRAY, 4, 8, 1))
    backend.map(2).update(KEY0, SECRET)
    return backend


def load(backend: BuiltinBackend, handle: int, text: str) -> None:
    backend.load_program(handle, assemble(text), prog_type=ProgType.XDP, name=f"p{handle}",
                         license="GPL")


LOOKUP = """
    stw [%r10-4], 0
    lddw %r1, map_fd({map})
    mov %r2, %r10
    add %r2, -4
    call 1
    jne %r0, 0, +2
    mov %r0, 2
    exit
"""
#: Reads the number in its own map's value and adds it to the value pointer: with bounds
#: checks on, the verifier refuses the access at slot 11 (an unbounded offset).
STRAY_ACCESS = LOOKUP.format(map=1) + """
    ldxdw %r2, [%r0+0]
    add %r0, %r2
    ldxdw %r3, [%r0+0]
    stdw [%r0+0], 0x41
    mov %r0, 2
    exit
"""
#: The same pointer handed to bpf_map_update_elem as the value to copy into its own map.
STRAY_ARGUMENT = LOOKUP.format(map=1) + """
    ldxdw %r2, [%r0+0]
    mov %r3, %r0
    add %r3, %r2
    lddw %r1, map_fd(1)
    mov %r2, %r10
    add %r2, -4
    mov %r4, 0
    call 2
    mov %r0, 2
    exit
"""


def value_region(backend: BuiltinBackend, handle: int):
    (region,) = [r for r in backend.memory.regions() if r.owner is backend.map(handle)]
    return region


def stray_setup(engine: str, program: str, monkeypatch) -> BuiltinBackend:
    """A device whose verifier skips map value bounds, a program that never names map
    'other', and in 'mine' the distance from its value to 'other''s."""
    backend = device(engine)
    load(backend, 20, LOOKUP.format(map=2) + "mov %r0, 2\nexit")
    assert backend.run_xdp(20, bytes(64)).error is None  # 'other' is in use: mapped
    monkeypatch.setattr(verifier_memory, "check_map_value", lambda *args, **kwargs: None)
    load(backend, 21, program)
    first = backend.run_xdp(21, bytes(64))  # 'mine' holds 0: the program stays in its value
    assert first.error is None
    delta = value_region(backend, 2).address - value_region(backend, 1).address
    backend.map(1).update(KEY0, (delta % (1 << 64)).to_bytes(8, "little"))
    return backend


def test_without_the_broken_check_the_verifier_refuses_the_stray_access():
    from offload.verifier.errors import VerifierError

    with pytest.raises(VerifierError) as info:
        load(device("reference"), 21, STRAY_ACCESS)
    assert info.value.insn_index == 11


@pytest.mark.parametrize("engine", ENGINES)
def test_a_wrong_verifier_cannot_let_a_program_reach_another_map(engine, monkeypatch):
    backend = stray_setup(engine, STRAY_ACCESS, monkeypatch)
    outcome = backend.run_xdp(21, bytes(64))
    assert outcome.error is not None and outcome.error.endswith("at insn 11")
    assert "map 'other' value" in outcome.error
    if engine == "reference":
        assert "R0 derived from map 'mine' value reaches map 'other' value" in outcome.error
    else:
        assert "did not prove it may reach (only map value (1))" in outcome.error
    assert backend.map(2).lookup(KEY0) == SECRET


@pytest.mark.parametrize("engine", ENGINES)
def test_a_helper_argument_into_another_map_is_refused(engine, monkeypatch):
    backend = stray_setup(engine, STRAY_ARGUMENT, monkeypatch)
    outcome = backend.run_xdp(21, bytes(64))
    assert outcome.error is not None and outcome.error.endswith("at insn 17")
    assert "R3" in outcome.error and "map 'other' value" in outcome.error
    assert backend.map(1).lookup(KEY0) != SECRET  # nothing was copied over


@pytest.mark.parametrize("engine", ENGINES)
def test_a_printed_number_is_not_read_as_a_string(engine):
    """bpf_trace_printk takes numbers or pointers after its format; '%s' with a number that
    happens to be another map's address must not read that map (no verifier bug needed)."""
    backend = device(engine)
    load(backend, 20, LOOKUP.format(map=2) + "mov %r0, 2\nexit")
    backend.run_xdp(20, bytes(64))
    address = value_region(backend, 2).address
    load(backend, 21, f"""
        stdw [%r10-8], 0x7325
        mov %r1, %r10
        add %r1, -8
        mov %r2, 8
        lddw %r3, {address:#x}
        mov %r4, 0
        mov %r5, 0
        call 6
        mov %r0, 2
        exit""")
    outcome = backend.run_xdp(21, bytes(64))
    assert outcome.trace == () and outcome.error is not None
    assert outcome.error.endswith("at insn 8") and "R3" in outcome.error
    # a string of its own still prints
    load(backend, 22, """
        stdw [%r10-8], 0x7325
        stdw [%r10-16], 0x6b6f
        mov %r1, %r10
        add %r1, -8
        mov %r2, 8
        mov %r3, %r10
        add %r3, -16
        mov %r4, 0
        mov %r5, 0
        call 6
        mov %r0, 2
        exit""")
    assert backend.run_xdp(22, bytes(64)).trace == ("p22: ok",)


@pytest.mark.parametrize("engine", ENGINES)
def test_spilled_pointers_keep_their_provenance(engine):
    backend = device(engine)
    load(backend, 21, "mov %r9, %r1\n" + LOOKUP.format(map=1) + """
        stxdw [%r10-16], %r0
        stxdw [%r10-24], %r9
        mov %r0, 0
        ldxdw %r6, [%r10-16]
        stdw [%r6+0], 0x1234
        ldxdw %r7, [%r10-24]
        ldxw %r2, [%r7+0]
        ldxw %r3, [%r7+4]
        mov %r4, %r2
        add %r4, 1
        jgt %r4, %r3, +1
        stb [%r2+0], 0x77
        mov %r0, 2
        exit
    """)
    outcome = backend.run_xdp(21, bytes(64))
    assert outcome.error is None and outcome.data[0] == 0x77
    assert backend.map(1).lookup(KEY0) == (0x1234).to_bytes(8, "little")


@pytest.mark.parametrize("engine", ENGINES)
def test_packet_pointers_after_adjust_head(engine):
    backend = device(engine)
    load(backend, 21, """
        mov %r6, %r1
        mov %r2, -4
        call 44
        jne %r0, 0, out
        ldxw %r2, [%r6+0]
        ldxw %r3, [%r6+4]
        mov %r4, %r2
        add %r4, 4
        jgt %r4, %r3, out
        stw [%r2+0], 0x44434241
    out:
        mov %r0, 2
        exit
    """)
    outcome = backend.run_xdp(21, bytes(range(60)))
    assert outcome.error is None
    assert outcome.data == b"ABCD" + bytes(range(60))


@pytest.mark.parametrize("engine", ENGINES)
def test_tail_calls_hand_the_context_on(engine):
    backend = device(engine)
    backend.create_map(5, MapSpec("jmp", MapType.PROG_ARRAY, 4, 4, 1))
    load(backend, 30, """
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        mov %r4, %r2
        add %r4, 1
        mov %r0, 1
        jgt %r4, %r3, +2
        stb [%r2+0], 0x55
        mov %r0, 3
        exit
    """)
    backend.map(5).update(KEY0, (30).to_bytes(4, "little"))
    load(backend, 31, """
        lddw %r2, map_fd(5)
        mov %r3, 0
        call 12
        mov %r0, 2
        exit
    """)
    outcome = backend.run_xdp(31, bytes(64))
    assert outcome.error is None and outcome.retval == 3 and outcome.data[0] == 0x55


def test_the_traced_reference_engine_shows_tags():
    backend = device("reference")
    load(backend, 21, """
        mov %r6, %r1
        stw [%r10-4], 0
        lddw %r1, map_fd(1)
        mov %r2, %r10
        add %r2, -4
        call 1
        jne %r0, 0, +2
        mov %r0, 2
        exit
        ldxw %r2, [%r6+0]
        mov %r0, 2
        exit
    """)
    seen = {}

    def on_step(pc, regs, run):
        seen[pc] = (list(regs[:11]), run.tags)

    assert backend.run_xdp(21, bytes(64), on_step=on_step).error is None
    _, packet, context = backend._env
    stack = backend.memory.stack(0, 512).slot
    regs, tags = seen[0]
    assert (tags[1], tags[10], tags[2]) == (context.slot, stack, 0)
    regs, tags = seen[4]
    assert tags[1] == regs[1] != 0  # a map pointer: its tag is itself
    assert seen[5][1][2] == stack
    assert seen[7][1][0] == value_region(backend, 1).slot and seen[7][1][6] == context.slot
    assert seen[11][1][2] == packet.slot


# ---------------------------------------------------------------- the rules, engine alone
SIGS = {1: HelperSig("touch", ((1, ArgUse.MEMORY),)), 2: HelperSig("give", returns_pointer=True),
        3: HelperSig("give_number"), 4: HelperSig("scribble", ((1, ArgUse.MEMORY),))}


def given(ex, address, *_):
    return ex.memory.regions()[0].address


def scribble(ex, address, *_):
    ex.memory.write(address, bytes(range(1, 9)))
    return 0


HELPERS = {1: lambda ex, *_: 0, 2: given, 3: given, 4: scribble}


def run_on_input(text: str, **kwargs):
    """Run with r1 = 16 bytes of input memory (mapped first, so at 0x100000000)."""
    memory = Memory()
    region = memory.add_region(RegionKind.INPUT, bytearray(16), name="input memory")
    program = Interpreter(assemble(text.format(input=region.address)), HELPERS,
                          provenance=SIGS)
    return program.run(memory, region.address, 16, **kwargs)


@pytest.mark.parametrize("text", [
    "ldxb %r0, [%r1+15]\nexit",
    "mov %r2, %r1\nadd %r2, 8\nsub %r2, 4\nldxw %r0, [%r2+0]\nexit",
    "mov %r2, 4\nadd %r2, %r1\nldxw %r0, [%r2+0]\nexit",  # number + pointer
    "stxdw [%r10-8], %r1\nmov %r1, 0\nldxdw %r2, [%r10-8]\nstb [%r2+3], 1\nldxb %r0, [%r2+3]\nexit",
    "mov %r6, %r1\ncall local f\nldxb %r0, [%r6+0]\nexit\nf:\nmov %r6, 0\nmov %r0, 0\nexit",
    "call 1\ncall 2\nldxb %r0, [%r0+0]\nexit",  # a pointer argument, a pointer result
    "stxdw [%r1+0], %r1\nmov %r2, %r1\nlock fetch add [%r2+8], %r0\nldxdw %r0, [%r1+0]\nexit",
], ids=["plain", "moved", "number-plus-pointer", "spill-fill", "callee-saved", "helpers",
        "atomic"])
def test_pointers_derived_from_what_the_program_was_given_work(text):
    run_on_input(text)


@pytest.mark.parametrize(("text", "insn", "reason"), [
    ("lddw %r2, {input:#x}\nldxb %r0, [%r2+0]\nexit", 2,
     "R2 invalid mem access 'scalar': dereference of a number"),
    ("mov %r2, %r1\nor %r2, 0\nldxb %r0, [%r2+0]\nexit", 2, "dereference of a number"),
    ("mov %r2, %r1\nlsh %r2, 0\nldxb %r0, [%r2+0]\nexit", 2, "dereference of a number"),
    ("mov %r2, %r1\nadd %r2, %r1\nsub %r2, %r1\nldxb %r0, [%r2+0]\nexit", 3,
     "dereference of a number"),  # pointer + pointer is a number
    ("mov %r2, %r10\nsub %r2, %r1\nmov %r3, %r1\nadd %r3, %r2\nldxb %r0, [%r3-1]\nexit", 4,
     "R3 derived from input memory reaches stack frame 0"),
    ("lddw %r2, 0x100000000\nmov %r3, %r10\nadd %r3, %r2\nstb [%r3-1], 1\nexit", 4,
     "R3 derived from stack frame 0 reaches"),
    # an 8-byte spill keeps the tag only until something else is stored over it
    ("stxdw [%r10-8], %r1\nstxw [%r10-8], %r1\nldxdw %r2, [%r10-8]\nldxb %r0, [%r2+0]\nexit",
     3, "dereference of a number"),
    ("stxdw [%r1+8], %r1\nldxdw %r2, [%r1+8]\nldxb %r0, [%r2+0]\nexit", 2,
     "dereference of a number"),  # only the stack keeps spilled pointers
    # a helper writing over a spilled pointer leaves bytes
    ("stxdw [%r10-8], %r1\nmov %r6, %r1\nmov %r1, %r10\nadd %r1, -8\ncall 4\n"
     "ldxdw %r2, [%r10-8]\nldxb %r0, [%r2+0]\nexit", 6, "dereference of a number"),
    ("mov %r1, 16\ncall 1\nexit", 1, "R1 invalid mem access 'scalar'"),
    ("call 3\nldxb %r0, [%r0+0]\nexit", 1, "dereference of a number"),
    ("lock fetch add [%r1+0], %r2\nstxdw [%r1+8], %r1\nmov %r3, 0\nlock xchg [%r1+8], %r3\n"
     "ldxb %r0, [%r3+0]\nexit", 4, "dereference of a number"),
], ids=["lddw-number", "or", "lsh", "ptr-plus-ptr", "other-region-by-difference",
        "stack-into-input", "spill-overwritten", "spill-outside-stack", "helper-overwrites",
        "helper-argument", "number-result", "atomic-fetch"])
def test_addresses_outside_their_region_fault_with_the_instruction(text, insn, reason):
    with pytest.raises(ProvenanceFault) as info:
        run_on_input(text)
    assert info.value.insn_index == insn and reason in str(info.value)


def test_32_bit_values_reach_no_region():
    """A pointer cut to 32 bits (a 32-bit operation, half a spill) is a number below 4 GiB,
    where no region is ever mapped."""
    for text in ("mov32 %r2, %r1\nldxb %r0, [%r2+0]\nexit",
                 "stxdw [%r10-8], %r1\nldxw %r2, [%r10-8]\nldxb %r0, [%r2+0]\nexit"):
        with pytest.raises(MemoryFault, match="no memory is mapped"):
            run_on_input(text)


def test_helpers_without_a_signature_are_refused_at_load():
    from offload.engine import LoadError

    with pytest.raises(LoadError, match="no prototype"):
        Interpreter(assemble("call 7\nexit"), {7: lambda ex, *_: 0}, provenance=SIGS)


def test_a_tail_call_target_gets_the_context_tag():
    target = Interpreter(assemble("ldxb %r0, [%r1+2]\nexit"), provenance={})

    def tail(ex, ctx, *_):
        raise TailCall(target, ctx)

    caller = Interpreter(assemble("call 12\nexit"), {12: tail},
                         provenance={12: HelperSig("tail", ((1, ArgUse.MEMORY),))})
    memory = Memory()
    region = memory.add_region(RegionKind.CONTEXT, bytearray(b"\x00\x01\x02\x03"),
                               writable=False, name="ctx")
    tags = []
    result = caller.execute_traced(memory, region.address, env=None,
                                   on_step=lambda pc, regs, run: tags.append(
                                       (run.program, run.tags[1])))
    assert result.r0 == 2
    assert tags == [(caller, region.slot), (target, region.slot), (target, region.slot)]


def test_provenance_off_leaves_the_register_file_and_tags_alone():
    memory = Memory()
    run_tags = []
    program = Interpreter(assemble("mov %r0, 1\nexit"))
    program.execute_traced(memory, on_step=lambda pc, regs, run: run_tags.append(
        (len(regs), run.tags)))
    assert run_tags == [(11, None), (11, None)]
    assert TAG == 11
