"""LPM_TRIE: longest-prefix match, exact-prefix update/delete, post-order get_next_key."""

from __future__ import annotations

import errno
import functools
import struct

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offload.maps import MapSpec, create_map
from offload.uapi import MapFlags, MapType, UpdateFlags

from .test_hash import code


def K(prefixlen: int, data) -> bytes:  # noqa: N802 - mirrors struct bpf_lpm_trie_key
    return struct.pack("<I", prefixlen) + bytes(data)


def V(i: int) -> bytes:  # noqa: N802
    return struct.pack("<I", i)


def trie(max_entries=10, ks=8):
    return create_map(MapSpec("t", MapType.LPM_TRIE, ks, 4, max_entries, MapFlags.NO_PREALLOC))


def filled():
    t = trie()
    t.update(K(8, [10, 1, 2, 3]), V(8))
    t.update(K(16, [10, 1, 0, 0]), V(16))
    t.update(K(24, [10, 1, 2, 0]), V(24))
    t.update(K(16, [10, 128, 0, 0]), V(99))
    return t


def test_longest_prefix_lookup():
    t = filled()
    assert t.lookup(K(32, [10, 1, 2, 9])) == V(24)
    assert t.lookup(K(20, [10, 1, 2, 9])) == V(16)  # the key's prefixlen bounds the match
    assert t.lookup(K(8, [10, 200, 0, 0])) == V(8)
    assert code(t.lookup, K(32, [11, 1, 2, 9])) == errno.ENOENT
    assert code(t.lookup, K(40, [10, 1, 2, 9])) == errno.ENOENT


def test_post_order_walk_matches_the_kernel():
    # The order Linux 6.18 returns for these four prefixes.
    t = filled()
    keys = [key for key, _ in t.items()]
    assert keys == [K(24, [10, 1, 2, 0]), K(16, [10, 1, 0, 0]), K(16, [10, 128, 0, 0]),
                    K(8, [10, 1, 2, 3])]
    assert t.get_next_key(K(12, [10, 1, 2, 9])) == keys[0]  # not stored: start over
    assert t.get_next_key(K(40, [10, 1, 2, 9])) == keys[0]
    assert t.get_next_key(K(16, [10, 1, 77, 77])) == keys[2]  # host bits do not matter
    assert code(t.get_next_key, keys[-1]) == errno.ENOENT


def test_exact_update_and_delete():
    t = filled()
    assert code(t.update, K(33, [10, 0, 0, 0]), V(1)) == errno.EINVAL
    assert code(t.update, K(8, [10, 9, 9, 9]), V(1), UpdateFlags.NOEXIST) == errno.EEXIST
    assert code(t.update, K(12, [10, 9, 9, 9]), V(1), UpdateFlags.EXIST) == errno.ENOENT
    assert code(t.update, K(8, [10, 9, 9, 9]), V(1), 3) == errno.EINVAL
    t.update(K(8, [10, 7, 7, 7]), V(80))  # replaces 10/8 and remembers the new key bytes
    assert [key for key, _ in t.items()][-1] == K(8, [10, 7, 7, 7])
    assert t.export_entry(K(8, [10, 0, 0, 0])) == (K(8, [10, 7, 7, 7]), V(80))
    assert code(t.delete, K(40, [10, 1, 2, 9])) == errno.EINVAL
    assert code(t.delete, K(12, [10, 1, 2, 9])) == errno.ENOENT
    t.delete(K(24, [10, 1, 2, 255]))
    assert t.lookup(K(32, [10, 1, 2, 9])) == V(16)


def test_full_trie_is_enospc_but_replace_works():
    t = trie(max_entries=2, ks=5)
    t.update(K(1, [0]), V(1))
    t.update(K(2, [0]), V(2))
    assert code(t.update, K(3, [0]), V(3)) == errno.ENOSPC
    assert code(t.update, K(3, [0]), V(3), UpdateFlags.EXIST) == errno.ENOENT
    t.update(K(2, [0]), V(22))
    assert t.lookup(K(8, [0])) == V(22)


def test_zero_length_prefix_matches_everything():
    t = trie()
    t.update(K(0, [1, 2, 3, 4]), V(0))
    assert t.lookup(K(32, [255, 255, 255, 255])) == V(0)
    assert t.lookup(K(0, [9, 9, 9, 9])) == V(0)


def test_value_ref_points_at_the_matched_prefix():
    t = filled()
    ref = t.value_ref(K(32, [10, 1, 2, 9]))
    ref[:] = V(1234)
    assert t.lookup(K(24, [10, 1, 2, 0])) == V(1234)
    assert t.value_ref(K(32, [11, 0, 0, 0])) is None


def bits(key: bytes) -> str:
    prefixlen = int.from_bytes(key[:4], "little")
    return "".join(f"{b:08b}" for b in key[4:])[:prefixlen]


def post_order(a: str, b: str) -> int:
    """Children before parents, the 0 branch before the 1 branch."""
    if a == b:
        return 0
    if b.startswith(a):
        return 1
    if a.startswith(b):
        return -1
    for x, y in zip(a, b):
        if x != y:
            return -1 if x < y else 1
    raise AssertionError


class LpmMachine(RuleBasedStateMachine):
    """Against brute force: a dict of prefixes, a linear longest match, a sorted post order."""

    def __init__(self) -> None:
        super().__init__()
        self.t = trie(max_entries=6, ks=6)
        self.model: dict[str, tuple[bytes, bytes]] = {}

    keys = st.builds(K, st.integers(0, 17),
                     st.lists(st.sampled_from([0x00, 0x80, 0xC0, 0xFF, 0x0F, 0x40]), min_size=2,
                              max_size=2))

    @rule(key=keys, value=st.integers(0, 1000), flags=st.sampled_from([0, 1, 2]))
    def update(self, key, value, flags):
        prefix = bits(key)
        if int.from_bytes(key[:4], "little") > 16:
            expected = errno.EINVAL
        elif flags == UpdateFlags.NOEXIST and prefix in self.model:
            expected = errno.EEXIST
        elif flags == UpdateFlags.EXIST and prefix not in self.model:
            expected = errno.ENOENT
        elif prefix not in self.model and len(self.model) >= 6:
            expected = errno.ENOSPC
        else:
            expected = 0
            self.model[prefix] = (key, V(value))
        assert code(self.t.update, key, V(value), flags) == expected

    @rule(key=keys)
    def delete(self, key):
        if int.from_bytes(key[:4], "little") > 16:
            assert code(self.t.delete, key) == errno.EINVAL
        else:
            found = self.model.pop(bits(key), None)
            assert code(self.t.delete, key) == (0 if found else errno.ENOENT)

    @rule(key=keys)
    def lookup(self, key):
        wanted = bits(key)
        matches = [p for p in self.model if wanted.startswith(p)]
        if int.from_bytes(key[:4], "little") > 16 or not matches:
            assert code(self.t.lookup, key) == errno.ENOENT
        else:
            assert self.t.lookup(key) == self.model[max(matches, key=len)][1]

    @rule(key=keys)
    def next_key_from_any_key(self, key):
        order = sorted(self.model, key=functools.cmp_to_key(post_order))
        prefix = bits(key)
        if int.from_bytes(key[:4], "little") > 16 or prefix not in self.model:
            expected = order[0] if order else None
        else:
            index = order.index(prefix) + 1
            expected = order[index] if index < len(order) else None
        if expected is None:
            assert code(self.t.get_next_key, key) == errno.ENOENT
        else:
            assert self.t.get_next_key(key) == self.model[expected][0]

    @invariant()
    def walk_is_post_order_and_complete(self):
        order = sorted(self.model, key=functools.cmp_to_key(post_order))
        seen, key = [], None
        while True:
            try:
                key = self.t.get_next_key(key)
            except Exception as exc:  # noqa: BLE001 - must be ENOENT
                assert getattr(exc, "errno", None) == errno.ENOENT
                break
            seen.append(key)
        assert seen == [self.model[p][0] for p in order]
        assert list(self.t.items()) == [self.model[p] for p in order]


TestLpmMachine = LpmMachine.TestCase
TestLpmMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
