"""Driver and device sides of one split virtqueue talking through guest memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.virtio import (
    DeviceQueue,
    DriverQueue,
    Feature,
    GuestAllocator,
    GuestMemory,
    QueueFullError,
    VirtioError,
    VirtqueueError,
    bit,
)
from offload.virtio.features import DEFAULT_DEVICE_FEATURES

from .conftest import make_link

NO_EVENT_IDX = DEFAULT_DEVICE_FEATURES & ~bit(Feature.VIRTIO_F_EVENT_IDX)
NO_INDIRECT = DEFAULT_DEVICE_FEATURES & ~bit(Feature.VIRTIO_F_INDIRECT_DESC)


def pair(size=8, *, event_idx=False, indirect=False):
    memory = GuestMemory(1 << 18)
    alloc = GuestAllocator(memory)
    driver = DriverQueue.allocate(alloc, size, event_idx=event_idx, indirect=indirect)
    device = DeviceQueue(memory, driver.layout, event_idx=event_idx, indirect=indirect)
    return memory, alloc, driver, device


def roundtrip(memory, alloc, driver, device, payload=b"ping", reply=b"pong!"):
    out, into = alloc.alloc(len(payload)), alloc.alloc(16)
    memory.write(out, payload)
    head = driver.add_buffer([(out, len(payload))], [(into, 16)])
    chain = device.pop()
    assert chain is not None and chain.head == head
    assert chain.read(memory) == payload
    device.push_used(chain.head, chain.write(memory, reply))
    used = driver.get_used()
    assert used is not None and used.head == head and used.length == len(reply)
    assert memory.read(into, len(reply)) == reply
    alloc.free(out)
    alloc.free(into)


def test_request_reply_through_the_rings():
    memory, alloc, driver, device = pair()
    assert device.pop() is None and driver.get_used() is None
    roundtrip(memory, alloc, driver, device)
    assert driver.num_free == 8 and device.in_flight == 0


def test_free_running_indices_wrap_at_65536():
    memory, alloc, driver, device = pair(size=2)
    for i in range(65536 + 5):
        roundtrip(memory, alloc, driver, device, payload=i.to_bytes(4, "little"))
    assert driver.avail_idx == 5 and device.used_idx == 5
    assert memory.read_u16(driver.layout.avail_idx) == 5
    assert memory.read_u16(driver.layout.used_idx) == 5


def test_batches_keep_order_and_fill_the_queue():
    memory, alloc, driver, device = pair(size=4)
    bufs = [alloc.alloc(8) for _ in range(4)]
    heads = [driver.add_buffer([], [(b, 8)]) for b in bufs]
    with pytest.raises(QueueFullError):
        driver.add_buffer([], [(bufs[0], 8)])
    chains = [device.pop() for _ in range(4)]
    assert [c.head for c in chains] == heads and device.pop() is None
    for chain in reversed(chains):  # completion out of order is allowed
        device.push_used(chain.head, 8)
    assert [driver.get_used().head for _ in range(4)] == list(reversed(heads))
    assert driver.num_free == 4


def test_indirect_chain_uses_one_ring_descriptor_and_frees_its_table():
    memory, alloc, driver, device = pair(size=8, indirect=True)
    before = alloc.free_bytes
    bufs = [alloc.alloc(4) for _ in range(6)]
    for i, b in enumerate(bufs[:3]):
        memory.write(b, bytes([i]) * 4)
    driver.add_buffer([(b, 4) for b in bufs[:3]], [(b, 4) for b in bufs[3:]])
    assert driver.num_free == 7
    chain = device.pop()
    assert chain.indirect and len(chain.readable) == 3 and len(chain.writable) == 3
    assert chain.read(memory) == bytes([0] * 4 + [1] * 4 + [2] * 4)
    device.push_used(chain.head, chain.write(memory, b"x" * 12))
    driver.get_used()
    for b in bufs:
        alloc.free(b)
    assert alloc.free_bytes == before and driver.num_free == 8


def test_indirect_needs_the_feature_on_both_sides():
    memory, alloc, driver, device = pair(indirect=False)
    with pytest.raises(VirtioError, match="VIRTIO_F_INDIRECT_DESC"):
        driver.add_buffer([(alloc.alloc(4), 4)], indirect=True)


def test_without_event_idx_flags_suppress_notifications():
    memory, alloc, driver, device = pair()
    buf = alloc.alloc(4)
    driver.add_buffer([(buf, 4)])
    assert driver.kick_prepare()
    device.set_notifications(False)  # VIRTQ_USED_F_NO_NOTIFY
    driver.add_buffer([(buf, 4)])
    assert not driver.kick_prepare()
    assert not driver.kick_prepare()  # nothing added since
    driver.disable_interrupts()  # VIRTQ_AVAIL_F_NO_INTERRUPT
    device.push_used(device.pop().head, 0)
    assert not device.needs_interrupt()
    assert driver.enable_interrupts()  # a used buffer is already waiting
    device.push_used(device.pop().head, 0)
    assert device.needs_interrupt()
    assert not device.needs_interrupt()  # nothing new since the last notification


def test_event_idx_kicks_only_when_avail_event_is_crossed():
    memory, alloc, driver, device = pair(size=8, event_idx=True)
    buf = alloc.alloc(4)
    driver.add_buffer([(buf, 4)])
    assert driver.kick_prepare()  # avail_event is 0, crossed by 0 -> 1
    assert device.pop() is not None  # the device now asks for a kick at index 1
    driver.add_buffer([(buf, 4)])
    driver.add_buffer([(buf, 4)])
    assert driver.kick_prepare()  # 1 in [1, 3)
    driver.add_buffer([(buf, 4)])
    assert not driver.kick_prepare()  # the device has not consumed past 1: no new kick
    assert device.pop() and device.pop() and device.pop()
    driver.add_buffer([(buf, 4)])
    assert driver.kick_prepare()  # the device set avail_event = 4


def test_event_idx_interrupts_follow_used_event():
    memory, alloc, driver, device = pair(size=8, event_idx=True)
    buf = alloc.alloc(4)
    for _ in range(4):
        driver.add_buffer([(buf, 4)])
    chains = [device.pop() for _ in range(4)]
    driver.set_used_event(2)  # "interrupt me once the third buffer is used"
    device.push_used(chains[0].head, 0)
    assert device.needs_interrupt()  # the first notification is always sent
    device.push_used(chains[1].head, 0)
    assert not device.needs_interrupt()  # window [1, 2) misses 2
    device.push_used(chains[2].head, 0)
    device.push_used(chains[3].head, 0)
    assert device.needs_interrupt()  # window [2, 4) holds 2
    driver.disable_interrupts()
    for _ in range(3):
        driver.get_used()
    driver.add_buffer([(buf, 4)])
    device.push_used(device.pop().head, 0)
    assert not device.needs_interrupt()


def test_driver_distrusts_the_used_ring():
    memory, alloc, driver, device = pair()
    buf = alloc.alloc(8)
    head = driver.add_buffer([], [(buf, 8)])
    slot = driver.layout.used_ring(0)
    memory.write_u32(slot, 7)  # a head the driver never made available
    memory.write_u16(driver.layout.used_idx, 1)
    with pytest.raises(VirtqueueError) as info:
        driver.get_used()
    assert info.value.field == "used.ring[0].id"
    memory.write_u32(slot, head)
    memory.write_u32(slot + 4, 9)  # more than the 8 writable bytes
    with pytest.raises(VirtqueueError, match="9 bytes"):
        driver.get_used()
    memory.write_u16(driver.layout.used_idx, 3)
    with pytest.raises(VirtqueueError) as info:
        driver.get_used()
    assert info.value.field == "used.idx"


def test_device_refuses_its_own_misuse_of_push_used():
    memory, alloc, driver, device = pair()
    with pytest.raises(VirtioError, match="has not popped"):
        device.push_used(0, 0)
    driver.add_buffer([], [(alloc.alloc(4), 4)])
    chain = device.pop()
    with pytest.raises(VirtioError, match="hold 4 bytes"):
        device.push_used(chain.head, 5)
    with pytest.raises(VirtioError, match="hold only 4 bytes"):
        chain.write(memory, b"12345")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "pop", "push", "get"]),
                          st.integers(1, 3), st.integers(0, 1)), max_size=60),
       st.booleans(), st.booleans())
def test_random_interleavings_deliver_every_buffer_once(ops, event_idx, indirect):
    memory, alloc, driver, device = pair(size=4, event_idx=event_idx, indirect=indirect)
    sent: dict[int, bytes] = {}
    popped = []
    seq = 0
    for op, n_out, n_in in ops:
        if op == "add":
            payload = seq.to_bytes(2, "little") * n_out
            addr = alloc.alloc(len(payload))
            memory.write(addr, payload)
            outs = [(addr + 2 * i, 2) for i in range(n_out)]
            ins = [(alloc.alloc(4), 4) for _ in range(n_in)]
            try:
                head = driver.add_buffer(outs, ins)
            except QueueFullError:
                continue
            assert head not in sent
            sent[head] = payload
            seq += 1
        elif op == "pop" and (chain := device.pop()) is not None:
            assert chain.read(memory) == sent[chain.head]
            popped.append(chain)
        elif op == "push" and popped:
            chain = popped.pop(0)
            device.push_used(chain.head, chain.write(memory, b"ok"[:chain.writable_len]))
        elif op == "get" and (used := driver.get_used()) is not None:
            assert used.head in sent
            del sent[used.head]
    assert device.in_flight == len(popped)
    while (chain := device.pop()) is not None:  # drain: everything comes back exactly once
        popped.append(chain)
    for chain in popped:
        device.push_used(chain.head, 0)
    while (used := driver.get_used()) is not None:
        del sent[used.head]
    assert not sent and driver.num_free == 4 and device.in_flight == 0


def test_live_link_uses_negotiated_ring_features():
    link = make_link(NO_EVENT_IDX & NO_INDIRECT)
    assert not link.driver.event_idx and not link.driver.indirect
    assert not link.device.event_idx and not link.device.indirect


# -- one-descriptor chains (add_inbuf / add_outbuf) ---------------------------------------

def test_one_buffer_chains_are_laid_out_exactly_as_add_buffer_lays_them_out():
    layouts = []
    for use_single in (False, True):
        memory, alloc, driver, device = pair(size=4, event_idx=True, indirect=True)
        out, into = alloc.alloc(8), alloc.alloc(16)
        if use_single:
            heads = [driver.add_outbuf(out, 8), driver.add_inbuf(into, 16)]
        else:
            heads = [driver.add_buffer([(out, 8)]), driver.add_buffer([], [(into, 16)])]
        layouts.append((heads, memory.snapshot(), driver.kick_prepare()))
        chains = [device.pop(), device.pop()]
        assert chains[0].readable == ((out, 8),) and chains[1].writable == ((into, 16),)
    assert layouts[0] == layouts[1]


@pytest.mark.parametrize("addr, length", [(-1, 4), (0, -1), ((1 << 18) - 3, 4), (1 << 18, 1),
                                          (0x2000, 1 << 32)])
def test_one_buffer_outside_guest_memory_is_refused_and_nothing_is_published(addr, length):
    memory, alloc, driver, device = pair()
    before = memory.snapshot()
    for add in (driver.add_inbuf, driver.add_outbuf,
                lambda a, n: driver.add_buffer([(a, n)]),
                lambda a, n: driver.add_buffer([], [(a, n)])):
        with pytest.raises(VirtioError, match="not inside guest memory"):
            add(addr, length)
    assert memory.snapshot() == before and driver.num_free == 8 and driver.avail_idx == 0


def test_a_buffer_may_end_at_the_end_of_guest_memory():
    memory, alloc, driver, device = pair()
    head = driver.add_inbuf((1 << 18) - 4, 4)
    assert device.pop().writable == (((1 << 18) - 4, 4),) and head == 0


def test_one_buffer_chains_fill_the_queue_then_report_it_full():
    memory, alloc, driver, device = pair(size=2)
    buf = alloc.alloc(4)
    assert [driver.add_inbuf(buf, 4), driver.add_outbuf(buf, 4)] == [0, 1]
    with pytest.raises(QueueFullError, match="0 free descriptors"):
        driver.add_inbuf(buf, 4)
    assert driver.avail_idx == 2
    device.push_used(device.pop().head, 4)
    assert driver.get_used() == (0, 4)
    assert driver.add_inbuf(buf, 4) == 0


def test_get_used_refuses_a_device_that_runs_ahead_or_lies():
    memory, alloc, driver, device = pair()
    buf = alloc.alloc(8)
    head = driver.add_inbuf(buf, 8)
    memory.write_u16(driver.layout.used_idx, 2)  # two entries, one buffer outstanding
    with pytest.raises(VirtqueueError, match="only 1 buffers are outstanding") as info:
        driver.get_used()
    assert info.value.field == "used.idx"
    memory.write_u16(driver.layout.used_idx, 1)
    memory.write_u32(driver.layout.used_ring(0), head + 3)
    with pytest.raises(VirtqueueError, match="not the head of a chain") as info:
        driver.get_used()
    assert info.value.field == "used.ring[0].id"
    memory.write_u32(driver.layout.used_ring(0), head)
    memory.write_u32(driver.layout.used_ring(0) + 4, 9)
    with pytest.raises(VirtqueueError, match="8 writable bytes") as info:
        driver.get_used()
    assert info.value.field == "used.ring[0].len"
    memory.write_u32(driver.layout.used_ring(0) + 4, 8)
    assert driver.get_used() == (head, 8) and driver.get_used() is None
