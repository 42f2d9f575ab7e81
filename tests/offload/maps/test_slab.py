"""Slab maps: packed chunks out and in, slot views for programs, dirty slots."""

from __future__ import annotations

import errno
import struct

import pytest

from offload.errors import ErrnoError
from offload.maps import create_map
from offload.maps.base import BatchError, Chunk
from offload.maps.spec import MapSpec
from offload.maps.values import SlotValues, join_percpu
from offload.uapi import MapFlags, MapType


def k(n: int, size: int = 8) -> bytes:
    return n.to_bytes(size, "little")


def packed(pairs):  # noqa: ANN001, ANN201
    return Chunk(len(pairs), b"".join(p[0] for p in pairs), b"".join(p[1] for p in pairs))


@pytest.mark.parametrize("mtype", [MapType.HASH, MapType.LRU_HASH])
def test_chunks_are_what_items_are(mtype):
    m = create_map(MapSpec("m", mtype, 8, 16, 100))
    for n in range(60):
        m.update(k(n), k(n * 7, 16))
    for n in range(0, 60, 3):
        m.delete(k(n))  # holes in the slots
    m.update(k(1000), k(1, 16))  # reuses the last freed slot
    chunks = list(m.export_chunks(7))
    assert all(c.count <= 7 for c in chunks)
    keys = b"".join(c.keys for c in chunks)
    values = b"".join(c.values for c in chunks)
    expected = list(m.items())
    if mtype == MapType.LRU_HASH:  # least recently used first (offload/maps/lru.py)
        rank = {key: i for i, key in enumerate(m.lru_order())}
        expected.sort(key=lambda item: rank[item[0]])
        assert expected != list(m.items())  # k(1000) took a freed slot, yet is the newest
    assert [(keys[i * 8:i * 8 + 8], values[i * 16:i * 16 + 16]) for i in range(len(m))] == \
        expected


def test_import_chunk_fills_a_fresh_map_and_overwrites_in_order():
    m = create_map(MapSpec("m", MapType.HASH, 8, 16, 10))
    assert m.import_chunk(packed([(k(n), k(n, 16)) for n in range(5)])) == 5
    # one key present, one repeated: the per-element path, later entries win
    assert m.import_chunk(packed([(k(2), k(20, 16)), (k(7), k(1, 16)), (k(7), k(2, 16))])) == 3
    assert dict(m.items()) == {**{k(n): k(n, 16) for n in range(5)}, k(2): k(20, 16),
                               k(7): k(2, 16)}
    assert [m.get_next_key(None)] + [m.get_next_key(k(n)) for n in (0, 1, 2, 3)] == \
        [k(0), k(1), k(2), k(3), k(4)]


def test_a_batch_that_overflows_reports_the_count_applied():
    m = create_map(MapSpec("m", MapType.HASH, 8, 16, 4))
    keys = b"".join(k(n) for n in range(6))
    with pytest.raises(BatchError) as err:
        m.update_batch_columns(6, keys, bytes(96))
    assert err.value.errno == errno.E2BIG and err.value.count == 4 and len(m) == 4
    with pytest.raises(ErrnoError) as bad:
        m.update_batch_columns(2, keys, bytes(32))  # keys for 6, count 2
    assert bad.value.errno == errno.EINVAL


def test_import_chunk_refuses_bad_lengths_before_changing_anything():
    m = create_map(MapSpec("m", MapType.HASH, 8, 16, 10))
    with pytest.raises(ErrnoError):
        m.import_chunk(Chunk(2, k(1) + k(2), bytes(31)))
    assert len(m) == 0


def test_lru_bulk_import_keeps_insertion_order_and_evicts_the_oldest():
    m = create_map(MapSpec("m", MapType.LRU_HASH, 8, 8, 4))
    m.import_chunk(packed([(k(n), k(n)) for n in range(4)]))
    assert m.lru_order() == [k(0), k(1), k(2), k(3)]
    m.update(k(9), k(9))
    assert k(0) not in dict(m.items()) and m.lru_order()[-1] == k(9)


def test_percpu_values_are_padded_on_the_uapi_and_packed_in_chunks():
    ncpus = 3
    m = create_map(MapSpec("m", MapType.PERCPU_HASH, 4, 12, 8), ncpus=ncpus)
    copies = [bytes([c + 1]) * 12 for c in range(ncpus)]
    m.update(k(1, 4), join_percpu(copies, 12))
    (chunk,) = list(m.export_chunks())
    assert chunk.values == b"".join(copies)  # unpadded, CPU order
    assert m.lookup(k(1, 4)) == join_percpu(copies, 12)
    columns = m.lookup_batch_columns(None, 8)
    assert columns.values == join_percpu(copies, 12)
    other = create_map(MapSpec("m", MapType.PERCPU_HASH, 4, 12, 8), ncpus=ncpus)
    other.update_batch_columns(1, k(1, 4), join_percpu(copies, 12))
    assert list(other.export_chunks()) == [chunk]


def test_restride_both_ways():
    layout = SlotValues(True, 3, 2)
    slots = bytes(range(1, 13))  # two entries of two 3-byte copies
    blob = layout.uapi_blob(slots, 2)
    assert blob == b"\x01\x02\x03" + bytes(5) + b"\x04\x05\x06" + bytes(5) + \
        b"\x07\x08\x09" + bytes(5) + b"\x0a\x0b\x0c" + bytes(5)
    assert layout.slot_blob(blob, 2) == slots


def test_a_program_view_is_one_object_per_value_and_writes_land_in_the_map():
    m = create_map(MapSpec("m", MapType.PERCPU_HASH, 8, 8, 4), ncpus=2)
    m.update(k(1), bytes(16))
    view = m.program_ref(k(1), 1)
    assert view is m.program_ref(k(1), 1) and view is not m.program_ref(k(1), 0)
    struct.pack_into("<Q", view, 0, 0xABCD)
    assert m.lookup(k(1)) == bytes(8) + struct.pack("<Q", 0xABCD)


def test_program_refs_and_writes_mark_slots_dirty():
    m = create_map(MapSpec("m", MapType.HASH, 8, 8, 8))
    m.import_chunk(packed([(k(n), k(n)) for n in range(4)]))
    m.track_dirty(True)
    m.program_ref(k(2), 0)
    m.program_update(k(5), k(5), 0, 0)
    m.delete(k(0))
    chunk, gone = m.take_dirty_chunk()
    assert chunk.count == 2 and chunk.keys == k(2) + k(5) and gone == k(0)
    m.delete(k(1))
    m.update(k(1), k(11))  # deleted and added again: sent as present, not as gone
    chunk, gone = m.take_dirty_chunk()
    assert chunk.keys == k(1) and chunk.values == k(11) and gone == b""
    assert m.take_dirty_chunk()[0].count == 0


def test_read_only_programs_do_not_dirty():
    m = create_map(MapSpec("m", MapType.HASH, 8, 8, 8, flags=MapFlags.RDONLY_PROG))
    m.update(k(1), k(1))
    m.track_dirty(True)
    m.program_ref(k(1), 0)
    assert m.take_dirty_chunk()[0].count == 0


def test_arrays_move_runs_of_indices():
    m = create_map(MapSpec("a", MapType.ARRAY, 4, 8, 10))
    m.update(k(3, 4), k(33))
    chunks = list(m.export_chunks(4))
    assert [c.count for c in chunks] == [4, 4, 2]
    assert chunks[0].keys == b"".join(k(i, 4) for i in range(4))
    assert chunks[0].values[24:32] == k(33)
    other = create_map(MapSpec("a", MapType.ARRAY, 4, 8, 10))
    for chunk in chunks:
        other.import_chunk(chunk)
    assert list(other.items()) == list(m.items())
    with pytest.raises(ErrnoError) as err:
        other.import_chunk(Chunk(1, k(10, 4), k(1)))
    assert err.value.errno == errno.E2BIG
    other.track_dirty(True)
    other.import_chunk(Chunk(2, k(7, 4) + k(1, 4), k(7) + k(1)))
    chunk, gone = other.take_dirty_chunk()
    assert chunk.keys == k(1, 4) + k(7, 4) and gone == b""


def test_array_batches_in_columns_follow_the_generic_walk():
    m = create_map(MapSpec("a", MapType.ARRAY, 4, 8, 5))
    first = m.lookup_batch_columns(None, 5)
    assert first.count == 5 and not first.done  # as generic_map_lookup_batch
    generic = m.lookup_batch(None, 5)
    assert (first.cursor, first.done) == (generic.cursor, generic.done)
    rest = m.lookup_batch_columns(first.cursor, 5)
    assert rest.count == 0 and rest.done


def test_a_huge_map_allocates_only_what_it_holds():
    m = create_map(MapSpec("a", MapType.ARRAY, 4, 64, 1 << 30))
    h = create_map(MapSpec("h", MapType.HASH, 8, 64, 1 << 27))
    m.update(k(1 << 29, 4), bytes(64))
    h.update(k(1), bytes(64))
    assert m._slab.allocated <= 1 << 20 and h._slab.allocated <= 1 << 20
    assert m.lookup(k(5, 4)) == bytes(64)


def test_lpm_offers_the_same_chunks():
    m = create_map(MapSpec("t", MapType.LPM_TRIE, 8, 4, 16, flags=MapFlags.NO_PREALLOC))
    m.update(struct.pack("<I", 24) + bytes([10, 0, 0, 0]), k(1, 4))
    m.update(struct.pack("<I", 8) + bytes([10, 0, 0, 0]), k(2, 4))
    (chunk,) = list(m.export_chunks())
    other = create_map(MapSpec("t", MapType.LPM_TRIE, 8, 4, 16, flags=MapFlags.NO_PREALLOC))
    assert other.import_chunk(chunk) == 2
    assert list(other.items()) == list(m.items())


def test_plain_views_do_not_depend_on_the_cpu():
    m = create_map(MapSpec("m", MapType.HASH, 8, 8, 4), ncpus=4)
    m.update(k(1), k(1))  # slot 0
    m.update(k(2), k(2))  # slot 1
    assert bytes(m.program_ref(k(2), 0)) == k(2)
    assert bytes(m.program_ref(k(1), 1)) == k(1)  # slot 0 on CPU 1, not slot 1's view
    assert m.program_ref(k(1), 1) is m.program_ref(k(1), 0)
    a = create_map(MapSpec("a", MapType.ARRAY, 4, 8, 4), ncpus=4)
    a.update(k(1, 4), k(7))
    assert bytes(a.program_ref(k(1, 4), 0)) == k(7)
    assert bytes(a.program_ref(k(0, 4), 1)) == bytes(8)
