"""HASH and PERCPU_HASH: uAPI semantics, program access, batches, and a model-based check."""

from __future__ import annotations

import errno

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offload.errors import ErrnoError
from offload.maps import BatchError, MapSpec, create_map, join_percpu
from offload.maps.base import ENOTSUPP
from offload.uapi import MapType, UpdateFlags

ANY, NOEXIST, EXIST = UpdateFlags.ANY, UpdateFlags.NOEXIST, UpdateFlags.EXIST


def hmap(max_entries=4, ks=4, vs=4, t=MapType.HASH, ncpus=1, flags=0):
    return create_map(MapSpec("h", t, ks, vs, max_entries, flags), ncpus=ncpus)


def code(fn, *args, **kwargs) -> int:
    try:
        fn(*args, **kwargs)
    except ErrnoError as exc:
        return exc.errno
    return 0


def k(i: int) -> bytes:
    return i.to_bytes(4, "little")


def test_update_flags_and_errnos():
    m = hmap(max_entries=2)
    assert code(m.update, k(1), k(1), EXIST) == errno.ENOENT
    assert code(m.update, k(1), k(1), NOEXIST) == 0
    assert code(m.update, k(1), k(2), NOEXIST) == errno.EEXIST
    assert code(m.update, k(2), k(2)) == 0
    assert code(m.update, k(3), k(3)) == errno.E2BIG  # full
    assert code(m.update, k(3), k(3), EXIST) == errno.ENOENT  # flags checked before room
    assert code(m.update, k(1), k(9)) == 0  # replacing still works when full
    assert m.lookup(k(1)) == k(9)
    assert code(m.update, k(1), k(1), 3) == errno.EINVAL
    assert code(m.update, k(1), k(1), UpdateFlags.F_LOCK) == errno.EINVAL
    assert code(m.delete, k(7)) == errno.ENOENT
    assert code(m.lookup, k(7)) == errno.ENOENT
    m.delete(k(1))
    assert len(m) == 1 and code(m.update, k(3), k(3)) == 0


def test_get_next_key():
    m = hmap()
    assert code(m.get_next_key, None) == errno.ENOENT
    for i in (5, 6, 7):
        m.update(k(i), k(i))
    first = m.get_next_key(None)
    assert m.get_next_key(k(99)) == first  # a missing key restarts the walk
    seen = [first]
    while True:
        try:
            seen.append(m.get_next_key(seen[-1]))
        except ErrnoError as exc:
            assert exc.errno == errno.ENOENT
            break
    assert sorted(seen) == [k(5), k(6), k(7)]


@pytest.mark.parametrize("bad", [b"abc", b"abcde", "abcd", 4, None, memoryview(b"abcdabcd").cast("I")])
def test_hostile_keys_and_values_are_einval(bad):
    m = hmap()
    for call in (lambda: m.update(bad, k(1)), lambda: m.update(k(1), bad), lambda: m.lookup(bad),
                 lambda: m.delete(bad), lambda: m.value_ref(bad), lambda: m.program_update(bad, k(1)),
                 lambda: m.update(k(1), k(1), bad if not isinstance(bad, int) else -1)):
        with pytest.raises(ErrnoError) as info:
            call()
        assert info.value.errno == errno.EINVAL


def test_bytes_like_keys_are_accepted():
    m = hmap()
    m.update(bytearray(k(1)), memoryview(k(2)))
    assert m.lookup(memoryview(k(1))) == k(2)


def test_freeze_and_permissions():
    m = hmap()
    m.update(k(1), k(1))
    m.freeze()
    assert code(m.update, k(1), k(2)) == errno.EPERM
    assert code(m.update, k(1), k(2), 9) == errno.EPERM  # permissions come before flags
    assert code(m.delete, k(1)) == errno.EPERM
    assert code(m.freeze) == errno.EPERM
    assert m.lookup(k(1)) == k(1)
    m.program_update(k(1), k(5))  # programs may still write a frozen map
    assert m.lookup(k(1)) == k(5)
    ro = hmap(flags=8)
    assert code(ro.update, k(1), k(1)) == errno.EPERM and code(ro.freeze) == errno.EPERM
    wo = hmap(flags=16)
    wo.update(k(1), k(1))
    assert code(wo.lookup, k(1)) == errno.EPERM and code(wo.get_next_key, None) == errno.EPERM
    assert code(wo.lookup_batch, None, 4) == errno.EPERM
    rdonly_prog = hmap(flags=1 << 7)
    assert code(rdonly_prog.program_update, k(1), k(1)) == errno.EPERM
    assert not rdonly_prog.program_writable


def test_value_ref_is_the_live_buffer():
    m = hmap()
    assert m.value_ref(k(1)) is None
    m.update(k(1), k(1))
    ref = m.value_ref(k(1))
    assert ref is m.value_ref(k(1))
    ref[:] = b"wxyz"
    assert m.lookup(k(1)) == b"wxyz"
    m.update(k(1), b"abcd")
    assert ref == b"abcd"  # updates write in place: the program's pointer stays valid


def test_percpu_values():
    m = hmap(t=MapType.PERCPU_HASH, vs=12, ncpus=3)
    assert m.uapi_value_size == 48
    assert code(m.update, k(1), bytes(12)) == errno.EINVAL
    m.program_update(k(1), b"A" * 12, cpu=2)  # a new element: other CPUs start zeroed
    assert m.lookup(k(1)) == join_percpu([bytes(12), bytes(12), b"A" * 12], 12)
    blob = b"".join(bytes([c]) * 12 + bytes(4) for c in b"xyz")
    m.update(k(1), blob)
    assert m.lookup(k(1)) == blob
    assert m.value_ref(k(1), cpu=1) == b"y" * 12
    m.program_update(k(1), b"B" * 12, cpu=0)
    assert m.lookup(k(1))[:16] == b"B" * 12 + bytes(4)
    assert code(m.value_ref, k(1), 3) == errno.EINVAL


def test_lookup_batch_with_slot_cursor_survives_deletes():
    m = hmap(max_entries=8)
    for i in range(6):
        m.update(k(i), k(100 + i))
    first = m.lookup_batch(None, 2)
    assert len(first.entries) == 2 and not first.done and len(first.cursor) == 4
    m.delete(first.entries[0][0])
    m.delete(first.entries[1][0])
    rest = m.lookup_batch(first.cursor, 10)
    assert rest.done and len(rest.entries) == 4
    assert {key for key, _ in rest.entries} == {k(i) for i in range(6)} - {e[0] for e in first.entries}
    assert m.lookup_batch(rest.cursor, 10).entries == ()
    assert m.lookup_batch(None, 0).entries == ()
    assert code(m.lookup_batch, None, 4, 1) == errno.EINVAL
    assert code(m.lookup_batch, b"12345", 4) == errno.EINVAL
    assert code(m.lookup_batch, None, -1) == errno.EINVAL


def test_update_and_delete_batch_partial_counts():
    m = hmap(max_entries=4)
    with pytest.raises(BatchError) as info:
        m.update_batch([(k(i), k(i)) for i in range(6)])
    assert info.value.errno == errno.E2BIG and info.value.count == 4
    with pytest.raises(BatchError) as info:
        m.delete_batch([k(0), k(9), k(1)])
    assert info.value.errno == errno.ENOENT and info.value.count == 1
    assert m.delete_batch([k(1), k(2)]) == 2
    with pytest.raises(BatchError) as info:
        m.update_batch([(k(1), k(1)), ("bad",)])
    assert info.value.count == 1 and info.value.errno == errno.EINVAL
    assert code(m.update_batch, b"not a list") == errno.EINVAL
    assert code(m.update_batch, [(k(1), k(1))], 1) == errno.EINVAL
    assert code(m.update_batch, 42) == errno.EINVAL


def test_slot_reuse_keeps_every_element_reachable():
    m = hmap(max_entries=64)
    for i in range(64):
        m.update(k(i), k(i))
    for i in range(0, 64, 2):
        m.delete(k(i))
    for i in range(100, 132):
        m.update(k(i), k(i))
    expected = sorted(k(i) for i in list(range(1, 64, 2)) + list(range(100, 132)))
    assert sorted(key for key, _ in m.items()) == expected


class HashMachine(RuleBasedStateMachine):
    """The map against a dict, including get_next_key and batch walks visiting keys once."""

    map_type = MapType.HASH
    ncpus = 1

    def __init__(self) -> None:
        super().__init__()
        self.m = hmap(max_entries=4, ks=2, vs=3, t=self.map_type, ncpus=self.ncpus)
        self.model: dict[bytes, bytes] = {}
        self.size = self.m.uapi_value_size

    keys = st.integers(0, 7).map(lambda i: i.to_bytes(2, "little"))

    def _value(self, seed: int) -> bytes:
        if self.m.values.percpu:
            return join_percpu([bytes([seed + c]) * 3 for c in range(self.ncpus)], 3)
        return bytes([seed]) * 3

    @rule(key=keys, seed=st.integers(0, 200), flags=st.sampled_from([0, 1, 2, 3]))
    def update(self, key, seed, flags):
        value = self._value(seed)
        if flags > 2:
            expected = errno.EINVAL
        elif key in self.model and flags == NOEXIST:
            expected = errno.EEXIST
        elif key not in self.model and flags == EXIST:
            expected = errno.ENOENT
        elif key not in self.model and len(self.model) >= 4:
            expected = errno.E2BIG
        else:
            expected = 0
            self.model[key] = value
        assert code(self.m.update, key, value, flags) == expected

    @rule(key=keys, seed=st.integers(0, 200), cpu=st.integers(0, 1))
    def program_update(self, key, seed, cpu):
        cpu %= self.ncpus
        value = bytes([seed]) * 3
        if key not in self.model and len(self.model) >= 4:
            assert code(self.m.program_update, key, value, 0, cpu) == errno.E2BIG
            return
        self.m.program_update(key, value, 0, cpu)
        if self.m.values.percpu:
            parts = [bytes(3)] * self.ncpus if key not in self.model else \
                [self.model[key][c * 8:c * 8 + 3] for c in range(self.ncpus)]
            parts[cpu] = value
            self.model[key] = join_percpu(parts, 3)
        else:
            self.model[key] = value

    @rule(key=keys)
    def delete(self, key):
        assert code(self.m.delete, key) == (0 if self.model.pop(key, None) is not None else errno.ENOENT)

    @rule(key=keys)
    def lookup(self, key):
        if key in self.model:
            assert self.m.lookup(key) == self.model[key]
        else:
            assert code(self.m.lookup, key) == errno.ENOENT

    @rule(key=keys, byte=st.integers(0, 255))
    def write_through_ref(self, key, byte):
        ref = self.m.value_ref(key)
        assert (ref is None) == (key not in self.model)
        if ref is not None:
            ref[0] = byte
            self.model[key] = bytes([byte]) + self.model[key][1:]

    @rule(count=st.integers(1, 5))
    def batch_walk(self, count):
        seen, cursor = [], None
        while True:
            answer = self.m.lookup_batch(cursor, count)
            seen.extend(answer.entries)
            cursor = answer.cursor
            if answer.done:
                break
        assert sorted(seen) == sorted(self.model.items())

    @invariant()
    def next_key_visits_every_key_once(self):
        seen, key = [], None
        while True:
            try:
                key = self.m.get_next_key(key)
            except ErrnoError as exc:
                assert exc.errno == errno.ENOENT
                break
            seen.append(key)
        assert sorted(seen) == sorted(self.model) and len(self.m) == len(self.model)
        assert dict(self.m.items()) == self.model


class PercpuHashMachine(HashMachine):
    map_type = MapType.PERCPU_HASH
    ncpus = 2


TestHashMachine = HashMachine.TestCase
TestHashMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestPercpuHashMachine = PercpuHashMachine.TestCase
TestPercpuHashMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_batch_commands_not_offered_are_enotsupp():
    arr = create_map(MapSpec("a", MapType.ARRAY, 4, 4, 4))
    assert code(arr.delete_batch, [k(0)]) == ENOTSUPP
