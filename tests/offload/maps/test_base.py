"""What every map shares: dirty tracking and streaming export/import for migration."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.errors import ErrnoError
from offload.maps import MapError, MapSpec, create_map, join_percpu, split_percpu
from offload.uapi import MapFlags, MapType

from .test_hash import k
from .test_lpm import K, V

SPECS = [
    MapSpec("h", MapType.HASH, 4, 4, 64),
    MapSpec("p", MapType.PERCPU_HASH, 4, 4, 64),
    MapSpec("l", MapType.LRU_HASH, 4, 4, 64),
    MapSpec("a", MapType.ARRAY, 4, 4, 64),
]


def test_dirty_keys_per_round():
    m = create_map(SPECS[0])
    with pytest.raises(MapError):
        m.take_dirty()
    m.update(k(1), k(1))
    m.track_dirty(True)
    m.update(k(2), k(2))
    m.delete(k(1))
    m.lookup(k(2))  # reads do not dirty
    assert m.take_dirty() == {k(1), k(2)}
    assert m.take_dirty() == set()
    m.value_ref(k(2))  # a program may write through the pointer
    m.program_update(k(3), k(3))
    m.program_delete(k(3))
    assert m.take_dirty() == {k(2), k(3)}
    m.track_dirty(False)
    assert not m.tracking_dirty


def test_read_only_program_refs_do_not_dirty():
    m = create_map(MapSpec("r", MapType.ARRAY, 4, 4, 4, MapFlags.RDONLY_PROG))
    m.track_dirty()
    m.value_ref(k(0))
    assert m.take_dirty() == set()


def test_lpm_dirty_keys_are_stored_keys():
    t = create_map(MapSpec("t", MapType.LPM_TRIE, 8, 4, 8, MapFlags.NO_PREALLOC))
    t.update(K(16, [10, 1, 9, 9]), V(1))
    t.track_dirty()
    t.value_ref(K(32, [10, 1, 2, 3]))
    (key,) = t.take_dirty()
    assert key == K(16, [10, 1, 9, 9])
    t.delete(K(16, [10, 1, 0, 0]))
    assert t.take_dirty() == {K(16, [10, 1, 9, 9])}
    assert t.export_entry(key) is None


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type.name)
def test_export_import_round_trip(spec):
    src = create_map(spec, ncpus=2)
    for i in range(0, 40, 3):
        src.update(k(i), bytes([i]) * src.uapi_value_size)
    dst = create_map(spec, ncpus=2)
    assert dst.import_entries(src.export_entries()) == len(list(src.export_entries()))
    assert dict(dst.items()) == dict(src.items())


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ins", "del"]), st.integers(0, 40)), max_size=60),
       st.integers(1, 30))
def test_export_survives_concurrent_changes(ops, pause):
    """A pre-copy round: entries present throughout are exported once; the rest are dirty."""
    m = create_map(MapSpec("h", MapType.HASH, 4, 4, 48))
    for i in range(0, 40, 2):
        m.update(k(i), k(i))
    stable_candidates = dict(m.items())
    m.track_dirty()
    exported: list[bytes] = []
    stream = m.export_entries()
    for step, (op, i) in enumerate(ops):
        if step == pause:
            exported.extend(key for key, _ in stream)
            break
        nxt = next(stream, None)
        if nxt is not None:
            exported.append(nxt[0])
        try:
            if op == "ins":
                m.update(k(i), k(i + 1))
            else:
                m.delete(k(i))
        except ErrnoError:
            pass
    exported.extend(key for key, _ in stream)
    assert len(exported) == len(set(exported))
    dirty = m.take_dirty()
    for key in stable_candidates:
        assert key in exported or key in dirty
    # Replaying dirty keys onto a copy of what was exported converges to the source.
    dst = create_map(MapSpec("h", MapType.HASH, 4, 4, 48))
    dst.import_entries((key, value) for key, value in stable_candidates.items() if key in exported)
    dst.import_entries([(key, (m.export_entry(key) or (key, None))[1]) for key in sorted(dirty)])
    assert dict(dst.items()) == dict(m.items())


def test_import_ignores_frozen_and_deletes_with_none():
    m = create_map(MapSpec("h", MapType.HASH, 4, 4, 4, frozen=True))
    assert m.import_entries([(k(1), k(1)), (k(2), k(2)), (k(2), None), (k(3), None)]) == 4
    assert dict(m.items()) == {k(1): k(1)}
    with pytest.raises(ErrnoError) as info:
        m.import_entries([(k(1),)])
    assert info.value.errno == errno.EINVAL
    with pytest.raises(ErrnoError):
        m.import_entries([(k(1), b"short")])


def test_percpu_blob_helpers():
    values = [b"abc", b"de\0", b"fgh"]
    blob = join_percpu(values, 3)
    assert len(blob) == 24 and split_percpu(blob, 3, 3) == values


def test_repr_and_len():
    m = create_map(SPECS[0])
    m.update(k(1), k(1))
    assert len(m) == 1 and "entries=1" in repr(m)
