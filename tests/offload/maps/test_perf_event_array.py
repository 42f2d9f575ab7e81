"""PERF_EVENT_ARRAY: the fd-array creation rules, and one device-owned stream per CPU."""

from __future__ import annotations

import errno

import pytest

from offload.maps import ENOTSUPP, MapSpec, create_map
from offload.maps.perf_event_array import PERF_STREAM_BYTES, sample_cost
from offload.uapi import BPF_F_CURRENT_CPU, MapFlags, MapType

from .test_hash import code, k


def perf(max_entries=4, ncpus=2):
    return create_map(MapSpec("p", MapType.PERF_EVENT_ARRAY, 4, 4, max_entries), ncpus=ncpus)


@pytest.mark.parametrize(("key_size", "value_size", "max_entries", "flags", "code_"), [
    (4, 4, 2, 0, 0), (4, 4, 2, MapFlags.PRESERVE_ELEMS, 0), (4, 4, 0, 0, errno.EINVAL),
    (4, 8, 2, 0, errno.EINVAL), (8, 4, 2, 0, errno.EINVAL),
    (4, 4, 2, MapFlags.RDONLY_PROG, errno.EINVAL), (4, 4, 2, MapFlags.MMAPABLE, errno.EINVAL),
])
def test_creation_rules(key_size, value_size, max_entries, flags, code_):
    spec = MapSpec("p", MapType.PERF_EVENT_ARRAY, key_size, value_size, max_entries, flags)
    assert code(create_map, spec, ncpus=2) == code_


def test_user_space_cannot_install_or_read_events():
    m = perf()
    assert code(m.lookup, k(0)) == ENOTSUPP
    assert code(m.update, k(0), k(5)) == errno.EOPNOTSUPP
    assert code(m.update, k(4), k(5)) == errno.E2BIG
    assert code(m.update, k(0), k(5), 1) == errno.EINVAL
    assert code(m.delete, k(0)) == errno.ENOENT and code(m.delete, k(4)) == errno.E2BIG
    assert m.get_next_key(None) == k(0) and len(m) == 0 and list(m.items()) == []


def test_output_goes_to_the_running_cpus_stream():
    m = perf(max_entries=4, ncpus=2)
    assert m.output(b"one", BPF_F_CURRENT_CPU, cpu=1, time_ns=5) == 0
    assert m.output(b"two", 0, cpu=0, time_ns=7) == 0
    assert m.output(b"x", 1, cpu=0) == -errno.EOPNOTSUPP  # another CPU's event
    assert m.output(b"x", 3, cpu=0) == -errno.ENOENT  # a slot no CPU stands behind
    assert m.output(b"x", 4, cpu=0) == -errno.E2BIG
    assert m.pending == 2
    events = m.take_events()
    assert [(e.stream, e.cpu, e.seq, e.time_ns, e.data) for e in events] == [
        (1, 1, 0, 5, b"one"), (0, 0, 0, 7, b"two")]  # oldest first across the streams
    assert m.pending == 0 and m.stream_stats()["bytes"] == 0


def test_a_full_stream_drops_and_counts():
    m = perf(max_entries=1, ncpus=1)
    record = bytes(4092)  # 8 + round_up(4 + 4092, 8) = 4104 bytes in the ring
    fits = (PERF_STREAM_BYTES - 8) // sample_cost(len(record))
    results = [m.output(record, BPF_F_CURRENT_CPU, cpu=0) for _ in range(fits + 2)]
    assert results == [0] * fits + [-errno.ENOSPC] * 2
    assert m.lost == 2 and m.pending == fits
    m.take_events()
    assert m.output(record, BPF_F_CURRENT_CPU, cpu=0) == 0  # reading made room
    assert [e.seq for e in m.take_events()] == [fits + 2]  # the gap shows the loss
