"""LRU_HASH and LRU_PERCPU_HASH: a full map evicts its least recently used element."""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offload.maps import MapSpec, create_map
from offload.uapi import MapFlags, MapType, UpdateFlags

from .test_hash import code, k


def lru(max_entries=3, t=MapType.LRU_HASH, ncpus=1, flags=0):
    return create_map(MapSpec("l", t, 4, 4, max_entries, flags), ncpus=ncpus)


def test_full_map_evicts_least_recently_used():
    m = lru()
    for i in range(3):
        m.update(k(i), k(i))
    m.lookup(k(0))  # a uAPI lookup does not count as use
    m.update(k(3), k(3))
    assert code(m.lookup, k(0)) != 0 and len(m) == 3
    m.value_ref(k(1))  # a program's lookup does
    m.update(k(4), k(4), UpdateFlags.NOEXIST)  # NOEXIST on a full LRU map evicts too
    assert sorted(key for key, _ in m.items()) == [k(1), k(3), k(4)]
    m.update(k(3), k(33))  # an update makes the element the most recent
    m.program_update(k(5), k(5))
    assert m.lru_order() == [k(4), k(3), k(5)]  # k(1) was the oldest


def test_eviction_is_dirty():
    m = lru(max_entries=1)
    m.update(k(1), k(1))
    m.track_dirty(True)
    m.update(k(2), k(2))
    assert m.take_dirty() == {k(1), k(2)}


def test_no_common_lru_evicts_per_cpu():
    m = lru(max_entries=4, ncpus=2, flags=MapFlags.NO_COMMON_LRU)
    m.program_update(k(1), k(1), cpu=0)
    m.program_update(k(2), k(2), cpu=0)
    m.program_update(k(3), k(3), cpu=1)
    m.program_update(k(4), k(4), cpu=0)  # CPU 0's list (2 elements) is full: evict k(1)
    assert sorted(key for key, _ in m.items()) == [k(2), k(3), k(4)]
    assert m.lru_order(1) == [k(3)]


def test_lru_percpu_values():
    m = lru(t=MapType.LRU_PERCPU_HASH, ncpus=2)
    m.program_update(k(1), k(7), cpu=1)
    assert m.lookup(k(1)) == bytes(8) + k(7) + bytes(4)


class LruMachine(RuleBasedStateMachine):
    """Against an exact LRU model: an OrderedDict, oldest first."""

    def __init__(self) -> None:
        super().__init__()
        self.m = lru(max_entries=3)
        self.model: OrderedDict[bytes, bytes] = OrderedDict()

    keys = st.integers(0, 6).map(k)

    def _insert(self, key, value):
        if key in self.model:
            self.model.move_to_end(key)
        elif len(self.model) >= 3:
            self.model.popitem(last=False)
        self.model[key] = value

    @rule(key=keys, value=st.binary(min_size=4, max_size=4), flags=st.sampled_from([0, 1, 2]))
    def update(self, key, value, flags):
        if flags == UpdateFlags.NOEXIST and key in self.model:
            assert code(self.m.update, key, value, flags) != 0
        elif flags == UpdateFlags.EXIST and key not in self.model:
            assert code(self.m.update, key, value, flags) != 0
        else:
            self.m.update(key, value, flags)
            self._insert(key, value)

    @rule(key=keys)
    def program_lookup(self, key):
        ref = self.m.value_ref(key)
        assert (ref is None) == (key not in self.model)
        if ref is not None:
            self.model.move_to_end(key)

    @rule(key=keys)
    def delete(self, key):
        assert (code(self.m.delete, key) == 0) == (self.model.pop(key, None) is not None)

    @invariant()
    def same(self):
        assert self.m.lru_order() == list(self.model)
        assert dict(self.m.items()) == dict(self.model)


TestLruMachine = LruMachine.TestCase
TestLruMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_export_gives_recency_order_and_an_import_rebuilds_it():
    """A checkpoint's chunks run least recent first, so a restore that inserts them in order
    leaves a map that evicts the same keys next (slot order would not: k(0) holds slot 0)."""
    m = lru(max_entries=6)
    for i in range(6):
        m.update(k(i), k(i))
    m.value_ref(k(0))  # used by a program: now the most recent
    m.update(k(2), k(22))
    m.delete(k(4))
    m.update(k(6), k(6))  # reuses k(4)'s slot, yet is the most recent
    order = m.lru_order()
    assert order == [k(1), k(3), k(5), k(0), k(2), k(6)]
    chunks = list(m.export_chunks(limit=4))
    assert [c.count for c in chunks] == [4, 2]
    exported = b"".join(c.keys for c in chunks)
    assert [exported[i:i + 4] for i in range(0, len(exported), 4)] == order
    copy = lru(max_entries=6)
    for chunk in chunks:
        copy.import_chunk(chunk)
    assert copy.lru_order() == order
    assert dict(copy.items()) == dict(m.items())
    for live in (m, copy):
        live.update(k(7), k(7))
        live.update(k(8), k(8))
    assert copy.lru_order() == m.lru_order() == [k(5), k(0), k(2), k(6), k(7), k(8)]


def test_a_walk_skips_keys_deleted_behind_it():
    m = lru(max_entries=8)
    for i in range(8):
        m.update(k(i), k(i))
    walk = m.export_chunks(limit=2)
    first = next(walk)
    m.delete(k(5))
    rest = list(walk)
    keys = first.keys + b"".join(c.keys for c in rest)
    assert [keys[i:i + 4] for i in range(0, len(keys), 4)] == \
        [k(0), k(1), k(2), k(3), k(4), k(6), k(7)]
