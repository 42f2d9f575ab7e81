"""PROG_ARRAY: program references for tail calls, owned by one program type."""

from __future__ import annotations

import errno

from offload.maps import ENOTSUPP, MapSpec, create_map
from offload.uapi import MapType, ProgType, UpdateFlags

from .test_hash import code, k


def progs(table, max_entries=4):
    return create_map(MapSpec("p", MapType.PROG_ARRAY, 4, 4, max_entries), resolver=table)


def test_prog_array_semantics(table):
    m = progs(table)
    a, b = table.add_prog(), table.add_prog()
    other = table.add_prog(ProgType.SCHED_CLS)
    some_map = table.add_map(progs(table))
    assert code(m.update, k(0), k(999)) == errno.EBADF
    assert code(m.update, k(0), k(a), UpdateFlags.EXIST) == errno.EINVAL
    assert code(m.update, k(9), k(a)) == errno.E2BIG
    assert code(m.update, k(0), k(some_map)) == errno.EINVAL
    m.update(k(0), k(a))
    assert m.lookup(k(0)) == k(table.objects[a].id)
    assert code(m.update, k(1), k(other)) == errno.EINVAL  # the XDP owner was set by `a`
    assert m.compatible(ProgType.XDP) and not m.compatible(ProgType.SCHED_CLS)
    assert m.program_at(0) is table.objects[a] and m.program_at(1) is None
    assert m.program_at(99) is None
    assert code(m.lookup, k(1)) == errno.ENOENT
    assert code(m.delete, k(1)) == errno.ENOENT and code(m.delete, k(9)) == errno.E2BIG
    m.update(k(0), k(b))
    assert table.refs[a] == 0 and table.refs[b] == 1
    assert code(m.lookup_batch, None, 2) == ENOTSUPP
    assert code(m.program_update, k(0), k(a)) == errno.EINVAL
    assert code(m.value_ref, k(0)) == errno.EINVAL
    assert [key for key, _ in m.items()] == [k(0)]
    m.delete(k(0))
    assert table.total_refs() == 0


def test_ext_programs_never_enter(table):
    m = progs(table)
    assert code(m.update, k(0), k(table.add_prog(ProgType.EXT))) == errno.EINVAL
    assert table.total_refs() == 0


def test_release_drops_everything(table):
    m = progs(table)
    fds = [table.add_prog() for _ in range(3)]
    for i, fd in enumerate(fds):
        m.update(k(i), k(fd))
    m.release()
    assert table.total_refs() == 0 and len(m) == 0
