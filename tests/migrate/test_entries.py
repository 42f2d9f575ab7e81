from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.entries import EntriesError, EntryChunk, MapEntries
from migrate.errors import SnapshotError
from migrate.snapshot import MapLink, MapState
from offload.maps.spec import MapSpec
from offload.uapi import MapType


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(0, 6), st.integers(1, 3), st.integers(0, 40),
       st.integers(1, 7), st.integers(1, 64))
def test_rechunking_keeps_contents(ks, vs, cpus, n, per, nbytes) -> None:
    pairs = [(bytes([i % 256]) * ks,
              tuple(bytes([(i + c) % 256]) * vs for c in range(cpus)) if cpus > 1
              else bytes([i % 256]) * vs) for i in range(n)]
    entries = MapEntries.from_pairs(ks, vs, pairs, cpus)
    assert list(entries) == pairs and len(entries) == n
    size = ks + vs * cpus
    if size > nbytes:
        with pytest.raises(EntriesError, match="chunk limit"):
            list(entries.rechunk(per, nbytes))
        return
    chunks = tuple(entries.rechunk(per, nbytes))
    assert all(c.count <= per and len(c.keys) + len(c.values) <= max(nbytes, size)
               for c in chunks)
    again = MapEntries(ks, vs, cpus, chunks)
    assert again == entries and list(again) == pairs


def test_length_checks() -> None:
    with pytest.raises(EntriesError, match="3 key bytes; 2-byte keys need 4"):
        MapEntries(2, 1, 1, (EntryChunk(2, b"abc", b"xy"),))
    with pytest.raises(EntriesError, match="on 2 CPUs need 8"):
        MapEntries(1, 2, 2, (EntryChunk(2, b"ab", b"xyz"),))
    with pytest.raises(EntriesError, match="one per CPU for 2 CPUs"):
        MapEntries.from_pairs(1, 1, [(b"a", b"b")], cpus=2)
    with pytest.raises(EntriesError, match="5-byte key"):
        MapEntries.from_pairs(4, 1, [(b"abcde", b"b")])


def test_streamed_contents_are_one_shot() -> None:
    streamed = MapEntries.streamed(1, 1, iter([EntryChunk(1, b"a", b"b")]))
    assert not streamed.materialised
    with pytest.raises(EntriesError, match="one-shot stream"):
        len(streamed)
    assert [c.count for c in streamed.rechunk(10, 100)] == [1]


def test_map_state_rules() -> None:
    spec = MapSpec("g.rodata", MapType.ARRAY, 4, 4, 1, contents=((bytes(4), b"init"),),
                   frozen=True)
    state = MapState(spec, MapEntries.from_pairs(4, 4, [(bytes(4), b"now!")]), frozen=True)
    assert state.spec.contents == ()  # the current contents supersede the object file's
    assert state.entry_count == 1
    with pytest.raises(SnapshotError, match="do not match its spec"):
        MapState(spec, MapEntries(4, 8))
    jt = MapSpec("jt", MapType.PROG_ARRAY, 4, 4, 2)
    assert MapState(jt, links=(MapLink(bytes(4), "p"),)).entry_count == 1
    with pytest.raises(SnapshotError, match="give them as links"):
        MapState(jt, MapEntries.from_pairs(4, 4, [(bytes(4), bytes(4))]))
    with pytest.raises(SnapshotError, match="holds values, not links"):
        MapState(spec, links=(MapLink(bytes(4), "p"),))


def test_only_per_cpu_maps_hold_a_value_per_cpu() -> None:
    # Restoring such contents handed tuples of values to the driver (a TypeError midway).
    two_cpus = MapEntries.from_pairs(4, 8, [(bytes(4), (bytes(8), bytes(8)))], cpus=2)
    with pytest.raises(SnapshotError, match="one value per entry, not 2"):
        MapState(MapSpec("h", MapType.HASH, 4, 8, 16), two_cpus)
    state = MapState(MapSpec("p", MapType.PERCPU_HASH, 4, 8, 16), two_cpus)
    assert list(state.entries or ()) == [(bytes(4), (bytes(8), bytes(8)))]
