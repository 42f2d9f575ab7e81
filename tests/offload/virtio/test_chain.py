"""Chains: gathering the device-readable bytes and scattering into the writable ones."""

from __future__ import annotations

import pytest

from offload.virtio import Chain, GuestMemory, GuestMemoryError, Segment, VirtioError

MEM_SIZE = 0x1000


def test_chain_write_scatters_over_several_segments():
    chain = Chain(0, (), (Segment(0x800, 3), Segment(0x900, 5)))
    memory = GuestMemory(MEM_SIZE)
    assert chain.write(memory, b"abcdef") == 6
    assert memory.read(0x800, 3) == b"abc" and memory.read(0x900, 5) == b"def\0\0"
    with pytest.raises(VirtioError, match="hold only 8 bytes"):
        chain.write(memory, bytes(9))


def test_chain_read_honours_the_limit_on_one_and_several_segments():
    memory = GuestMemory(MEM_SIZE)
    memory.write(0x800, b"0123456789")
    one = Chain(0, (Segment(0x800, 10),), ())
    assert one.read(memory) == b"0123456789" and one.read(memory, 4) == b"0123"
    two = Chain(0, (Segment(0x800, 3), Segment(0x805, 5)), ())
    assert two.read(memory) == b"01256789" and two.read(memory, 5) == b"01256"
    assert Chain(0, (), ()).read(memory) == b""


def test_a_hand_made_chain_still_cannot_reach_outside_guest_memory():
    memory = GuestMemory(MEM_SIZE)
    with pytest.raises(GuestMemoryError):
        Chain(0, (), (Segment(MEM_SIZE - 2, 8),)).write(memory, b"abcd")
    with pytest.raises(GuestMemoryError):
        Chain(0, (Segment(MEM_SIZE - 2, 8),), ()).read(memory)
