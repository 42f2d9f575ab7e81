"""Kernel maps: creation from MapSpec, element commands and their errno edge cases."""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.backends.kernel import BpfSyscallError, KernelMap, possible_cpus
from offload.backends.kernel.maps import parse_cpu_list
from offload.errors import ErrnoError
from offload.maps import MapSpec
from offload.uapi import MapFlags, MapType, UpdateFlags

kernel = pytest.mark.usefixtures("kernel")


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def u64(value: int) -> bytes:
    return struct.pack("<Q", value)


@pytest.fixture
def hash_map(kernel: None) -> KernelMap:
    with KernelMap.create(MapSpec("flows", MapType.HASH, 4, 8, 4)) as live:
        yield live


@pytest.fixture
def array_map(kernel: None) -> KernelMap:
    with KernelMap.create(MapSpec("counters", MapType.ARRAY, 4, 8, 4)) as live:
        yield live


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("0\n") == 1
    assert parse_cpu_list("0-3,8-11") == 8
    with pytest.raises(ErrnoError):
        parse_cpu_list("zero")
    with pytest.raises(ErrnoError):
        parse_cpu_list("")


def test_hash_update_lookup_delete(hash_map: KernelMap) -> None:
    hash_map.update(u32(1), u64(10))
    hash_map.update(u32(2), u64(20))
    assert hash_map.lookup(u32(1)) == u64(10)
    hash_map.update(u32(1), u64(11), UpdateFlags.EXIST)
    assert hash_map.get(u32(1)) == u64(11)
    hash_map.delete(u32(1))
    assert hash_map.get(u32(1)) is None
    assert sorted(hash_map.keys()) == [u32(2)]


def test_hash_errno_edge_cases(hash_map: KernelMap) -> None:
    with pytest.raises(BpfSyscallError) as info:
        hash_map.lookup(u32(9))
    assert info.value.name == "ENOENT" and "map 'flows'" in str(info.value)
    assert "BPF_MAP_LOOKUP_ELEM" in str(info.value)
    with pytest.raises(BpfSyscallError, match="^ENOENT"):
        hash_map.delete(u32(9))
    with pytest.raises(BpfSyscallError, match="^ENOENT"):
        hash_map.update(u32(9), u64(0), UpdateFlags.EXIST)
    hash_map.update(u32(9), u64(0), UpdateFlags.NOEXIST)
    with pytest.raises(BpfSyscallError, match="^EEXIST"):
        hash_map.update(u32(9), u64(0), UpdateFlags.NOEXIST)
    for key in range(3):
        hash_map.update(u32(key), u64(key))
    with pytest.raises(BpfSyscallError) as info:
        hash_map.update(u32(100), u64(0))
    assert info.value.name == "E2BIG" and "max_entries" in str(info.value)
    with pytest.raises(BpfSyscallError, match="^EINVAL"):
        hash_map.update(u32(1), u64(0), 99)  # unknown flags


def test_wrong_sizes_are_refused_before_the_kernel_reads_memory(hash_map: KernelMap) -> None:
    with pytest.raises(ErrnoError) as info:
        hash_map.lookup(b"\x01")
    assert info.value.errno == errno.EINVAL and "key_size 4" in str(info.value)
    with pytest.raises(ErrnoError, match="value_size 8"):
        hash_map.update(u32(1), b"short")
    assert not isinstance(info.value, BpfSyscallError)


def test_array_semantics(array_map: KernelMap) -> None:
    assert array_map.lookup(u32(3)) == bytes(8)  # arrays are preallocated and zeroed
    array_map.update(u32(3), u64(7))
    with pytest.raises(BpfSyscallError) as info:
        array_map.delete(u32(3))
    assert info.value.name == "EINVAL" and "array" in str(info.value)
    with pytest.raises(BpfSyscallError, match="^E2BIG"):
        array_map.update(u32(4), u64(1))
    with pytest.raises(BpfSyscallError, match="^ENOENT"):
        array_map.lookup(u32(4))
    with pytest.raises(BpfSyscallError, match="^EEXIST"):
        array_map.update(u32(0), u64(1), UpdateFlags.NOEXIST)
    assert list(array_map.keys()) == [u32(i) for i in range(4)]
    assert array_map.next_key(u32(3)) is None
    assert array_map.items() == [(u32(i), u64(7 if i == 3 else 0)) for i in range(4)]


def test_batches_match_single_element_reads(kernel: None) -> None:
    with KernelMap.create(MapSpec("big", MapType.HASH, 4, 8, 1000)) as live:
        expected = {u32(k): u64(k * 3) for k in range(700)}
        assert live.update_batch(expected.items()) == 700
        assert dict(live.lookup_batch(chunk=64)) == expected
        assert len(live.lookup_batch(chunk=1)) == 700  # buckets larger than a chunk
        assert dict(live.items()) == expected
        assert {k: live.lookup(k) for k in live.keys()} == expected
        assert live.update_batch([]) == 0
        with pytest.raises(ErrnoError, match="only BPF_ANY or BPF_F_LOCK"):
            live.update_batch([(u32(1), u64(0))], UpdateFlags.EXIST)
        with pytest.raises(BpfSyscallError) as info:
            live.update_batch((u32(k), u64(0)) for k in range(1000, 1400))
        assert info.value.name == "E2BIG" and "300 of 400 elements were written" in str(info.value)


def test_items_fall_back_where_batches_are_missing(kernel: None) -> None:
    """Devmaps have no batch operations; items() walks the keys instead."""
    with KernelMap.create(MapSpec("ports", MapType.DEVMAP_HASH, 4, 4, 4)) as live:
        with pytest.raises(BpfSyscallError) as info:
            live.lookup_batch()
        assert info.value.name == "ENOTSUPP" and "DEVMAP_HASH" in str(info.value)
        live.update(u32(7), u32(1))  # ifindex 1, the loopback device
        assert live.items() == [(u32(7), u32(1))]


def test_lpm_trie_keys(kernel: None) -> None:
    spec = MapSpec("prefixes", MapType.LPM_TRIE, 8, 4, 16, MapFlags.NO_PREALLOC)
    with KernelMap.create(spec) as live:
        net = u32(24) + bytes([10, 0, 0, 0])
        live.update(net, u32(1))
        assert live.lookup(u32(32) + bytes([10, 0, 0, 9])) == u32(1)  # longest prefix match
        assert live.items() == [(net, u32(1))]


def test_percpu_values(kernel: None) -> None:
    ncpus = possible_cpus()
    with KernelMap.create(MapSpec("pcpu", MapType.PERCPU_ARRAY, 4, 4, 2)) as live:
        assert live.value_buffer_size == 8 * ncpus
        live.update(u32(1), b"abcd")  # one value, written to every CPU
        assert live.lookup_percpu(u32(1)) == (b"abcd",) * ncpus
        per_cpu = b"".join(u32(cpu) + bytes(4) for cpu in range(ncpus))
        live.update(u32(0), per_cpu)
        assert live.lookup(u32(0)) == per_cpu
        assert live.lookup_percpu(u32(0)) == tuple(u32(cpu) for cpu in range(ncpus))
        assert dict(live.items())[u32(1)] == (b"abcd" + bytes(4)) * ncpus
        with pytest.raises(ErrnoError, match="one per CPU"):
            live.update(u32(0), b"abcdef")


def test_contents_and_freeze_from_the_spec(kernel: None) -> None:
    spec = MapSpec("cfg.rodata", MapType.ARRAY, 4, 8, 1, MapFlags.RDONLY_PROG,
                   contents=((u32(0), u64(0x1234)),), frozen=True)
    with KernelMap.create(spec) as live:
        assert live.lookup(u32(0)) == u64(0x1234)
        with pytest.raises(BpfSyscallError) as info:
            live.update(u32(0), u64(1))
        assert info.value.name == "EPERM" and "frozen" in str(info.value)
        with pytest.raises(BpfSyscallError, match="^EPERM.*already frozen"):
            live.freeze()


def test_map_in_map(kernel: None) -> None:
    inner_spec = MapSpec("inner", MapType.ARRAY, 4, 4, 1)
    outer_spec = MapSpec("outer", MapType.ARRAY_OF_MAPS, 4, 4, 2, inner=inner_spec)
    with KernelMap.create(outer_spec) as outer, KernelMap.create(inner_spec) as inner:
        outer.update(u32(1), u32(inner.fd))
        assert outer.lookup(u32(1)) == u32(inner.info().id)  # lookups give ids, not fds
        with KernelMap.create(MapSpec("wrong", MapType.HASH, 4, 4, 1)) as wrong:
            with pytest.raises(BpfSyscallError, match="^EINVAL"):
                outer.update(u32(0), u32(wrong.fd))
    with pytest.raises(ErrnoError, match="needs an inner map"):
        KernelMap.create(MapSpec("lonely", MapType.HASH_OF_MAPS, 4, 4, 1))


def test_queue_maps_have_no_keys(kernel: None) -> None:
    with KernelMap.create(MapSpec("q", MapType.QUEUE, 0, 4, 4)) as queue:
        queue.update(b"", u32(5))
        queue.update(b"", u32(6))
        assert queue.lookup(b"") == u32(5)  # peek at the head


def test_create_errors(kernel: None) -> None:
    with pytest.raises(BpfSyscallError) as info:
        KernelMap.create(MapSpec("nokey", MapType.HASH, 0, 4, 1))
    assert info.value.name == "EINVAL"
    assert "BPF_MAP_CREATE of map 'nokey' (HASH, key_size 0" in str(info.value)
    with pytest.raises(BpfSyscallError, match="^EINVAL"):
        KernelMap.create(MapSpec("empty", MapType.ARRAY, 4, 4, 0))
    with pytest.raises(BpfSyscallError, match="^E2BIG"):
        KernelMap.create(MapSpec("huge", MapType.HASH, 4, 1 << 30, 1))
    with pytest.raises(ErrnoError, match="32-bit field"):
        KernelMap.create(MapSpec("wide", MapType.HASH, 4, 4, 1 << 32))
    with pytest.raises(BpfSyscallError, match="^E2BIG"):  # contents overflow: nothing left
        KernelMap.create(MapSpec("tiny", MapType.HASH, 4, 4, 1,
                                 contents=((u32(1), u32(1)), (u32(2), u32(2)))))


def test_info_and_names(kernel: None) -> None:
    with KernelMap.create(MapSpec("a-very-long-map-name", MapType.LRU_HASH, 8, 16, 32)) as live:
        info = live.info()
        assert (info.type, info.key_size, info.value_size, info.max_entries) == (9, 8, 16, 32)
        assert info.name == "a_very_long_map" and info.id > 0


def test_handles_close_once_and_then_refuse(kernel: None) -> None:
    live = KernelMap.create(MapSpec("h", MapType.ARRAY, 4, 4, 1))
    with live:
        assert not live.closed
    assert live.closed and "closed" in repr(live)
    live.close()
    with pytest.raises(ErrnoError) as info:
        live.lookup(u32(0))
    assert info.value.name == "EBADF" and "map 'h' is closed" in str(info.value)


_OPS = st.lists(st.tuples(st.sampled_from(["update", "delete", "lookup"]),
                          st.integers(0, 7), st.integers(0, 2**64 - 1),
                          st.sampled_from(list(UpdateFlags)[:3])), max_size=40)


@kernel
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_a_hash_map_behaves_like_a_bounded_dict(ops: list[tuple[str, int, int, UpdateFlags]]) -> None:
    """The kernel's answers (values and errnos) against a dict model of BPF_MAP_TYPE_HASH."""
    model: dict[bytes, bytes] = {}
    with KernelMap.create(MapSpec("model", MapType.HASH, 4, 8, 5)) as live:
        for op, k, v, flags in ops:
            key, value = u32(k), u64(v)
            if op == "update":
                if flags == UpdateFlags.NOEXIST and key in model:
                    expected = "EEXIST"
                elif flags == UpdateFlags.EXIST and key not in model:
                    expected = "ENOENT"
                elif key not in model and len(model) == 5:
                    expected = "E2BIG"
                else:
                    expected = None
                    model[key] = value
                outcome = _errno_of(lambda: live.update(key, value, flags))
            elif op == "delete":
                expected = None if model.pop(key, None) is not None else "ENOENT"
                outcome = _errno_of(lambda: live.delete(key))
            else:
                assert live.get(key) == model.get(key)
                continue
            assert outcome == expected
        assert dict(live.items()) == model


def _errno_of(action) -> str | None:  # type: ignore[no-untyped-def]
    try:
        action()
    except BpfSyscallError as exc:
        return exc.name
    return None
