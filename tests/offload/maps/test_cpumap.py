"""CPUMAP: creation and element rules of kernel/bpf/cpumap.c, and the worker-queue targets."""

from __future__ import annotations

import errno
import struct

import pytest

from offload.errors import ErrnoError
from offload.maps import ENOTSUPP, MapSpec, create_map
from offload.maps.cpumap import NR_CPUS
from offload.uapi import AttachType, MapFlags, MapType, ProgType, UpdateFlags

from .test_hash import code, k


def cv(qsize: int, fd: int | None = None) -> bytes:
    return struct.pack("<I", qsize) if fd is None else struct.pack("<Ii", qsize, fd)


def cpumap(table=None, vs=8, max_entries=4, ncpus=2):
    kwargs = {} if table is None else {"resolver": table}
    return create_map(MapSpec("c", MapType.CPUMAP, 4, vs, max_entries), ncpus=ncpus, **kwargs)


@pytest.mark.parametrize(("key_size", "value_size", "max_entries", "flags", "code_"), [
    (4, 4, 4, 0, 0), (4, 8, 4, 0, 0), (4, 4, 4, MapFlags.NUMA_NODE, 0),
    (4, 12, 4, 0, errno.EINVAL), (8, 4, 4, 0, errno.EINVAL), (4, 4, 0, 0, errno.EINVAL),
    (4, 4, 4, MapFlags.RDONLY, errno.EINVAL), (4, 4, 4, MapFlags.RDONLY_PROG, errno.EINVAL),
    (4, 4, NR_CPUS + 1, 0, errno.E2BIG),
])
def test_creation_rules(key_size, value_size, max_entries, flags, code_):
    spec = MapSpec("c", MapType.CPUMAP, key_size, value_size, max_entries, flags)
    assert code(create_map, spec, ncpus=2) == code_


def test_update_lookup_delete_follow_the_kernel():
    m = cpumap()
    assert code(m.lookup, k(0)) == errno.ENOENT
    m.update(k(0), cv(64, 0))
    assert m.lookup(k(0)) == cv(64, 0) and len(m) == 1
    assert code(m.update, k(0), cv(64, 0), UpdateFlags.NOEXIST) == errno.EEXIST
    assert code(m.update, k(1), cv(64, -1), UpdateFlags.EXIST) == 0  # no ENOENT check
    assert code(m.update, k(1), cv(16385, 0)) == errno.EOVERFLOW
    assert code(m.update, k(1), cv(16384, 0)) == 0
    assert code(m.update, k(3), cv(8, 0)) == errno.ENODEV  # a CPU the device lacks
    assert code(m.update, k(4), cv(8, 0)) == errno.E2BIG
    assert code(m.update, k(0), cv(8, 0), 4) == errno.EINVAL  # BPF_F_LOCK
    m.update(k(1), cv(0, 0))  # a queue size of 0 empties the slot
    assert code(m.lookup, k(1)) == errno.ENOENT
    assert code(m.delete, k(1)) == 0 and code(m.delete, k(4)) == errno.EINVAL
    assert m.get_next_key(None) == k(0) and m.get_next_key(k(1)) == k(2)
    assert code(m.get_next_key, k(3)) == errno.ENOENT
    assert code(m.lookup_batch, None, 4) == ENOTSUPP
    assert code(m.program_update, k(0), cv(8, 0)) == errno.EINVAL


def test_programs_on_entries_are_referenced_and_typed(table):
    m = cpumap(table)
    good = table.add_prog(ProgType.XDP, AttachType.XDP_CPUMAP)
    devmap_prog = table.add_prog(ProgType.XDP, AttachType.XDP_DEVMAP)
    assert code(m.update, k(0), cv(8, devmap_prog)) == errno.ENOMEM  # as the kernel answers
    assert code(m.update, k(0), cv(8, 999)) == errno.ENOMEM
    assert table.total_refs() == 0
    m.update(k(0), cv(8, good))
    prog = table.objects[good]
    assert m.lookup(k(0)) == struct.pack("<II", 8, prog.id)  # lookups report the id
    target = m.target(0)
    assert (target.cpu, target.qsize, target.program) == (0, 8, prog)
    assert m.target(1) is None
    m.update(k(0), cv(8, 0))
    assert table.refs[good] == 0
    m.update(k(1), cv(4, good))
    m.release()
    assert table.total_refs() == 0


def test_dirty_tracking_and_export():
    m = cpumap(vs=4)
    m.track_dirty()
    m.update(k(1), cv(32))
    m.delete(k(1))
    m.update(k(0), cv(16))
    assert m.take_dirty() == {k(0), k(1)}
    assert list(m.export_entries()) == [(k(0), cv(16))]
    assert m.export_entry(k(0)) == (k(0), cv(16))
    with pytest.raises(ErrnoError):
        m.value_ref(k(0))  # programs cannot look cpumap entries up
