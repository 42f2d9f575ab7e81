"""The device validates every chain it pops; hostile rings end in DEVICE_NEEDS_RESET.

Hand-made violations check that each rule names its field; hypothesis then throws random and
mutated descriptor tables, rings and indirect tables at the device and checks that only the
typed error path is taken, that the device ends in DEVICE_NEEDS_RESET with a reason, and that
guest memory outside the used ring and the device-writable buffers never changes.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from offload.virtio import (
    CONTROLQ,
    Chain,
    Descriptor,
    DeviceQueue,
    DeviceStatus,
    GuestMemory,
    Segment,
    Transport,
    VirtqueueError,
    VringLayout,
    driver_negotiate,
)
from offload.virtio.features import DEFAULT_DEVICE_FEATURES, Feature, bit
from offload.virtio.ring import DescFlags

N, W, I = DescFlags.NEXT, DescFlags.WRITE, DescFlags.INDIRECT
SIZE = 8
LAYOUT = VringLayout(SIZE, 0x100, 0x200, 0x300)
MEM_SIZE = 0x1000
BUF = 0x800  # ordinary buffers live here
TABLE = 0x600  # indirect tables live here


def ring(descs=(), heads=(), *, avail_idx=None, indirect=True, event_idx=False):
    memory = GuestMemory(MEM_SIZE)
    for i, (addr, length, flags, nxt) in enumerate(descs):
        memory.write(LAYOUT.desc_addr(i), Descriptor(addr, length, flags, nxt).encode())
    for slot, head in enumerate(heads):
        memory.write_u16(LAYOUT.avail_ring(slot % SIZE), head)
    memory.write_u16(LAYOUT.avail_idx, len(heads) if avail_idx is None else avail_idx)
    return memory, DeviceQueue(memory, LAYOUT, indirect=indirect, event_idx=event_idx)


def put_table(memory, entries, at=TABLE):
    for i, (addr, length, flags, nxt) in enumerate(entries):
        memory.write(at + 16 * i, Descriptor(addr, length, flags, nxt).encode())


def refused(queue) -> VirtqueueError:
    with pytest.raises(VirtqueueError) as info:
        queue.pop()
    with pytest.raises(VirtqueueError):  # the queue stays broken
        queue.pop()
    return info.value


def test_a_well_formed_chain_pops():
    memory, q = ring([(BUF, 4, N, 1), (BUF + 4, 4, W, 0)], [0])
    assert q.pop() == Chain(0, (Segment(BUF, 4),), (Segment(BUF + 4, 4),))


@pytest.mark.parametrize("descs, heads, avail_idx, field, words", [
    ([(BUF, 4, 0, 0)], [0], SIZE + 1, "avail.idx", "more than the queue size"),
    ([(BUF, 4, 0, 0)], [SIZE], None, "avail.ring[0]", "not below the queue size"),
    ([(MEM_SIZE - 2, 4, 0, 0)], [0], None, "desc[0].addr", "outside guest memory"),
    ([((1 << 64) - 2, 4, 0, 0)], [0], None, "desc[0].addr", "outside guest memory"),
    ([(BUF, 4, N, SIZE)], [0], None, "desc[0].next", "outside the table"),
    ([(BUF, 4, N, 1), (BUF, 4, N, 0)], [0], None, "next", "loop"),
    ([(BUF, 4, N, 1), (BUF, 4, N, 1)], [0], None, "next", "loop"),
    ([(BUF, 4, W | N, 1), (BUF, 4, 0, 0)], [0], None, "desc[1].flags", "follows a device-writable"),
    ([(TABLE, 32, I | N, 1)], [0], None, "desc[0].flags", "INDIRECT and NEXT"),
    ([(TABLE, 24, I, 0)], [0], None, "desc[0].len", "multiple of 16"),
    ([(TABLE, 0, I, 0)], [0], None, "desc[0].len", "multiple of 16"),
    ([(MEM_SIZE - 16, 32, I, 0)], [0], None, "desc[0].addr", "outside guest memory"),
])
def test_each_violation_names_its_field(descs, heads, avail_idx, field, words):
    memory, q = ring(descs, heads, avail_idx=avail_idx)
    err = refused(q)
    assert field in err.field and words in str(err)


def test_indirect_without_the_feature_is_refused():
    memory, q = ring([(TABLE, 16, I, 0)], [0], indirect=False)
    put_table(memory, [(BUF, 4, 0, 0)])
    assert "VIRTIO_F_INDIRECT_DESC" in str(refused(q))


@pytest.mark.parametrize("entries, field, words", [
    ([(TABLE, 16, I, 0)], "indirect[0].flags", "inside an indirect table"),
    ([(BUF, 4, N, 5)], "indirect[0].next", "outside the table of 2"),
    ([(BUF, 4, N, 1), (BUF, 4, N, 0)], "indirect[0].next", "loop"),
    ([(BUF, 4, W | N, 1), (BUF, 4, 0, 0)], "indirect[1].flags", "follows a device-writable"),
    ([(BUF, MEM_SIZE, 0, 0), (0, 0, 0, 0)], "indirect[0].addr", "outside guest memory"),
])
def test_indirect_table_violations(entries, field, words):
    memory, q = ring([(TABLE, 16 * 2, I, 0)], [0])
    put_table(memory, entries)
    err = refused(q)
    assert err.field == field and words in str(err)


def test_normal_descriptors_then_one_indirect_are_accepted():
    """2.7.5.3.2: zero or more chained descriptors followed by a single INDIRECT one."""
    memory, q = ring([(BUF, 4, N, 1), (TABLE, 32, I, 0)], [0])
    put_table(memory, [(BUF + 4, 4, N, 1), (BUF + 8, 4, W, 0)])
    chain = q.pop()
    assert [s.addr for s in chain.readable] == [BUF, BUF + 4]
    assert [s.addr for s in chain.writable] == [BUF + 8] and chain.indirect


def test_a_chain_longer_than_the_queue_size_is_refused_even_when_indirect():
    entries = [(BUF, 1, N, i + 1) for i in range(SIZE)] + [(BUF, 1, 0, 0)]
    memory, q = ring([(TABLE, 16 * len(entries), I, 0)], [0])
    put_table(memory, entries)
    assert "more than 8 buffers" in str(refused(q))


def test_heads_and_descriptors_in_use_cannot_be_made_available_again():
    memory, q = ring([(BUF, 4, N, 1), (BUF, 4, 0, 0)], [0, 0])
    q.pop()
    assert "still in use" in str(refused(q))
    memory, q = ring([(BUF, 4, N, 1), (BUF, 4, 0, 0)], [0, 1])
    q.pop()
    err = refused(q)
    assert err.field == "desc[1]" and "has not returned" in str(err)


def test_a_returned_chain_frees_its_descriptors():
    memory, q = ring([(BUF, 4, N, 1), (BUF, 4, 0, 0)], [0, 0])
    q.push_used(q.pop().head, 0)
    assert q.pop().head == 0


def live_transport(memory: GuestMemory, *, indirect=True, event_idx=True) -> Transport:
    features = DEFAULT_DEVICE_FEATURES
    if not indirect:
        features &= ~bit(Feature.VIRTIO_F_INDIRECT_DESC)
    if not event_idx:
        features &= ~bit(Feature.VIRTIO_F_EVENT_IDX)
    transport = Transport(memory, DEFAULT_DEVICE_FEATURES, [SIZE] * 3)
    driver_negotiate(transport, features)
    transport.configure_queue(CONTROLQ, LAYOUT)
    transport.enable_queue(CONTROLQ)
    transport.write_status(transport.status | DeviceStatus.DRIVER_OK)
    return transport


def test_a_bad_chain_sets_needs_reset_and_a_reset_recovers():
    memory = GuestMemory(MEM_SIZE)
    transport = live_transport(memory)
    memory.write(LAYOUT.desc_addr(0), Descriptor(BUF, 4, N, 0).encode())  # loops on itself
    memory.write_u16(LAYOUT.avail_idx, 1)
    assert transport.pop(CONTROLQ) is None
    assert transport.status & DeviceStatus.DEVICE_NEEDS_RESET and not transport.live
    assert transport.reset_reason.startswith("queue 2: desc[0].next")
    assert transport.config_changed
    assert transport.pop(CONTROLQ) is None  # no further processing
    transport.write_status(0)
    assert transport.status == 0 and transport.reset_reason is None


# -- fuzzing ------------------------------------------------------------------------------

u16 = st.integers(0, 0xFFFF)
addrs = st.one_of(st.integers(BUF, MEM_SIZE - 64), st.sampled_from([BUF, TABLE, MEM_SIZE - 16]),
                  st.integers(0, MEM_SIZE), st.integers(0, (1 << 64) - 1))
small_idx = st.integers(0, 3).flatmap(lambda k: u16 if k == 0 else st.integers(0, SIZE - 1))
avail_idx = st.integers(0, 3).flatmap(lambda k: u16 if k == 0 else st.integers(1, SIZE))
lens = st.one_of(st.integers(0, 64), st.sampled_from([16, 32, 48, 0x7FF]),
                 st.integers(0, (1 << 32) - 1))
flags = st.one_of(st.integers(0, 7), u16)
descs = st.tuples(addrs, lens, flags, st.one_of(st.integers(0, SIZE + 1), u16))


def allowed_ranges(chains: list[Chain]) -> list[tuple[int, int]]:
    ranges = [(LAYOUT.device, LAYOUT.device + VringLayout.used_bytes(SIZE))]
    for chain in chains:
        ranges += [(s.addr, s.addr + s.length) for s in chain.writable]
    return ranges


def assert_only_allowed_changes(before: bytes, after: bytes, chains: list[Chain]) -> None:
    ranges = allowed_ranges(chains)
    for addr, (old, new) in enumerate(zip(before, after)):
        if old != new:
            assert any(lo <= addr < hi for lo, hi in ranges), f"stray write at {addr:#x}"


def run_device(transport: Transport, memory: GuestMemory) -> list[Chain]:
    """A device loop: pop, fill the writable part, return; like the real device will."""
    chains = []
    for _ in range(4 * SIZE):
        chain = transport.pop(CONTROLQ)
        if chain is None:
            break
        chains.append(chain)
        data = bytes([0xEE]) * min(chain.writable_len, 8)
        written = chain.write(memory, data)
        transport.queue(CONTROLQ).push_used(chain.head, written)
        transport.queue(CONTROLQ).needs_interrupt()
    return chains


def check_outcome(transport: Transport) -> None:
    if transport.status & DeviceStatus.DEVICE_NEEDS_RESET:
        assert transport.reset_reason and not transport.live
        queue_error = transport.device_queue(CONTROLQ).broken
        assert isinstance(queue_error, VirtqueueError) and queue_error.field
        kind = queue_error.field.split("[")[0], queue_error.field.split(".")[-1]
        event(f"needs reset: {kind[0]} {kind[1]}")
    else:
        event("no error")
        assert transport.reset_reason is None


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(descs, min_size=SIZE, max_size=SIZE),
       st.lists(small_idx, min_size=SIZE, max_size=SIZE), avail_idx, st.lists(descs, max_size=6),
       st.booleans(), st.booleans(), st.binary(max_size=64))
def test_random_rings_never_escape_the_typed_error_path(table, heads, avail_idx, indirect_table,
                                                         indirect, event_idx, noise):
    memory = GuestMemory(MEM_SIZE)
    transport = live_transport(memory, indirect=indirect, event_idx=event_idx)
    for i, d in enumerate(table):
        memory.write(LAYOUT.desc_addr(i), Descriptor(*d).encode())
    for slot, head in enumerate(heads):
        memory.write_u16(LAYOUT.avail_ring(slot), head)
    memory.write_u16(LAYOUT.avail_idx, avail_idx)
    put_table(memory, indirect_table)
    memory.write(BUF, noise)
    before = memory.snapshot()
    chains = run_device(transport, memory)
    check_outcome(transport)
    assert_only_allowed_changes(before, memory.snapshot(), chains)


def valid_ring(memory: GuestMemory) -> None:
    """Four chains, one of them indirect, the way a driver would lay them out."""
    memory.write(LAYOUT.desc_addr(0), Descriptor(BUF, 8, N, 1).encode())
    memory.write(LAYOUT.desc_addr(1), Descriptor(BUF + 8, 8, W, 0).encode())
    memory.write(LAYOUT.desc_addr(2), Descriptor(TABLE, 48, I, 0).encode())
    put_table(memory, [(BUF + 16, 8, N, 1), (BUF + 24, 8, N | W, 2), (BUF + 32, 8, W, 0)])
    memory.write(LAYOUT.desc_addr(3), Descriptor(BUF + 40, 8, 0, 0).encode())
    memory.write(LAYOUT.desc_addr(4), Descriptor(BUF + 48, 8, W, 0).encode())
    for slot, head in enumerate((0, 2, 3, 4)):
        memory.write_u16(LAYOUT.avail_ring(slot), head)
    memory.write_u16(LAYOUT.avail_idx, 4)


regions = st.sampled_from([(LAYOUT.desc, VringLayout.desc_bytes(SIZE)),
                           (LAYOUT.driver, VringLayout.avail_bytes(SIZE)), (TABLE, 48)])


@FUZZ
@given(st.lists(st.tuples(regions, st.integers(0, 127), st.integers(0, 255)), min_size=1,
                max_size=6))
def test_mutated_valid_rings_never_escape_the_typed_error_path(mutations):
    memory = GuestMemory(MEM_SIZE)
    transport = live_transport(memory)
    valid_ring(memory)
    for (start, length), offset, byte in mutations:
        memory.write(start + offset % length, bytes([byte]))
    before = memory.snapshot()
    chains = run_device(transport, memory)
    check_outcome(transport)
    assert_only_allowed_changes(before, memory.snapshot(), chains)


def test_the_unmutated_ring_pops_four_chains():
    memory = GuestMemory(MEM_SIZE)
    transport = live_transport(memory)
    valid_ring(memory)
    chains = run_device(transport, memory)
    assert [c.head for c in chains] == [0, 2, 3, 4] and transport.live
