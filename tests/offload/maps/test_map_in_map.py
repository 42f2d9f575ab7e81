"""ARRAY_OF_MAPS and HASH_OF_MAPS: inner maps matching a template."""

from __future__ import annotations

import errno

from offload.errors import ErrnoError
from offload.maps import MapSpec, create_map
from offload.uapi import MapFlags, MapType, UpdateFlags

from .test_hash import code, k

INNER = MapSpec("inner", MapType.ARRAY, 4, 4, 4)


def test_array_of_maps(table):
    outer = create_map(MapSpec("o", MapType.ARRAY_OF_MAPS, 4, 4, 4, inner=INNER), resolver=table)
    good = table.add_map(create_map(INNER))
    bigger = table.add_map(create_map(MapSpec("x", MapType.ARRAY, 4, 4, 8)))
    wrong_type = table.add_map(create_map(MapSpec("x", MapType.HASH, 4, 4, 4)))
    prog = table.add_prog()
    outer.update(k(0), k(good))
    assert outer.lookup(k(0)) == k(table.objects[good].id)
    assert outer.inner_map(k(0)) is table.objects[good].map and outer.inner_map(k(1)) is None
    for fd, expected in ((bigger, errno.EINVAL), (wrong_type, errno.EINVAL), (prog, errno.EINVAL),
                         (999, errno.EBADF)):
        assert code(outer.update, k(1), k(fd)) == expected
    assert code(outer.update, k(0), k(good), UpdateFlags.EXIST) == errno.EINVAL
    assert code(outer.delete, k(1)) == errno.ENOENT and code(outer.delete, k(9)) == errno.E2BIG
    assert table.refs[good] == 1
    outer.release()
    assert table.total_refs() == 0


def test_inner_map_flag_relaxes_max_entries(table):
    template = MapSpec("i", MapType.ARRAY, 4, 4, 4, MapFlags.INNER_MAP)
    outer = create_map(MapSpec("o", MapType.ARRAY_OF_MAPS, 4, 4, 2, inner=template), resolver=table)
    outer.update(k(0), k(table.add_map(create_map(MapSpec("x", MapType.ARRAY, 4, 4, 16,
                                                          MapFlags.INNER_MAP)))))
    assert code(outer.update, k(1), k(table.add_map(create_map(MapSpec("y", MapType.ARRAY, 4, 4, 16))))) \
        == errno.EINVAL


def test_hash_of_maps(table):
    outer = create_map(MapSpec("o", MapType.HASH_OF_MAPS, 8, 4, 2, inner=INNER), resolver=table)
    fd = table.add_map(create_map(INNER))
    key = b"12345678"
    outer.update(key, k(fd))
    assert code(outer.update, key, k(fd), UpdateFlags.NOEXIST) == errno.EEXIST
    assert code(outer.update, key, k(999), UpdateFlags.NOEXIST) == errno.EBADF  # fd first
    assert code(outer.update, b"87654321", k(fd), UpdateFlags.EXIST) == errno.ENOENT
    assert table.refs[fd] == 1
    outer.update(b"87654321", k(fd))
    assert code(outer.update, b"00000000", k(fd)) == errno.E2BIG and table.refs[fd] == 2
    assert outer.inner_map(key) is table.objects[fd].map
    assert outer.lookup(key) == k(table.objects[fd].id)
    outer.delete(key)
    assert table.refs[fd] == 1
    outer.release()
    assert table.total_refs() == 0


def test_hash_of_maps_batches_resolve_every_fd(table):
    outer = create_map(MapSpec("o", MapType.HASH_OF_MAPS, 8, 4, 4, inner=INNER), resolver=table)
    fd = table.add_map(create_map(INNER))
    assert outer.update_batch_columns(2, b"aaaaaaaabbbbbbbb", k(fd) + k(fd)) == 2
    assert outer.inner_map(b"aaaaaaaa") is table.objects[fd].map and table.refs[fd] == 2
    try:
        outer.update_batch_columns(1, b"cccccccc", k(999))
    except ErrnoError as err:
        assert err.errno == errno.EBADF
    else:
        raise AssertionError("an unknown fd was stored")
    assert outer.inner_map(b"cccccccc") is None
    outer.release()
    assert table.total_refs() == 0
