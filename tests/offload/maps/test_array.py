"""ARRAY and PERCPU_ARRAY: fixed, zero-initialised elements indexed by a u32."""

from __future__ import annotations

import errno

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offload.maps import MapSpec, create_map, join_percpu
from offload.maps.base import ENOTSUPP
from offload.uapi import MapType, UpdateFlags

from .test_hash import code, k


def amap(max_entries=4, vs=4, t=MapType.ARRAY, ncpus=1, flags=0):
    return create_map(MapSpec("a", t, 4, vs, max_entries, flags), ncpus=ncpus)


def test_kernel_array_semantics():
    m = amap()
    assert m.lookup(k(3)) == bytes(4)  # elements exist from the start, zeroed
    assert code(m.lookup, k(4)) == errno.ENOENT
    assert code(m.update, k(4), k(1)) == errno.E2BIG
    assert code(m.update, k(4), k(1), UpdateFlags.NOEXIST) == errno.E2BIG  # range first
    assert code(m.update, k(1), k(1), UpdateFlags.NOEXIST) == errno.EEXIST
    assert code(m.update, k(1), k(7), UpdateFlags.EXIST) == 0 and m.lookup(k(1)) == k(7)
    assert code(m.update, k(1), k(1), 3) == errno.EINVAL
    assert code(m.delete, k(1)) == errno.EINVAL and code(m.delete, k(9)) == errno.EINVAL
    assert len(m) == 4


def test_array_get_next_key():
    m = amap()
    assert m.get_next_key(None) == k(0)
    assert m.get_next_key(k(9)) == k(0)
    assert m.get_next_key(k(2)) == k(3)
    assert code(m.get_next_key, k(3)) == errno.ENOENT
    assert [key for key, _ in m.items()] == [k(i) for i in range(4)]


def test_generic_lookup_batch_uses_key_cursor():
    m = amap()
    for i in range(4):
        m.update(k(i), k(100 + i))
    first = m.lookup_batch(None, 3)
    assert first.entries == tuple((k(i), k(100 + i)) for i in range(3))
    assert first.cursor == k(2) and not first.done
    rest = m.lookup_batch(first.cursor, 3)
    assert rest.entries == ((k(3), k(103)),) and rest.done and rest.cursor == k(3)
    end = m.lookup_batch(k(3), 3)
    assert end.entries == () and end.done and end.cursor is None
    assert m.lookup_batch(k(9), 2).entries[0][0] == k(0)  # a missing cursor restarts
    assert code(m.update_batch, [(k(0), k(5)), (k(1), k(5)), (k(7), k(5))]) == errno.E2BIG
    assert m.lookup(k(1)) == k(5)
    assert code(m.delete_batch, [k(0)]) == ENOTSUPP


def test_value_ref_materialises_and_stays():
    m = amap(max_entries=1 << 20)  # large arrays cost nothing until touched
    ref = m.value_ref(k(123456))
    assert ref is m.value_ref(k(123456)) and ref == bytes(4)
    ref[:] = b"\x01\x02\x03\x04"
    assert m.lookup(k(123456)) == b"\x01\x02\x03\x04"
    m.update(k(123456), k(9))
    assert ref == k(9)
    assert m.value_ref(k(1 << 20)) is None


def test_percpu_array():
    m = amap(vs=5, t=MapType.PERCPU_ARRAY, ncpus=2)
    assert m.uapi_value_size == 16 and m.lookup(k(0)) == bytes(16)
    m.program_update(k(0), b"abcde", cpu=1)
    assert m.lookup(k(0)) == join_percpu([bytes(5), b"abcde"], 5)
    m.value_ref(k(0), 0)[:] = b"ZZZZZ"
    assert m.lookup(k(0)) == join_percpu([b"ZZZZZ", b"abcde"], 5)
    m.update(k(1), b"1" * 8 + b"2" * 8)
    assert m.lookup(k(1)) == b"11111\0\0\0" + b"22222\0\0\0"  # padding is never stored
    assert code(m.program_update, k(0), bytes(16)) == errno.EINVAL


class ArrayMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.m = amap(max_entries=5, vs=3)
        self.model = {k(i): bytes(3) for i in range(5)}

    keys = st.integers(0, 7).map(k)

    @rule(key=keys, value=st.binary(min_size=3, max_size=3), flags=st.sampled_from([0, 1, 2]))
    def update(self, key, value, flags):
        if key not in self.model:
            assert code(self.m.update, key, value, flags) == errno.E2BIG
        elif flags == UpdateFlags.NOEXIST:
            assert code(self.m.update, key, value, flags) == errno.EEXIST
        else:
            self.m.update(key, value, flags)
            self.model[key] = value

    @rule(key=keys, value=st.binary(min_size=3, max_size=3))
    def program_write(self, key, value):
        ref = self.m.value_ref(key)
        assert (ref is None) == (key not in self.model)
        if ref is not None:
            ref[:] = value
            self.model[key] = value

    @rule(key=keys)
    def lookup(self, key):
        if key in self.model:
            assert self.m.lookup(key) == self.model[key]
        else:
            assert code(self.m.lookup, key) == errno.ENOENT

    @invariant()
    def walk(self):
        seen, key = [], None
        while True:
            try:
                key = self.m.get_next_key(key)
            except Exception as exc:  # noqa: BLE001 - must be ENOENT
                assert getattr(exc, "errno", None) == errno.ENOENT
                break
            seen.append(key)
        assert seen == sorted(self.model, key=lambda b: int.from_bytes(b, "little"))
        assert dict(self.m.export_entries()) == self.model


TestArrayMachine = ArrayMachine.TestCase
TestArrayMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
