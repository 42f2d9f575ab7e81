"""BPF_MAP_CREATE checks: each refused spec gets the kernel's errno (probed on Linux 6.18)."""

from __future__ import annotations

import errno

import pytest

from offload.caps.capabilities import Limits
from offload.errors import ErrnoError
from offload.maps import ENOTSUPP, SUPPORTED_MAP_TYPES, ArrayMap, LpmTrieMap, LruHashMap, MapSpec, create_map
from offload.uapi import MapFlags, MapType

F = MapFlags
T = MapType


def spec(t, ks, vs, me, flags=0, **kw) -> MapSpec:
    return MapSpec("m", t, ks, vs, me, flags, **kw)


REFUSED = [
    (spec(T.ARRAY, 8, 4, 4), errno.EINVAL),
    (spec(T.ARRAY, 4, 0, 4), errno.EINVAL),
    (spec(T.ARRAY, 4, 4, 0), errno.EINVAL),
    (spec(T.ARRAY, 4, 4, 4, F.NO_PREALLOC), errno.EINVAL),
    (spec(T.ARRAY, 4, 1 << 31, 4), errno.E2BIG),
    (spec(T.ARRAY, 4, 4, 4, F.RDONLY_PROG | F.WRONLY_PROG), errno.EINVAL),
    (spec(T.ARRAY, 4, 4, 4, F.RDONLY | F.WRONLY), errno.EINVAL),
    (spec(T.ARRAY, 4, 4, 4, 1 << 20), errno.EINVAL),
    (spec(T.PERCPU_ARRAY, 4, 4, 4, F.MMAPABLE), errno.EINVAL),
    (spec(T.PERCPU_ARRAY, 4, 32769, 4), errno.E2BIG),
    (spec(T.PERCPU_ARRAY, 4, 4, 4, F.NUMA_NODE), errno.EINVAL),
    (spec(T.HASH, 0, 4, 4), errno.EINVAL),
    (spec(T.HASH, 4, 0, 4), errno.EINVAL),
    (spec(T.HASH, 4, 4, 0), errno.EINVAL),
    (spec(T.HASH, 4, 4, (1 << 27) + 1), errno.E2BIG),
    (spec(T.HASH, 4, 4, (1 << 31) + 1), errno.E2BIG),
    (spec(T.HASH, 4, 4194252, 1), errno.E2BIG),
    (spec(T.HASH, 4, 4, 4, F.NO_COMMON_LRU), errno.EINVAL),
    (spec(T.HASH, 4, 4, 4, F.MMAPABLE), errno.EINVAL),
    (spec(T.HASH, 4, 4, 4, F.INNER_MAP), errno.EINVAL),
    (spec(T.PERCPU_HASH, 4, 32769, 4), errno.E2BIG),
    (spec(T.LRU_HASH, 4, 4, 4, F.NO_PREALLOC), ENOTSUPP),
    (spec(T.LRU_PERCPU_HASH, 4, 4, 4, F.NUMA_NODE), errno.EINVAL),
    (spec(T.LRU_HASH, 4, 4, 4, F.NUMA_NODE | F.NO_COMMON_LRU), errno.EINVAL),
    (spec(T.LPM_TRIE, 8, 4, 4), errno.EINVAL),
    (spec(T.LPM_TRIE, 4, 4, 4, F.NO_PREALLOC), errno.EINVAL),
    (spec(T.LPM_TRIE, 261, 4, 4, F.NO_PREALLOC), errno.EINVAL),
    (spec(T.LPM_TRIE, 8, 4194025, 1, F.NO_PREALLOC), errno.EINVAL),
    (spec(T.LPM_TRIE, 8, 4, 4, F.NO_PREALLOC | F.MMAPABLE), errno.EINVAL),
    (spec(T.LPM_TRIE, 8, 4, 0, F.NO_PREALLOC), errno.EINVAL),
    (spec(T.DEVMAP, 4, 12, 4), errno.EINVAL),
    (spec(T.DEVMAP, 8, 4, 4), errno.EINVAL),
    (spec(T.DEVMAP, 4, 4, 4, F.RDONLY_PROG), errno.EINVAL),
    (spec(T.DEVMAP, 4, 4, 4, F.NO_PREALLOC), errno.EINVAL),
    (spec(T.DEVMAP_HASH, 4, 4, (1 << 31) + 1), errno.EINVAL),
    (spec(T.PROG_ARRAY, 4, 8, 4), errno.EINVAL),
    (spec(T.PROG_ARRAY, 8, 4, 4), errno.EINVAL),
    (spec(T.PROG_ARRAY, 4, 4, 4, F.RDONLY_PROG), errno.EINVAL),
    (spec(T.PROG_ARRAY, 4, 4, 4, F.MMAPABLE), errno.EINVAL),
    (spec(T.ARRAY_OF_MAPS, 4, 4, 4), errno.EINVAL),
    (spec(T.ARRAY_OF_MAPS, 4, 8, 4, inner=spec(T.ARRAY, 4, 4, 4)), errno.EINVAL),
    (spec(T.ARRAY_OF_MAPS, 4, 4, 4, inner=spec(T.PROG_ARRAY, 4, 4, 4)), ENOTSUPP),
    (spec(T.HASH_OF_MAPS, 4, 4, 4, inner=spec(T.PROG_ARRAY, 4, 4, 4)), ENOTSUPP),
    (spec(T.ARRAY_OF_MAPS, 4, 4, 4,
          inner=spec(T.ARRAY_OF_MAPS, 4, 4, 4, inner=spec(T.ARRAY, 4, 4, 4))), errno.EINVAL),
    (spec(T.ARRAY_OF_MAPS, 4, 4, 4, inner=spec(T.ARRAY, 8, 4, 4)), errno.EINVAL),
    (spec(T.HASH_OF_MAPS, 4, 8, 4, inner=spec(T.ARRAY, 4, 4, 4)), errno.EINVAL),
    (spec(T.UNSPEC, 4, 4, 4), errno.EINVAL),
    (spec(99, 4, 4, 4), errno.EINVAL),
    (spec(T.QUEUE, 0, 8, 16), errno.EINVAL),  # a type the device does not offer
]


@pytest.mark.parametrize("bad, code", REFUSED, ids=lambda v: getattr(v, "type", v) and str(v))
def test_refused_specs_get_the_kernel_errno(bad, code):
    with pytest.raises(ErrnoError) as info:
        create_map(bad, ncpus=2)
    assert info.value.errno == code
    assert info.value.detail.endswith(".")


ACCEPTED = [
    spec(T.ARRAY, 4, 5 << 20, 1), spec(T.ARRAY, 4, 4, (1 << 31) + 1), spec(T.ARRAY, 4, 4, 4, F.MMAPABLE),
    spec(T.PERCPU_ARRAY, 4, 32768, 4), spec(T.HASH, 513, 4, 4), spec(T.HASH, 4, 4194251, 1),
    spec(T.HASH, 4, 4, 1 << 27), spec(T.HASH, 4, 4, 4, F.ZERO_SEED | F.NO_PREALLOC),
    spec(T.LRU_HASH, 4, 4, 4, F.NO_COMMON_LRU), spec(T.LPM_TRIE, 260, 4194024, 1, F.NO_PREALLOC),
    spec(T.LPM_TRIE, 5, 1, 1, F.NO_PREALLOC | F.RDONLY), spec(T.DEVMAP, 4, 8, 4, F.NUMA_NODE),
    spec(T.DEVMAP_HASH, 4, 4, 1 << 31), spec(T.PROG_ARRAY, 4, 4, 4, F.RDONLY),
    spec(T.ARRAY_OF_MAPS, 4, 4, 4, inner=spec(T.LPM_TRIE, 8, 4, 4, F.NO_PREALLOC)),
    spec(T.HASH_OF_MAPS, 8, 4, 4, inner=spec(T.DEVMAP, 4, 4, 4)),
]


@pytest.mark.parametrize("good", ACCEPTED, ids=str)
def test_accepted_specs(good):
    live = create_map(good, ncpus=2)
    assert live.spec.type == good.type and live.key_size == good.key_size


def test_every_supported_type_has_a_class():
    assert SUPPORTED_MAP_TYPES == {T.ARRAY, T.PERCPU_ARRAY, T.HASH, T.PERCPU_HASH, T.LRU_HASH,
                                   T.LRU_PERCPU_HASH, T.LPM_TRIE, T.DEVMAP, T.DEVMAP_HASH,
                                   T.PROG_ARRAY, T.ARRAY_OF_MAPS, T.HASH_OF_MAPS, T.CPUMAP,
                                   T.XSKMAP, T.PERF_EVENT_ARRAY, T.RINGBUF}


def test_plain_int_type_is_accepted_and_normalised():
    live = create_map(spec(2, 4, 4, 1))
    assert isinstance(live, ArrayMap) and live.type is T.ARRAY


@pytest.mark.parametrize("field, value", [("key_size", -1), ("key_size", "4"), ("value_size", 1 << 32),
                                          ("max_entries", None), ("flags", 2.5), ("name", 7)])
def test_hostile_spec_fields_are_einval(field, value):
    kwargs = dict(name="m", type=T.HASH, key_size=4, value_size=4, max_entries=4)
    kwargs[field] = value
    with pytest.raises(ErrnoError) as info:
        create_map(MapSpec(**kwargs))
    assert info.value.errno == errno.EINVAL


@pytest.mark.parametrize("ncpus", [0, -1, True, 1.0, 10**6])
def test_bad_cpu_count(ncpus):
    with pytest.raises(ErrnoError):
        create_map(spec(T.ARRAY, 4, 4, 1), ncpus=ncpus)


def test_not_a_spec():
    with pytest.raises(ErrnoError):
        create_map({"type": 1})  # type: ignore[arg-type]


def test_device_limits_are_e2big():
    limits = Limits(max_map_entries=1 << 16, max_key_size=64, max_value_size=256)
    for bad in (spec(T.HASH, 4, 4, (1 << 16) + 1), spec(T.HASH, 65, 4, 4), spec(T.ARRAY, 4, 257, 4)):
        with pytest.raises(ErrnoError) as info:
            create_map(bad, limits=limits)
        assert info.value.errno == errno.E2BIG
    create_map(spec(T.HASH, 64, 256, 1 << 16), limits=limits)


def test_contents_and_frozen_apply_at_creation():
    contents = ((b"\0\0\0\0", b"abcd"), (b"\1\0\0\0", b"efgh"))
    live = create_map(spec(T.ARRAY, 4, 4, 2, F.RDONLY_PROG, contents=contents, frozen=True))
    assert live.frozen and live.lookup(b"\1\0\0\0") == b"efgh"
    with pytest.raises(ErrnoError) as info:
        live.update(b"\0\0\0\0", b"zzzz")
    assert info.value.errno == errno.EPERM


def test_bad_contents_refuse_the_whole_map():
    with pytest.raises(ErrnoError) as info:
        create_map(spec(T.HASH, 4, 4, 1, contents=((b"aaaa", b"1111"), (b"bbbb", b"2222"))))
    assert info.value.errno == errno.E2BIG and "initial contents" in info.value.detail
    with pytest.raises(ErrnoError):
        create_map(spec(T.HASH, 4, 4, 1, contents=((b"aaa", b"1111"),)))
    with pytest.raises(ErrnoError):
        create_map(spec(T.HASH, 4, 4, 1, contents=[(b"aaaa", b"1111")]))  # type: ignore[arg-type]


def test_lru_no_common_lru_rounds_max_entries_to_cpus():
    live = create_map(spec(T.LRU_HASH, 4, 4, 5, F.NO_COMMON_LRU), ncpus=4)
    assert isinstance(live, LruHashMap) and live.max_entries == 8


def test_devmap_reports_rdonly_prog_and_lpm_class():
    assert create_map(spec(T.DEVMAP, 4, 4, 1)).flags & F.RDONLY_PROG
    assert isinstance(create_map(spec(T.LPM_TRIE, 8, 4, 1, F.NO_PREALLOC)), LpmTrieMap)


def test_enotsupp_is_named():
    with pytest.raises(ErrnoError) as info:
        create_map(spec(T.LRU_HASH, 4, 4, 4, F.NO_PREALLOC))
    assert str(info.value).startswith("ENOTSUPP: ")
