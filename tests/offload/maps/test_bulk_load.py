"""The hash family's bulk load: a chunk of new keys goes into the slabs and the key index in
one pass; whatever it does must be what the same updates one at a time do."""

from __future__ import annotations

import errno
import random

import pytest

from offload.errors import ErrnoError
from offload.maps import create_map
from offload.maps.base import BatchError, Chunk, Map
from offload.maps.spec import SPIN_LOCK_SIZE, MapSpec
from offload.uapi import MapFlags, MapType

HASHES = [MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH]
NCPUS = 2


def k(n: int) -> bytes:
    return n.to_bytes(8, "little")


def make(mtype: MapType, max_entries: int, flags: int = 0) -> Map:
    return create_map(MapSpec("m", mtype, 8, 12, max_entries, flags), ncpus=NCPUS)


def uapi_value(m: Map, n: int) -> bytes:
    """A value in uAPI form: per-CPU copies padded to 8 bytes, each copy distinct."""
    copies = NCPUS if m.values.percpu else 1
    stride = m.uapi_value_size // copies
    return b"".join((n * 10 + cpu).to_bytes(12, "little").ljust(stride, b"\0")
                    for cpu in range(copies))


def batch(m: Map, keys: list[int]) -> tuple[bytes, bytes]:
    return b"".join(map(k, keys)), b"".join(uapi_value(m, n) for n in keys)


def one_by_one(m: Map, keys: list[int]) -> tuple[int, int]:
    """The same batch as single BPF_ANY updates: (applied, errno of the first refusal)."""
    for done, n in enumerate(keys):
        try:
            m.update(k(n), uapi_value(m, n))
        except ErrnoError as exc:
            return done, exc.errno
    return len(keys), 0


def bulk(m: Map, keys: list[int]) -> tuple[int, int]:
    try:
        return m.update_batch_columns(len(keys), *batch(m, keys)), 0
    except BatchError as exc:
        return exc.count, exc.errno


def state(m: Map) -> tuple:
    """Everything a reader can see, checked for agreement between the slot walk, the key
    index and the chunks."""
    items = list(m.items())
    assert len(items) == len(m)
    assert all(m.lookup(key) == value for key, value in items)  # index agrees with slots
    chunks = list(m.export_chunks(5))
    exported = b"".join(c.keys for c in chunks)
    assert sorted(exported[i:i + 8] for i in range(0, len(exported), 8)) == \
        sorted(key for key, _ in items)
    order = m.lru_order() if hasattr(m, "lru_order") else None
    return sorted(items), order


@pytest.mark.parametrize("mtype", HASHES)
@pytest.mark.parametrize("seed", range(40))
def test_a_batch_does_what_its_updates_one_at_a_time_do(mtype, seed):
    rng = random.Random(seed)
    max_entries = rng.randint(4, 24)
    fast, slow = make(mtype, max_entries), make(mtype, max_entries)
    for _ in range(12):
        roll = rng.random()
        if roll < 0.6:  # fresh keys, repeats, keys present, more than fit: all mixed
            keys = [rng.randrange(40) for _ in range(rng.randint(0, 2 * max_entries))]
            if rng.random() < 0.5:
                keys = rng.sample(range(1000, 2000), rng.randint(1, max_entries))
            assert bulk(fast, keys) == one_by_one(slow, keys)
        elif roll < 0.85:
            for key, _ in list(slow.items())[: rng.randint(1, 3)]:
                fast.delete(key)
                slow.delete(key)
        else:
            cpu = rng.randrange(NCPUS)
            for key, _ in list(slow.items())[:2]:  # a program's use moves LRU recency
                assert (fast.value_ref(key, cpu) is None) == (slow.value_ref(key, cpu) is None)
        assert state(fast) == state(slow)


@pytest.mark.parametrize("mtype", HASHES)
def test_new_keys_take_the_bulk_path(mtype, monkeypatch):
    m = make(mtype, 100)
    m.update(k(1), uapi_value(m, 1))

    def refuse(*args: object) -> None:
        raise AssertionError("a chunk of new keys went element by element")

    monkeypatch.setattr(m, "_update", refuse)
    keys = list(range(10, 60))
    assert m.update_batch_columns(len(keys), *batch(m, keys)) == 50
    assert len(m) == 51
    for n in [1, *keys]:
        assert m.lookup(k(n)) == uapi_value(m, n)
    assert [m.get_next_key(k(n)) for n in (1, 10, 58)] == [k(10), k(11), k(59)]


@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.PERCPU_HASH])
def test_a_full_map_refuses_the_rest_and_keeps_what_went_in(mtype):
    m = make(mtype, 5)
    with pytest.raises(BatchError) as refused:
        m.update_batch_columns(7, *batch(m, list(range(7))))
    assert (refused.value.errno, refused.value.count) == (errno.E2BIG, 5)
    assert sorted(key for key, _ in m.items()) == [k(n) for n in range(5)]
    with pytest.raises(ErrnoError) as device_side:  # a restore's import: the errno alone
        m.import_chunk(Chunk(1, k(9), bytes(m.values.slot_size)))
    assert device_side.value.errno == errno.E2BIG
    # a full map still takes replacements, in bulk as one at a time
    assert m.update_batch_columns(2, *batch(m, [3, 3])) == 2


def test_a_full_lru_map_evicts_the_oldest_instead():
    m = make(MapType.LRU_HASH, 4)
    assert m.update_batch_columns(3, *batch(m, [1, 2, 3])) == 3
    m.value_ref(k(1))  # a program's use: k(1) is now the most recent
    assert m.update_batch_columns(3, *batch(m, [4, 5, 6])) == 3
    assert m.lru_order() == [k(1), k(4), k(5), k(6)]


def test_no_common_lru_bulk_loads_keep_each_cpus_list():
    m = make(MapType.LRU_HASH, 4, MapFlags.NO_COMMON_LRU)  # two lists of two
    assert m.update_batch_columns(2, *batch(m, [1, 2])) == 2  # the uAPI's CPU: list 0
    m.program_update(k(7), uapi_value(m, 7)[:12], cpu=1)
    m.program_update(k(8), uapi_value(m, 8)[:12], cpu=1)
    m.program_update(k(9), uapi_value(m, 9)[:12], cpu=1)  # evicts k(7) from CPU 1's list
    assert m.lru_order(0) == [k(1), k(2)] and m.lru_order(1) == [k(8), k(9)]
    m.value_ref(k(1), 0)
    m.update(k(3), uapi_value(m, 3))  # evicts k(2), the oldest of list 0
    assert m.lru_order(0) == [k(1), k(3)]
    other = make(MapType.LRU_HASH, 4, MapFlags.NO_COMMON_LRU)
    assert other.update_batch_columns(3, *batch(other, [1, 2, 3])) == 3  # one list's worth
    assert other.lru_order(0) == [k(2), k(3)] and len(other) == 2


@pytest.mark.parametrize("mtype", HASHES)
def test_a_bulk_load_marks_its_slots_dirty(mtype):
    m = make(mtype, 100)
    m.update_batch_columns(3, *batch(m, [1, 2, 3]))
    m.track_dirty(True)
    m.update_batch_columns(40, *batch(m, list(range(10, 50))))
    chunk, gone = m.take_dirty_chunk()
    assert sorted(chunk.keys[i:i + 8] for i in range(0, len(chunk.keys), 8)) == \
        [k(n) for n in range(10, 50)]
    assert gone == b"" and m.take_dirty_chunk()[0].count == 0


def test_write_permissions_guard_batches_but_not_a_restores_import():
    m = make(MapType.HASH, 10, MapFlags.RDONLY)
    with pytest.raises(ErrnoError) as refused:
        m.update_batch_columns(2, *batch(m, [1, 2]))
    assert refused.value.errno == errno.EPERM and len(m) == 0
    assert m.import_chunk(Chunk(2, k(1) + k(2), bytes(2 * m.values.slot_size))) == 2
    frozen = make(MapType.HASH, 10)
    frozen.freeze()
    with pytest.raises(ErrnoError):
        frozen.update_batch_columns(1, *batch(frozen, [1]))
    assert frozen.import_chunk(Chunk(2, k(1) + k(2), bytes(2 * m.values.slot_size))) == 2


def test_elem_flags_and_the_lock_word_in_bulk():
    plain = make(MapType.HASH, 10)
    with pytest.raises(ErrnoError) as refused:
        plain.update_batch_columns(1, *batch(plain, [1]), elem_flags=4)  # BPF_F_LOCK
    assert refused.value.errno == errno.EINVAL and len(plain) == 0
    locked = create_map(MapSpec("l", MapType.HASH, 8, 12, 10, spin_lock_off=4), ncpus=NCPUS)
    values = bytes(range(1, 13)) * 3
    assert locked.update_batch_columns(3, k(1) + k(2) + k(3), values, elem_flags=4) == 3
    unlocked = bytes(range(1, 5)) + bytes(SPIN_LOCK_SIZE) + bytes(range(9, 13))
    assert [locked.lookup(k(n)) for n in (1, 2, 3)] == [unlocked] * 3
