"""The guest allocator's recycling of freed regions: reuse by size, alignment, give-back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.virtio import GuestAllocator, GuestMemory, GuestMemoryError
from offload.virtio.allocator import RECYCLED_BYTES


def test_a_freed_region_is_handed_out_again_for_the_same_size_and_zeroed():
    mem = GuestMemory(1 << 16)
    alloc = GuestAllocator(mem)
    first = alloc.alloc(76)
    mem.write(first, b"\xff" * 76)
    alloc.free(first)
    assert alloc.alloc(76) == first
    assert mem.read(first, 76) == bytes(76)
    other = alloc.alloc(80)
    assert other != first


def test_without_zero_the_recycled_bytes_are_left_as_they_were():
    mem = GuestMemory(1 << 16)
    alloc = GuestAllocator(mem)
    addr = alloc.alloc(8)
    mem.write(addr, b"abcdefgh")
    alloc.free(addr)
    assert alloc.alloc(8, zero=False) == addr and mem.read(addr, 8) == b"abcdefgh"


def test_a_recycled_region_is_reused_only_when_aligned_enough():
    mem = GuestMemory(1 << 16)
    alloc = GuestAllocator(mem, start=0x1008)
    odd = alloc.alloc(16, 8)
    assert odd % 16 == 8
    alloc.free(odd)
    aligned = alloc.alloc(16, 16)
    assert aligned != odd and aligned % 16 == 0
    assert alloc.alloc(16, 8) == odd  # still there for a request it suits


def test_a_recycled_region_cannot_be_freed_twice():
    alloc = GuestAllocator(GuestMemory(1 << 16))
    addr = alloc.alloc(32)
    alloc.free(addr)
    with pytest.raises(GuestMemoryError, match="not an allocated region"):
        alloc.free(addr)


def test_recycled_regions_come_back_merged_when_memory_runs_short():
    mem = GuestMemory(1 << 16)
    alloc = GuestAllocator(mem)
    total = alloc.free_bytes
    small = [alloc.alloc(100, 4) for _ in range(200)]
    for addr in small:
        alloc.free(addr)
    assert alloc.free_bytes == total
    big = alloc.alloc(total - 64, 1)  # needs every recycled region merged back
    assert big >= 0x1000
    with pytest.raises(GuestMemoryError, match="out of guest memory"):
        alloc.alloc(128)


def test_at_most_the_recycling_budget_is_kept_aside():
    mem = GuestMemory(8 << 20)
    alloc = GuestAllocator(mem)
    regions = [alloc.alloc(64 << 10) for _ in range(2 * RECYCLED_BYTES // (64 << 10))]
    for addr in regions:
        alloc.free(addr)
    assert alloc._recycled_bytes <= RECYCLED_BYTES
    assert len(alloc._free) == 1  # what went straight back merged with the free tail


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([8, 76, 100, 9228]), st.sampled_from([1, 4, 16]),
                          st.integers(0, 7)), max_size=80))
def test_recycling_never_hands_out_overlapping_or_misaligned_regions(ops):
    mem = GuestMemory(1 << 16)
    alloc = GuestAllocator(mem)
    total = alloc.free_bytes
    live: dict[int, int] = {}
    for size, align, victim in ops:
        try:
            addr = alloc.alloc(size, align)
        except GuestMemoryError:
            addr = None
        if addr is not None:
            assert addr % align == 0 and 0x1000 <= addr and addr + size <= mem.size
            for other, other_size in live.items():
                assert addr + size <= other or other + other_size <= addr
            live[addr] = size
        if live and victim < 4:
            gone = list(live)[victim % len(live)]
            alloc.free(gone)
            del live[gone]
        assert alloc.free_bytes == total - sum(live.values())
    for addr in list(live):
        alloc.free(addr)
    assert alloc.free_bytes == total
    assert alloc.alloc(total - 64, 1)
