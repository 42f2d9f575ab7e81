"""DeviceQueue.pop against a plain reading of the split-ring rules (virtio 1.2 section 2.7).

The device pops chains on a fast path (structs on the memory's buffer, one-comparison range
checks, a short path for chains of one direct descriptor). Here a deliberately slow model,
written straight from the rules with bounds-checked ``GuestMemory`` reads, walks the same rings
and must reach the same verdict: the same chain, or the same refused field. Random rings lean
towards one-descriptor chains, buffers touching the end of guest memory and heads that are
still in flight, where a shortcut would most likely skip a check.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.virtio import (
    Chain,
    Descriptor,
    DeviceQueue,
    GuestMemory,
    Segment,
    VirtioError,
    VirtqueueError,
    VringLayout,
)
from offload.virtio.ring import DescFlags

N, W, I = DescFlags.NEXT, DescFlags.WRITE, DescFlags.INDIRECT
SIZE = 8
LAYOUT = VringLayout(SIZE, 0x100, 0x200, 0x300)
MEM_SIZE = 0x1000
TABLE = 0x600


class Refused(Exception):
    def __init__(self, field: str) -> None:
        super().__init__(field)
        self.field = field


def model_pop(memory: GuestMemory, last_avail: int, in_flight: dict[int, set[int]],
              indirect_ok: bool) -> tuple[Chain, set[int]] | None:
    """One pop by the rules, checked in the order a driver author would read them."""
    avail_idx = memory.read_u16(LAYOUT.avail_idx)
    count = (avail_idx - last_avail) & 0xFFFF
    if count > SIZE:
        raise Refused("avail.idx")
    if not count:
        return None
    slot = last_avail % SIZE
    head = memory.read_u16(LAYOUT.avail_ring(slot))
    if head >= SIZE or head in in_flight:
        raise Refused(f"avail.ring[{slot}]")
    busy = set().union(*in_flight.values())
    readable: list[Segment] = []
    writable: list[Segment] = []
    used: set[int] = set()
    table, entries, prefix, index = LAYOUT.desc, SIZE, "desc", head
    steps = buffers = total = 0
    nested = False
    while True:
        name = f"{prefix}[{index}]"
        steps += 1
        if steps > entries:
            raise Refused(f"{name}.next")
        if not nested:
            if index in busy:
                raise Refused(name)
            used.add(index)
        desc = Descriptor.decode(memory.read(table + 16 * index, 16))
        if desc.flags & I:
            if nested or not indirect_ok or desc.flags & N:
                raise Refused(f"{name}.flags")
            if desc.len == 0 or desc.len % 16:
                raise Refused(f"{name}.len")
            if not memory.contains(desc.addr, desc.len):
                raise Refused(f"{name}.addr")
            table, entries, prefix, index, steps, nested = (desc.addr, desc.len // 16,
                                                            "indirect", 0, 0, True)
            continue
        if not memory.contains(desc.addr, desc.len):
            raise Refused(f"{name}.addr")
        buffers += 1
        if buffers > SIZE:
            raise Refused(name)
        total += desc.len
        if total > 1 << 32:
            raise Refused(f"{name}.len")
        if desc.flags & W:
            writable.append(Segment(desc.addr, desc.len))
        elif writable:
            raise Refused(f"{name}.flags")
        else:
            readable.append(Segment(desc.addr, desc.len))
        if not desc.flags & N:
            return Chain(head, tuple(readable), tuple(writable), nested), used
        if desc.next >= entries:
            raise Refused(f"{name}.next")
        index = desc.next


def lay_out(memory: GuestMemory, descs, heads, avail_idx, table_entries) -> None:
    for i, d in enumerate(descs):
        memory.write(LAYOUT.desc_addr(i), Descriptor(*d).encode())
    for slot, head in enumerate(heads):
        memory.write_u16(LAYOUT.avail_ring(slot), head)
    memory.write_u16(LAYOUT.avail_idx, avail_idx)
    for i, d in enumerate(table_entries):
        memory.write(TABLE + 16 * i, Descriptor(*d).encode())


u16 = st.integers(0, 0xFFFF)
edge_addrs = st.sampled_from([0, 0x800, TABLE, MEM_SIZE - 16, MEM_SIZE - 1, MEM_SIZE,
                              MEM_SIZE + 1, (1 << 64) - 1])
inside = st.integers(0x800, MEM_SIZE - 64)
addrs = st.one_of(inside, inside, edge_addrs, st.integers(0x800, MEM_SIZE),
                  st.integers(0, (1 << 64) - 1))
lens = st.one_of(st.integers(0, 64), st.integers(0, 64), st.sampled_from([0, 1, 16, 32, 48, 15]),
                 st.integers(0, (1 << 32) - 1))
# Mostly plain or WRITE (the one-descriptor path), sometimes chained or indirect, rarely junk.
flag_values = st.one_of(st.sampled_from([0, W, 0, W, N, N | W, I, I | N, I | W]), u16)
nexts = st.one_of(st.integers(0, SIZE - 1), st.integers(0, SIZE - 1), st.integers(0, SIZE), u16)
descs = st.tuples(addrs, lens, flag_values, nexts)
heads = st.one_of(st.integers(0, SIZE - 1), st.integers(0, SIZE - 1), u16)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(descs, min_size=SIZE, max_size=SIZE), st.lists(heads, min_size=SIZE,
       max_size=SIZE), st.one_of(st.integers(0, SIZE + 1), u16),
       st.lists(descs, max_size=4), st.booleans(), st.booleans(),
       st.lists(st.booleans(), min_size=SIZE, max_size=SIZE))
def test_pop_reaches_the_same_verdict_as_the_rules(table, ring_heads, avail_idx, entries,
                                                   indirect_ok, event_idx, returns):
    check_against_the_rules(table, ring_heads, avail_idx, entries, indirect_ok, event_idx,
                            returns)


@st.composite
def driver_like_tables(draw):
    """Descriptors cut into chains of one to three, as a driver lays them out; the ring then
    names any descriptor as a head, so tails of chains still in flight come up as heads."""
    table = []
    while len(table) < SIZE:
        length = min(draw(st.integers(1, 3)), SIZE - len(table))
        for k in range(length):
            index = len(table)
            last = k == length - 1
            flags = draw(st.sampled_from([0, W])) | (0 if last else N)
            table.append((draw(inside), draw(st.integers(0, 64)), flags, 0 if last else index + 1))
    return table


def check_against_the_rules(table, ring_heads, avail_idx, entries, indirect_ok, event_idx,
                            returns):
    memory = GuestMemory(MEM_SIZE)
    lay_out(memory, table, ring_heads, avail_idx, entries)
    queue = DeviceQueue(memory, LAYOUT, indirect=indirect_ok, event_idx=event_idx)
    in_flight: dict[int, set[int]] = {}
    last = 0
    for give_back in returns:
        try:
            expected = model_pop(memory, last, in_flight, indirect_ok)
        except Refused as refusal:
            with pytest.raises(VirtqueueError) as info:
                queue.pop()
            assert info.value.field == refusal.field
            assert queue.broken is info.value
            return
        chain = queue.pop()
        if expected is None:
            assert chain is None
            return
        assert chain == expected[0]
        last += 1
        in_flight[chain.head] = expected[1]
        if event_idx:
            assert memory.read_u16(LAYOUT.avail_event) == last
        if give_back:  # some chains stay in flight, so later heads may collide with them
            queue.push_used(chain.head, 0)
            del in_flight[chain.head]
    assert queue.in_flight == len(in_flight)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(driver_like_tables(), st.lists(st.integers(0, SIZE - 1), min_size=SIZE, max_size=SIZE),
       st.integers(1, SIZE), st.booleans(), st.lists(st.booleans(), min_size=SIZE,
                                                     max_size=SIZE))
def test_driver_like_rings_reach_the_same_verdict_as_the_rules(table, ring_heads, avail_idx,
                                                              event_idx, returns):
    check_against_the_rules(table, ring_heads, avail_idx, [], True, event_idx, returns)


def single(addr, length, flags=0):
    memory = GuestMemory(MEM_SIZE)
    lay_out(memory, [(addr, length, flags, 0)], [0], 1, [])
    return memory, DeviceQueue(memory, LAYOUT, indirect=True)


@pytest.mark.parametrize("flags", [0, W])
def test_a_buffer_may_end_exactly_at_the_end_of_guest_memory(flags):
    _, queue = single(MEM_SIZE - 8, 8, flags)
    chain = queue.pop()
    assert (chain.readable, chain.writable)[bool(flags)] == (Segment(MEM_SIZE - 8, 8),)


@pytest.mark.parametrize("addr, length", [(MEM_SIZE - 8, 9), (MEM_SIZE, 1),
                                          ((1 << 64) - 1, 2), (0, (1 << 32) - 1)])
@pytest.mark.parametrize("flags", [0, W])
def test_one_byte_past_the_end_is_refused_on_the_one_descriptor_path(addr, length, flags):
    _, queue = single(addr, length, flags)
    with pytest.raises(VirtqueueError, match="outside guest memory") as info:
        queue.pop()
    assert info.value.field == "desc[0].addr"


def test_an_empty_buffer_at_the_very_end_is_inside():
    _, queue = single(MEM_SIZE, 0)
    assert queue.pop() == Chain(0, (Segment(MEM_SIZE, 0),), ())


def test_a_lone_descriptor_owned_by_an_in_flight_chain_is_refused():
    """Descriptor 1 is the tail of chain 0; making it available as a head of its own fails
    even though it alone would be a valid one-descriptor chain."""
    memory = GuestMemory(MEM_SIZE)
    lay_out(memory, [(0x800, 4, N, 1), (0x810, 4, W, 0)], [0, 1], 2, [])
    queue = DeviceQueue(memory, LAYOUT)
    queue.pop()
    with pytest.raises(VirtqueueError, match="has not returned") as info:
        queue.pop()
    assert info.value.field == "desc[1]"


def test_the_returned_tail_can_then_be_a_head_of_its_own():
    memory = GuestMemory(MEM_SIZE)
    lay_out(memory, [(0x800, 4, N, 1), (0x810, 4, W, 0)], [0, 1], 2, [])
    queue = DeviceQueue(memory, LAYOUT)
    queue.push_used(queue.pop().head, 4)
    assert queue.pop() == Chain(1, (), (Segment(0x810, 4),))


def test_push_used_refuses_what_the_chain_cannot_hold_and_stays_usable():
    memory, queue = single(0x800, 16, W)
    chain = queue.pop()
    with pytest.raises(VirtioError, match="hold 16 bytes"):
        queue.push_used(chain.head, 17)
    with pytest.raises(VirtioError, match="has not popped"):
        queue.push_used(5, 0)
    assert queue.broken is None and queue.in_flight == 1
    queue.push_used(chain.head, 16)
    assert memory.read_u16(LAYOUT.used_idx) == 1
    assert memory.read(LAYOUT.used_ring(0), 8) == (0).to_bytes(4, "little") + (16).to_bytes(
        4, "little")


def test_a_readable_chain_accepts_no_written_bytes():
    _, queue = single(0x800, 16)
    chain = queue.pop()
    with pytest.raises(VirtioError, match="hold 0 bytes"):
        queue.push_used(chain.head, 1)


def test_chain_write_fills_one_segment_and_refuses_more():
    memory, queue = single(0x800, 8, W)
    chain = queue.pop()
    before = memory.snapshot()
    assert chain.write(memory, b"") == 0 and memory.snapshot() == before
    with pytest.raises(VirtioError, match="hold only 8 bytes"):
        chain.write(memory, bytes(9))
    assert memory.snapshot() == before
    assert chain.write(memory, b"abcdefgh") == 8 and memory.read(0x800, 8) == b"abcdefgh"
