"""RINGBUF: ringbuf_map_alloc()'s rules, no elements, records and positions as the kernel's."""

from __future__ import annotations

import errno

import pytest

from offload.maps import ENOTSUPP, MapSpec, create_map
from offload.maps.ringbuf import RB_AVAIL_DATA, RB_CONS_POS, RB_PROD_POS, RB_RING_SIZE, record_cost
from offload.uapi import MapFlags, MapType

from .test_hash import code


def ring(size=4096):
    return create_map(MapSpec("r", MapType.RINGBUF, 0, 0, size))


@pytest.mark.parametrize(("key_size", "value_size", "max_entries", "flags", "code_"), [
    (0, 0, 4096, 0, 0), (0, 0, 1 << 20, MapFlags.NUMA_NODE, 0), (0, 0, 12288, 0, errno.EINVAL),
    (0, 0, 2048, 0, errno.EINVAL), (0, 0, 0, 0, errno.EINVAL), (4, 0, 4096, 0, errno.EINVAL),
    (0, 4, 4096, 0, errno.EINVAL), (0, 0, 4096, MapFlags.RDONLY, errno.EINVAL),
    (0, 0, 4096, MapFlags.RDONLY_PROG, errno.EINVAL),
])
def test_creation_rules(key_size, value_size, max_entries, flags, code_):
    spec = MapSpec("r", MapType.RINGBUF, key_size, value_size, max_entries, flags)
    assert code(create_map, spec) == code_


def test_no_elements():
    m = ring()
    for op in (lambda: m.lookup(b""), lambda: m.update(b"", b""), lambda: m.delete(b""),
               lambda: m.get_next_key(None), lambda: m.lookup_batch(None, 4)):
        assert code(op) == ENOTSUPP
    assert len(m) == 0 and list(m.export_entries()) == []


def test_records_positions_and_a_full_ring():
    m = ring(4096)
    assert m.output(b"x" * 5, 0, cpu=1, time_ns=3) == 0
    assert record_cost(5) == 16
    assert (m.query(RB_AVAIL_DATA), m.query(RB_RING_SIZE), m.query(RB_PROD_POS),
            m.query(RB_CONS_POS), m.query(7)) == (16, 4096, 16, 0, 0)
    assert m.output(b"", 8, cpu=0) == -errno.EINVAL  # not a wake-up flag
    assert m.output(b"", 1 | 2, cpu=0) == 0  # wake-up flags: an empty record, 8 bytes
    # records of 56 + 8 bytes: the producer may not get 4095 bytes ahead of the consumer
    results = [m.output(bytes(56), 0, cpu=0) for _ in range(70)]
    assert results.count(0) == (4096 - 8 - 16 - 8) // 64
    assert results[-1] == -errno.EAGAIN and m.lost == results.count(-errno.EAGAIN)
    first = m.take_events()
    assert (first[0].data, first[0].cpu, first[0].time_ns) == (b"xxxxx", 1, 3)
    assert m.query(RB_AVAIL_DATA) == 0 and m.query(RB_CONS_POS) == m.query(RB_PROD_POS)
    assert m.output(bytes(4096), 0, cpu=0) == -errno.EAGAIN  # larger than the ring


def test_a_stream_holds_a_bounded_number_of_records(monkeypatch):
    from offload.maps import events

    monkeypatch.setattr(events, "MAX_RECORDS", 3)
    m = ring(1 << 20)
    assert [m.output(b"", 0, cpu=0) for _ in range(4)] == [0, 0, 0, -errno.EAGAIN]
    assert m.lost == 1 and m.query(RB_AVAIL_DATA) == 24
