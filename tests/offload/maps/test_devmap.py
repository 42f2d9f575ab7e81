"""DEVMAP and DEVMAP_HASH: redirect targets referencing interfaces and devmap programs."""

from __future__ import annotations

import errno
import struct

from offload.maps import ENOTSUPP, MapSpec, create_map
from offload.uapi import AttachType, MapType, ProgType, UpdateFlags

from .test_hash import code, k


def dv(ifindex: int, fd: int = 0) -> bytes:
    return struct.pack("<Ii", ifindex, fd)


def devmap(table, t=MapType.DEVMAP, vs=8, max_entries=4):
    return create_map(MapSpec("d", t, 4, vs, max_entries), resolver=table)


def test_devmap_update_semantics(table):
    m = devmap(table)
    assert code(m.update, k(0), dv(1)) == 0
    assert m.lookup(k(0)) == dv(1)
    assert code(m.update, k(1), dv(9999)) == errno.EINVAL  # no such interface
    assert code(m.update, k(4), dv(1)) == errno.E2BIG
    assert code(m.update, k(1), dv(1), UpdateFlags.NOEXIST) == errno.EEXIST
    assert code(m.update, k(1), dv(0, 3)) == errno.EINVAL  # fd without ifindex
    assert code(m.update, k(1), dv(1, -1)) == 0  # negative fd: no program
    assert code(m.update, k(1), dv(1, 999)) == errno.EINVAL  # bad fd is EINVAL here
    assert code(m.lookup, k(2)) == errno.ENOENT
    assert code(m.delete, k(2)) == 0  # deleting an empty slot succeeds
    assert code(m.delete, k(4)) == errno.EINVAL
    m.update(k(1), dv(0))  # ifindex 0 empties the slot
    assert code(m.lookup, k(1)) == errno.ENOENT and len(m) == 1
    assert m.get_next_key(k(1)) == k(2)
    assert code(m.lookup_batch, None, 2) == ENOTSUPP
    assert code(m.program_update, k(0), bytes(8)) == errno.EINVAL
    assert not m.program_writable and m.value_ref(k(0)) == dv(1)


def test_devmap_programs_are_referenced(table):
    m = devmap(table)
    good = table.add_prog(ProgType.XDP, AttachType.XDP_DEVMAP)
    plain_xdp = table.add_prog(ProgType.XDP, 0)
    assert code(m.update, k(0), dv(2, plain_xdp)) == errno.EINVAL
    assert table.total_refs() == 0
    m.update(k(0), dv(2, good))
    prog = table.objects[good]
    assert m.lookup(k(0)) == struct.pack("<II", 2, prog.id)  # lookups report the program id
    target = m.target(k(0))
    assert target.ifindex == 2 and target.program is prog
    assert table.refs[good] == 1
    m.update(k(0), dv(3))
    assert table.refs[good] == 0
    m.update(k(1), dv(3, good))
    m.release()
    assert table.total_refs() == 0


def test_devmap_hash(table):
    m = devmap(table, t=MapType.DEVMAP_HASH, vs=4, max_entries=2)
    assert code(m.update, k(5), struct.pack("<I", 1), UpdateFlags.EXIST) == 0  # inserts anyway
    assert code(m.update, k(6), struct.pack("<I", 0)) == errno.EINVAL
    assert code(m.update, k(7), struct.pack("<I", 2)) == 0
    assert code(m.update, k(8), struct.pack("<I", 3)) == errno.E2BIG
    assert code(m.update, k(5), struct.pack("<I", 3), UpdateFlags.NOEXIST) == errno.EEXIST
    assert code(m.delete, k(77)) == errno.ENOENT
    assert m.target(k(7)).ifindex == 2 and m.target(k(8)) is None
    assert code(m.update_batch, [(k(1), struct.pack("<I", 1))]) == ENOTSUPP


def test_devmap_hash_releases_program_refs(table):
    m = devmap(table, t=MapType.DEVMAP_HASH)
    fd = table.add_prog(ProgType.XDP, AttachType.XDP_DEVMAP)
    m.update(k(1), dv(1, fd))
    m.update(k(1), dv(1, fd))
    assert table.refs[fd] == 1
    m.delete(k(1))
    assert table.refs[fd] == 0
    m.update(k(2), dv(1, fd))
    m.release()
    assert table.refs[fd] == 0
