"""XSKMAP: creation and element rules of net/xdp/xskmap.c, sockets as guest receive queues."""

from __future__ import annotations

import errno

import pytest

from offload.maps import ENOTSUPP, MapSpec, create_map
from offload.uapi import MapFlags, MapType, UpdateFlags

from .conftest import Table
from .test_hash import code, k


class Queues(Table):
    """The object table of a device whose guest has receive queues 0-3."""

    def has_rx_queue(self, queue: int) -> bool:
        return 0 <= queue < 4


def xskmap(max_entries=4):
    return create_map(MapSpec("x", MapType.XSKMAP, 4, 4, max_entries), resolver=Queues())


@pytest.mark.parametrize(("key_size", "value_size", "max_entries", "flags", "code_"), [
    (4, 4, 4, 0, 0), (4, 4, 4, MapFlags.RDONLY, 0), (4, 4, 4, MapFlags.NUMA_NODE, 0),
    (4, 8, 4, 0, errno.EINVAL), (8, 4, 4, 0, errno.EINVAL), (4, 4, 0, 0, errno.EINVAL),
    (4, 4, 4, MapFlags.RDONLY_PROG, errno.EINVAL), (4, 4, 4, MapFlags.NO_PREALLOC, errno.EINVAL),
])
def test_creation_rules(key_size, value_size, max_entries, flags, code_):
    spec = MapSpec("x", MapType.XSKMAP, key_size, value_size, max_entries, flags)
    assert code(create_map, spec) == code_


def test_sockets_are_receive_queues():
    m = xskmap()
    assert code(m.update, k(0), k(9)) == errno.EINVAL  # the guest has no queue 9
    assert code(m.update, k(4), k(1)) == errno.E2BIG
    assert code(m.update, k(0), k(1), UpdateFlags.EXIST) == errno.ENOENT
    m.update(k(0), k(1), UpdateFlags.NOEXIST)
    assert code(m.update, k(0), k(2), UpdateFlags.NOEXIST) == errno.EEXIST
    assert code(m.update, k(0), k(1), UpdateFlags.NOEXIST) == 0  # the same socket again
    assert code(m.update, k(0), k(1), 3) == errno.EINVAL
    m.update(k(2), k(3))
    assert code(m.lookup, k(0)) == errno.EOPNOTSUPP  # no user-space lookups
    assert m.queue_at(0) == 1 and m.queue_at(2) == 3 and m.queue_at(1) is None
    assert list(m.items()) == [(k(0), k(1)), (k(2), k(3))] and len(m) == 2
    assert code(m.delete, k(1)) == 0 and code(m.delete, k(4)) == errno.EINVAL
    m.delete(k(2))
    assert m.queue_at(2) is None
    assert m.get_next_key(None) == k(0) and code(m.get_next_key, k(3)) == errno.ENOENT
    assert code(m.update_batch, [(k(1), k(1))]) == ENOTSUPP


def test_programs_read_the_queue_id_and_never_write():
    m = xskmap()
    m.update(k(1), k(3))
    buffer = m.value_ref(k(1))
    assert bytes(buffer) == k(3) and not m.program_writable
    m.update(k(1), k(2))  # rebinding changes what the program's pointer reads
    assert bytes(buffer) == k(2)
    assert m.value_ref(k(0)) is None
    assert code(m.program_update, k(1), k(1)) == errno.EINVAL


def test_without_receive_queues_nothing_binds():
    m = create_map(MapSpec("x", MapType.XSKMAP, 4, 4, 4))
    assert code(m.update, k(0), k(0)) == errno.EINVAL
