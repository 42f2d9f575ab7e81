from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.virtio import GuestAllocator, GuestMemory, GuestMemoryError


def test_reads_and_writes_are_little_endian_and_bounded():
    mem = GuestMemory(64)
    mem.write_u32(60, 0x11223344)
    assert mem.read(60, 4) == bytes([0x44, 0x33, 0x22, 0x11])
    assert mem.read_u16(62) == 0x1122
    for addr, length in ((61, 4), (64, 1), (-1, 1), (0, 65), (1 << 64, 1)):
        with pytest.raises(GuestMemoryError, match="outside guest memory"):
            mem.read(addr, length)
    with pytest.raises(GuestMemoryError):
        mem.write_u64(57, 0)
    assert mem.read(64, 0) == b""  # an empty access at the very end is inside


def test_overflowing_address_plus_length_is_refused():
    mem = GuestMemory(4096)
    assert not mem.contains((1 << 64) - 8, 16)
    assert not mem.contains(8, (1 << 64) - 4)


def test_allocator_aligns_zeroes_and_refuses_when_full():
    mem = GuestMemory(0x2000)
    mem.fill(0, 0x2000, 0xAA)
    alloc = GuestAllocator(mem, start=0x1001)
    a = alloc.alloc(10, 16)
    assert a % 16 == 0 and a >= 0x1001
    assert mem.read(a, 10) == bytes(10)
    with pytest.raises(GuestMemoryError, match="out of guest memory"):
        alloc.alloc(0x1000)
    alloc.free(a)
    with pytest.raises(GuestMemoryError, match="not an allocated region"):
        alloc.free(a)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 300), st.sampled_from([1, 2, 4, 8, 16, 64]),
                          st.booleans()), max_size=40))
def test_allocations_never_overlap_and_free_merges_back(ops):
    mem = GuestMemory(1 << 16)
    alloc = GuestAllocator(mem)
    total = alloc.free_bytes
    live: dict[int, int] = {}
    for size, align, release in ops:
        try:
            addr = alloc.alloc(size, align)
        except GuestMemoryError:
            continue
        assert addr % align == 0
        for other, other_size in live.items():
            assert addr + size <= other or other + other_size <= addr
        live[addr] = size
        if release and live:
            victim = next(iter(live))
            alloc.free(victim)
            del live[victim]
    for addr in list(live):
        alloc.free(addr)
    assert alloc.free_bytes == total
    assert alloc.alloc(total - 64, 1)  # the space merged back into one region
