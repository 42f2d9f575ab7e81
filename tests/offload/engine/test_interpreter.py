"""The reference interpreter's behaviour beyond the conformance suites: memory model, calls,
helpers, budgets, and hostile programs."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.engine import (
    ExecutionError,
    Interpreter,
    LoadError,
    Memory,
    MemoryFault,
    RegionKind,
    TailCall,
)
from offload.engine.harness import run_on_memory
from offload.errors import OffloadError
from offload.isa import assemble, decode
from offload.isa.instruction import VALID_OPCODES
from offload.isa.structure import StructureError


def run(text: str, data: bytes = b"", **kwargs):
    return run_on_memory(assemble(text), data, **kwargs)


def test_out_of_bounds_read_is_a_typed_fault_with_the_index():
    with pytest.raises(MemoryFault) as info:
        run("mov %r0, 0\nldxw %r0, [%r1+6]\nexit", b"12345678")
    assert info.value.insn_index == 1 and not info.value.write
    assert "outside input memory" in str(info.value)


def test_stack_frame_bounds_and_null_pointer():
    with pytest.raises(MemoryFault, match="outside stack frame 0"):
        run("stdw [%r10+0], 1\nexit")
    with pytest.raises(MemoryFault, match="no memory is mapped"):
        run("stdw [%r10-520], 1\nexit")
    with pytest.raises(MemoryFault, match="no memory is mapped") as info:
        run("mov %r1, 0\nldxb %r0, [%r1]\nexit")
    assert info.value.insn_index == 1


def test_read_only_regions_refuse_writes():
    memory = Memory()
    region = memory.add_region(RegionKind.CONTEXT, bytearray(8), writable=False, name="ctx")
    program = Interpreter(assemble("stw [%r1], 1\nexit"))
    with pytest.raises(MemoryFault, match="ctx .* is read-only"):
        program.run(memory, region.address)


def test_region_windows_can_move():
    memory = Memory()
    buffer = bytearray(b"\xaa" * 4 + b"\x01\x02")
    region = memory.add_region(RegionKind.PACKET, buffer, start=4, name="packet")
    program = Interpreter(assemble("ldxb %r0, [%r1-1]\nexit"))
    data = region.address
    with pytest.raises(MemoryFault):
        program.run(memory, data)
    region.start = 2  # the packet grew into its headroom
    assert program.run(memory, data) == 0xAA


def test_local_calls_get_fresh_frames_and_keep_callee_saved_registers():
    r0 = run("""
        stdw [%r10-8], 7
        mov %r6, 6
        call local f
        ldxdw %r1, [%r10-8]      # the caller's frame is untouched
        add %r0, %r1
        add %r0, %r6
        exit
    f:
        ldxdw %r0, [%r10-8]      # a fresh frame reads as zero
        stdw [%r10-8], 99
        mov %r6, 1000
        exit
    """)[0].r0
    assert r0 == 0 + 7 + 6


def test_call_depth_is_limited_to_eight_frames():
    text = "call local f1\nexit\n" + "".join(
        f"f{n}:\ncall local f{n + 1}\nexit\n" for n in range(1, 8)) + "f8:\nmov %r0, 8\nexit\n"
    with pytest.raises(ExecutionError, match="call stack is too deep"):
        run(text)
    shallow = "call local f1\nexit\n" + "".join(
        f"f{n}:\ncall local f{n + 1}\nexit\n" for n in range(1, 7)) + "f7:\nmov %r0, 7\nexit\n"
    assert run(shallow)[0].r0 == 7


def test_budget_stops_a_loop_that_could_exit():
    with pytest.raises(ExecutionError, match="budget of 1000 exhausted") as info:
        run("mov %r0, 0\nloop:\nadd %r0, 1\njne %r1, 12345, loop\nexit", max_steps=1000)
    assert info.value.insn_index in (1, 2)


def test_inescapable_loop_is_refused_before_running():
    with pytest.raises(StructureError, match="infinite loop detected at insn 1"):
        Interpreter(assemble("mov %r0, 0\nl:\nadd %r0, 1\nja l\nexit"))


def test_helpers_receive_arguments_and_clobber_r1_to_r5():
    seen = []

    def helper(ex, a, b, c, d, e):
        seen.append((a, b, c, d, e))
        return 42

    program = Interpreter(assemble("mov %r1, 1\nmov %r2, 2\nmov %r5, 5\ncall 9\n"
                                   "add %r0, %r1\nexit"), {9: helper})
    assert program.run(Memory()) == 42
    assert seen == [(1, 2, 0, 0, 5)]


def test_unknown_helpers():
    with pytest.raises(LoadError, match="invalid func unknown#9"):
        Interpreter(assemble("call 9\nexit"))
    program = Interpreter(assemble("mov %r1, 77\ncallx %r1\nexit"), {})
    with pytest.raises(ExecutionError, match="callx to unknown helper #77") as info:
        program.run(Memory())
    assert info.value.insn_index == 1


def test_tail_calls_replace_the_program_and_are_bounded():
    target = Interpreter(assemble("mov %r0, %r1\nexit"))

    def tail_call(ex, ctx, *_):
        raise TailCall(target, ctx)

    program = Interpreter(assemble("mov %r1, 5\ncall 12\nmov %r0, 0\nexit"), {12: tail_call})
    assert program.run(Memory()) == 5

    def tail_call_self(ex, ctx, *_):
        raise TailCall(ex.program, ctx)

    looping = Interpreter(assemble("call 12\nexit"), {12: tail_call_self})
    with pytest.raises(ExecutionError, match="more than 33 tail calls"):
        looping.run(Memory())


def test_pseudo_lddw_needs_a_resolver():
    with pytest.raises(LoadError, match="lddw map_fd needs a device"):
        Interpreter(assemble("lddw %r1, map_fd(3)\nmov %r0, 0\nexit"))
    program = Interpreter(assemble("lddw %r0, map_value(3)+8\nexit"),
                          resolve_lddw=lambda insn: 0x1000 * insn.imm + insn.next_imm)
    assert program.run(Memory()) == 0x3008


def test_unsupported_forms_are_refused_at_load():
    with pytest.raises(LoadError, match="legacy packet access"):
        Interpreter(assemble("ldabsw 12\nexit"))
    with pytest.raises(LoadError, match="kfunc"):
        Interpreter(assemble("call kfunc 3\nexit"))
    with pytest.raises(StructureError, match="frame pointer is read only"):
        Interpreter(assemble("mov %r10, 0\nexit"))


slot = st.builds(lambda op, regs, off, imm: struct.pack("<BBhi", op, regs, off, imm),
                 st.sampled_from(sorted(VALID_OPCODES)), st.integers(0, 255),
                 st.integers(-8, 8), st.integers(-64, 64))


@settings(max_examples=400, deadline=None)
@given(st.lists(slot, min_size=1, max_size=16), st.binary(max_size=32))
def test_hostile_programs_end_in_a_result_or_a_typed_error(parts, data):
    try:
        program = Interpreter(decode(b"".join(parts)), max_steps=2000)
        result, _ = run_on_memory(program, data)
    except OffloadError as err:
        assert str(err)
        return
    assert 0 <= result.r0 < 1 << 64
