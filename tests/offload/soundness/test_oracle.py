"""The soundness oracle finds states outside the verifier's claims, and only those."""

from __future__ import annotations

import pytest

from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.soundness import SoundnessError, check_program
from offload.uapi import MapType
from offload.verifier import memory as verifier_memory
from offload.verifier.scalar import Scalar
from offload.verifier.state import FULL_SPILL, Reg, RegType

from ..verifier.suite import FULL

ARRAY = MapSpec("counts", MapType.ARRAY, 4, 8, 4)
HASH = MapSpec("flows", MapType.HASH, 8, 16, 64)
FRAMES = (b"", bytes(range(1, 61)), bytes(14), bytes(range(200, 256)) * 2)

COUNTER = """
mov %r6, %r1
ldxw %r2, [%r6+0]
ldxw %r3, [%r6+4]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, out
ldxb %r5, [%r2+12]
and %r5, 3
stxw [%r10-4], %r5
mov %r2, %r10
add %r2, -4
lddw %r1, map_fd(1)
call 1
jeq %r0, 0, out
ldxdw %r7, [%r0+0]
add %r7, 1
stxdw [%r0+0], %r7
out:
mov %r0, 2
exit
"""

LOOP = """
mov %r6, %r1
mov %r7, 0
mov %r8, 0
loop:
add %r8, %r7
stxdw [%r10-8], %r8
ldxdw %r8, [%r10-8]
add %r7, 1
jlt %r7, 10, loop
mov %r0, %r8
and %r0, 3
exit
"""

CALLS = """
mov %r6, %r1
stdw [%r10-8], 7
mov %r1, %r10
add %r1, -8
call local double
ldxw %r2, [%r6+16]
and %r2, 1
add %r0, %r2
and %r0, 3
exit
double:
ldxdw %r0, [%r1+0]
lsh %r0, 1
mov %r9, %r0
exit
"""


@pytest.mark.parametrize("text", [COUNTER, LOOP, CALLS], ids=["counter", "loop", "calls"])
def test_sound_programs_pass_every_state(text):
    report = check_program(assemble(text), caps=FULL, maps={1: ARRAY}, frames=FRAMES,
                           rx_queue_index=3, text=text)
    assert report.frames == len(FRAMES)
    assert report.steps > 0
    assert report.states > 0


def test_a_wrong_load_range_is_an_escape(monkeypatch):
    """A verifier that thinks packet bytes are all zero: the oracle sees the first nonzero."""
    real = verifier_memory.loaded

    def zero_bytes(size, sign_extend=False):
        return Reg.const(0) if size == 1 else real(size, sign_extend)

    monkeypatch.setattr(verifier_memory, "loaded", zero_bytes)
    with pytest.raises(SoundnessError) as caught:
        check_program(assemble(COUNTER), caps=FULL, maps={1: ARRAY}, frames=FRAMES,
                      text=COUNTER)
    message = str(caught.value)
    assert "verifier bug: at insn 7" in message
    assert "R5=0xd is outside" in message
    assert caught.value.frame == FRAMES[1]


def test_a_pruned_path_is_checked_against_the_state_that_pruned_it(monkeypatch):
    """Pruning that ignores scalar ranges lets a wider value through a narrower state."""
    monkeypatch.setattr(Scalar, "includes", lambda self, other: True)
    text = """
    ldxw %r2, [%r1+16]
    mov %r7, 1
    jeq %r2, 0, join
    mov %r7, 3
    join:
    mov %r8, %r7
    add %r8, 0
    mov %r0, %r7
    exit
    """
    with pytest.raises(SoundnessError, match="R7=0x"):
        check_program(assemble(text), caps=FULL, frames=(b"x",), rx_queue_index=0,
                      text=text)
    check_program(assemble(text), caps=FULL, frames=(b"x",), rx_queue_index=1, text=text)


def test_a_wrong_spilled_value_is_an_escape(monkeypatch):
    """A verifier that records every spilled number as zero: the oracle reads the stack."""
    real = verifier_memory.Slot

    def zero_spill(kinds=real._field_defaults["kinds"], spilled=None):
        if spilled is not None and kinds is FULL_SPILL and spilled.type is RegType.SCALAR:
            spilled = Reg.const(0)
        return real(kinds, spilled)

    monkeypatch.setattr(verifier_memory, "Slot", zero_spill)
    with pytest.raises(SoundnessError) as caught:
        check_program(assemble(LOOP), caps=FULL, frames=FRAMES[:1], text=LOOP)
    assert "fp-8=0x1 (spilled 0, 8 bytes) is outside" in str(caught.value)
