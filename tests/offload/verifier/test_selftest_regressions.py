"""Unsafe programs the verifier accepts, found by judging it with the Linux verifier selftests
(bench/kernel_selftests.py). Each reproducer is written from scratch as the smallest XDP
program with the same flaw; the host kernel refuses every one of them.

They are expected failures until the verifier is fixed (strict: a fix makes them pass and
the marker must then go). Beside each, a control: the same program made safe is accepted, so
the day the unsafe one is refused, the refusal is about the flaw and not about its shape.
"""

from __future__ import annotations

import pytest

from offload.caps import load_profile
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.uapi import MapFlags, MapType
from offload.verifier import VerifierError, verify

FULL = load_profile("full")
HASH8 = MapSpec("h8", MapType.HASH, 8, 8, 16)
WRITE_ONLY = MapSpec("wo", MapType.ARRAY, 4, 48, 4, flags=int(MapFlags.WRONLY_PROG))
MAPS = {1: HASH8, 3: WRITE_ONLY}
ACCEPTED_UNSAFE = pytest.fail.Exception  # what pytest.raises gives when nothing is raised


def _refused(source: str) -> None:
    with pytest.raises(VerifierError):
        verify(assemble(source), caps=FULL, maps=MAPS)


def _accepted(source: str) -> None:
    verify(assemble(source), caps=FULL, maps=MAPS)


def xfail(reason: str):
    return pytest.mark.xfail(strict=True, raises=ACCEPTED_UNSAFE, reason=reason)


# ----------------------------------------------------------------- branch to the next insn
# Class: a conditional jump whose target is the next instruction. Both edges reach the same
# instruction, each with its own narrowing; keeping only the fall-through state (narrowed as
# if the jump were not taken) made any such "check" look like a proof.

# Packet: the end check jumps to the very next instruction, so nothing is proven, yet the
# 8 bytes before data+8 are read.
PKT_CHECK_TO_NEXT = """
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 8
jgt %r4, %r3, {target}
next:
ldxdw %r0, [%r4-8]
out:
mov %r0, 2
exit
"""

# Map value of 8 bytes indexed by a random byte "bounded" by a jump to the next instruction.
INDEX_CHECK_TO_NEXT = """
stdw [%r10-8], 0
mov %r2, %r10
add %r2, -8
lddw %r1, map_fd(1)
call 1
jeq %r0, 0, out
mov %r6, %r0
call 7
and %r0, 255
jgt %r0, 7, {target}
next:
add %r6, %r0
ldxb %r0, [%r6+0]
out:
mov %r0, 2
exit
"""

# Division by the constant zero on a path the false narrowing makes look dead: r0 <= 1 is
# "known" after the jump, so r6 < r0 forces r6 == 0 and the division is skipped.
DIV_BEHIND_JUMP_TO_NEXT = """
call 7
mov %r6, %r0
call 7
jgt %r0, 1, {target}
next:
jge %r6, %r0, out
jeq %r6, 0, out
div %r0, 0
out:
mov %r0, 2
exit
"""


def test_jump_to_next_insn_class_packet_bounds():
    _refused(PKT_CHECK_TO_NEXT.format(target="next"))


def test_packet_bounds_check_that_jumps_away_is_accepted():
    _accepted(PKT_CHECK_TO_NEXT.format(target="out"))


def test_jump_to_next_insn_class_map_index():
    _refused(INDEX_CHECK_TO_NEXT.format(target="next"))


def test_map_index_check_that_jumps_away_is_accepted():
    _accepted(INDEX_CHECK_TO_NEXT.format(target="out"))


def test_jump_to_next_insn_class_division():
    _refused(DIV_BEHIND_JUMP_TO_NEXT.format(target="next"))


def test_division_by_zero_behind_a_real_check_is_dead_code():
    _accepted(DIV_BEHIND_JUMP_TO_NEXT.format(target="out"))


# ----------------------------------------------------------------- misaligned atomics
ATOMIC_ON_MAP_VALUE = """
stdw [%r10-8], 0
mov %r2, %r10
add %r2, -8
lddw %r1, map_fd(1)
call 1
jeq %r0, 0, out
mov %r1, 1
lock add32 [%r0+{off}], %r1
out:
mov %r0, 2
exit
"""


def test_misaligned_atomic_class_map_value():
    _refused(ATOMIC_ON_MAP_VALUE.format(off=3))


def test_aligned_atomic_on_a_map_value_is_accepted():
    _accepted(ATOMIC_ON_MAP_VALUE.format(off=4))


# ----------------------------------------------------------------- write-only maps
WRITE_ONLY_VALUE = """
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_fd(3)
call 1
jeq %r0, 0, out
{access}
out:
mov %r0, 2
exit
"""


def test_read_from_a_write_only_map_value():
    # accepted until the map access flags were enforced (fixed since; kept as a guard)
    _refused(WRITE_ONLY_VALUE.format(access="ldxw %r0, [%r0+0]"))


def test_write_into_a_write_only_map_value_is_accepted():
    _accepted(WRITE_ONLY_VALUE.format(access="stw [%r0+0], 1"))


def test_misaligned_atomic_class_variable_offset():
    """An index that may be odd makes the atomic possibly misaligned; one masked to a
    multiple of the size does not."""
    source = ATOMIC_ON_MAP_VALUE.replace(
        "mov %r1, 1\n", "ldxw %r3, [%r0+0]\nand %r3, {mask}\nadd %r0, %r3\nmov %r1, 1\n")
    _refused(source.format(off=0, mask=2))
    _accepted(source.format(off=0, mask=4))
