"""The verify() interface: statistics, errors, logs, map resolution, hostile input."""

from __future__ import annotations

import pytest

from offload.isa import Instruction, assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapType, ProgType
from offload.verifier import VerifierError, verify

from .suite import FULL

HASH = MapSpec("h", MapType.HASH, 4, 8, 16)
PKT_OFF_BY_ONE = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, out
ldxh %r0, [%r2+13]
exit
out:
mov %r0, 1
exit
"""


def test_statistics_on_accept():
    stats = verify(assemble("stdw [%r10-16], 0\nmov %r0, 2\nexit"), caps=FULL)
    assert stats.insns_processed == 3
    assert stats.stack_depth == (16,)


def test_error_carries_index_reason_and_the_failing_path():
    with pytest.raises(VerifierError) as info:
        verify(assemble(PKT_OFF_BY_ONE), caps=FULL)
    err = info.value
    assert err.insn_index == 5
    assert err.reason == "invalid access to packet, off=13 size=2, R2(id=0,off=0,r=14)"
    log = err.log
    assert log is not None and log.failing is not None and log.failing.insn == 5
    assert [line.insn for line in log.lines] == [0, 1, 2, 3, 4, 5]
    text = str(log)
    assert "5: (69) r0 = *(u16 *)(r2 +13)" in text and text.endswith(err.reason)
    assert "R2=pkt(r=14)" in text


def test_log_follows_the_branch_that_failed():
    prog = "ldxw %r2, [%r1+16]\njeq %r2, 7, bad\nmov %r0, 2\nexit\nbad:\nmov %r0, %r5\nexit"
    with pytest.raises(VerifierError) as info:
        verify(assemble(prog), caps=FULL)
    assert info.value.reason == "R5 !read_ok"
    assert [line.insn for line in info.value.log.lines] == [0, 1, 4]


def test_log_level_zero_and_two():
    with pytest.raises(VerifierError) as info:
        verify(assemble("mov %r0, %r3\nexit"), caps=FULL, log_level=0)
    assert info.value.log is None
    stats = verify(assemble("mov %r0, 2\nexit"), caps=FULL, log_level=2)
    assert stats.log is not None and [line.insn for line in stats.log.lines] == [0, 1]


def test_maps_by_mapping_or_callable():
    prog = assemble("lddw %r1, map_fd(7)\nmov %r0, 2\nexit")
    verify(prog, caps=FULL, maps={7: HASH})
    verify(prog, caps=FULL, maps=lambda handle: HASH if handle == 7 else None)
    with pytest.raises(VerifierError, match="fd 7 is not pointing to valid bpf_map"):
        verify(prog, caps=FULL, maps=lambda handle: None)
    with pytest.raises(VerifierError, match="fd 7 is not pointing"):
        verify(prog, caps=FULL, maps={})


def test_device_map_types_are_enforced():
    from dataclasses import replace
    caps = replace(FULL, map_types=frozenset({MapType.ARRAY}))
    with pytest.raises(VerifierError, match="map type HASH of map 'h' is not supported"):
        verify(assemble("lddw %r1, map_fd(1)\nmov %r0, 2\nexit"), caps=caps, maps={1: HASH})


def test_program_type_must_be_offered():
    with pytest.raises(VerifierError, match="program type SCHED_CLS is not supported"):
        verify(assemble("mov %r0, 0\nexit"), caps=FULL, prog_type=ProgType.SCHED_CLS)


@pytest.mark.parametrize("insns, reason", [
    ([], "the program is empty"),
    ([Instruction(0xFF), Instruction(0x95)], "unknown opcode 0xff"),
    ([Instruction(0xB7, dst=12), Instruction(0x95)], "R12 is invalid"),
    ([Instruction(0x85, imm=1, off=3), Instruction(0x95)], "BPF_CALL uses reserved fields"),
])
def test_malformed_instructions_are_typed_errors(insns, reason):
    with pytest.raises(VerifierError, match=reason):
        verify(insns, caps=FULL)


def test_pruning_keeps_branchy_programs_cheap():
    # 20 independent diamonds: 2^20 paths without pruning
    body = "".join(f"jeq %r2, {i}, +1\nmov %r3, 1\n" for i in range(20))
    prog = assemble("ldxw %r2, [%r1+16]\nmov %r3, 0\n" + body + "mov %r0, 2\nexit")
    stats = verify(prog, caps=FULL)
    assert stats.insns_processed < 1000


def test_bounded_loop_up_to_the_processed_limit():
    prog = assemble("mov %r1, 0\nloop:\nadd %r1, 1\njlt %r1, 1000, loop\nmov %r0, 2\nexit")
    assert verify(prog, caps=FULL).insns_processed == 2003


def test_broken_invariant_class_is_an_efault_refusal(monkeypatch):
    """No exception but VerifierError leaves verify: a VerifierBug or any other failure
    inside is refused with EFAULT and the instruction, as the kernel's "verifier bug"."""
    import errno as errno_names

    from offload.verifier import verifier as verifier_module
    from offload.verifier.reject import VerifierBug

    program = assemble("mov %r0, 1\nadd %r0, 1\nexit")

    def bug(env, state, op):
        raise VerifierBug("a state the domain cannot hold")

    monkeypatch.setattr(verifier_module, "check_alu", bug)
    with pytest.raises(VerifierError) as caught:
        verify(program, caps=FULL)
    assert caught.value.errno == errno_names.EFAULT
    assert caught.value.reason.startswith("verifier bug")

    def crash(env, state, op):
        raise IndexError("list index out of range")

    monkeypatch.setattr(verifier_module, "check_alu", crash)
    with pytest.raises(VerifierError) as caught:
        verify(program, caps=FULL)
    assert caught.value.errno == errno_names.EFAULT
    assert caught.value.reason == "verifier bug: IndexError: list index out of range"
    assert caught.value.insn_index == 0


def test_trace_printk_leaves_unused_printed_arguments_unchecked():
    """bpf_trace_printk's r3-r5 are read only when the format uses them (the kernel's
    prototype declares two arguments), so a call that never sets them loads; r1 and r2
    are still checked."""
    program = assemble("mov %r1, 0\nstxw [%r10-8], %r1\nmov %r1, %r10\nadd %r1, -8\n"
                       "mov %r2, 4\ncall 6\nmov %r0, 2\nexit")
    verify(program, caps=FULL)
    with pytest.raises(VerifierError, match="R2 !read_ok"):
        verify(assemble("mov %r1, %r10\nadd %r1, -8\nstdw [%r10-8], 0\ncall 6\nmov %r0, 2\n"
                        "exit"), caps=FULL)
