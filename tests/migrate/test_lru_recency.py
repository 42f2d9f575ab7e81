"""An LRU map keeps its recency through a snapshot: restored, it evicts the keys the source
would have evicted next (decoded in memory, or read back from a daemon's spool file)."""

from __future__ import annotations

import io
import struct

import pytest

from migrate.checkpoint import checkpoint
from migrate.codec import decode, encode, index_snapshot
from migrate.restore import restore
from offload.caps import load_profile
from offload.device import build_device
from offload.maps.spec import MapSpec
from offload.uapi import MapType

FULL = load_profile("full")
SIZE = 5000  # more than one chunk of the checkpoint (4096 entries)


def key(i: int) -> bytes:
    return struct.pack("<I", i)


@pytest.mark.parametrize("read", [decode, lambda data: index_snapshot(io.BytesIO(data))])
def test_a_restored_lru_map_evicts_what_the_source_would(read):
    source = build_device("source", FULL)
    handle = source.driver.map_create(MapSpec("recent", MapType.LRU_HASH, 4, 8, SIZE))
    source.driver.map_update_batch(handle, [(key(i), bytes(8)) for i in range(SIZE)])
    live = source.device.backend.map(handle)
    for i in range(0, SIZE, 3):  # a program uses every third key, newest last
        live.value_ref(key(i))
    order = live.lru_order()
    assert order[0] == key(1) and order[-1] == key(SIZE - 2)

    target = build_device("target", FULL)
    result = restore(read(encode(checkpoint(source.device))), target.driver)
    restored = target.device.backend.map(result.maps["recent"])
    assert restored.lru_order() == order
    for side in (source.driver, target.driver):  # two new keys evict the two oldest
        for new in (SIZE, SIZE + 1):
            side.map_update_elem(handle if side is source.driver else result.maps["recent"],
                                 key(new), bytes(8))
    assert restored.lru_order() == live.lru_order()
    assert key(1) not in dict(restored.items()) and key(0) in dict(restored.items())
