"""Save, restore, save again: the two snapshots hold the same map contents, byte for byte.

The default size keeps the run fast; the slow profile (``OFFLOAD_ROUNDTRIP_ENTRIES=1000000``)
moves a million entries per map through the codec, the control queue and the slab maps.
"""

from __future__ import annotations

import io
import os
from array import array

from migrate.checkpoint import checkpoint
from migrate.codec import read_snapshot, write_snapshot
from migrate.restore import restore
from offload.caps import load_profile
from offload.device import build_device
from offload.maps.base import Chunk
from offload.maps.spec import MapSpec
from offload.uapi import MapFlags, MapType

ENTRIES = int(os.environ.get("OFFLOAD_ROUNDTRIP_ENTRIES", "20000"))
NCPUS = 2


def _fill(live, count: int, key_size: int, seed: int) -> None:  # noqa: ANN001
    """``count`` distinct keys with values that differ per entry (and per CPU)."""
    copies = live.values.copies
    words = live.values.value_size * copies // 8
    for first in range(0, count, 4096):
        n = min(4096, count - first)
        keys = array("Q", ((i * 2654435761 + seed) & (2**63 - 1) for i in range(first, first + n)))
        raw = keys.tobytes()
        if key_size == 4:
            raw = array("I", (i for i in range(first, first + n))).tobytes()
        values = array("Q", ((i * 31 + w + seed) & (2**64 - 1)
                             for i in range(first, first + n) for w in range(words)))
        live.import_chunk(Chunk(n, raw, values.tobytes()))


def _source():  # noqa: ANN202
    pair = build_device("source", load_profile("full"), ncpus=NCPUS)
    specs = [MapSpec("flows", MapType.HASH, 8, 16, ENTRIES),
             MapSpec("percpu", MapType.PERCPU_HASH, 8, 16, ENTRIES // 4),
             MapSpec("lru", MapType.LRU_HASH, 8, 16, ENTRIES // 4),
             MapSpec("table", MapType.ARRAY, 4, 16, ENTRIES // 4),
             MapSpec("counters", MapType.PERCPU_ARRAY, 4, 8, ENTRIES // 4)]
    for seed, spec in enumerate(specs):
        handle = pair.driver.map_create(spec)
        live = pair.device.backend.map(handle)
        _fill(live, spec.max_entries, spec.key_size, seed)
        if spec.type == MapType.HASH:  # holes and a reused slot
            for _ in range(50):
                live.delete(live.get_next_key(None))
    trie = pair.driver.map_create(MapSpec("routes", MapType.LPM_TRIE, 8, 8, 64,
                                          flags=MapFlags.NO_PREALLOC))
    for n in range(32):
        pair.driver.map_update_elem(trie, (n % 33).to_bytes(4, "little") + bytes([n, 1, 2, 3]),
                                    n.to_bytes(8, "little"))
    return pair


def _save(device) -> bytes:  # noqa: ANN001
    out = io.BytesIO()
    write_snapshot(out, checkpoint(device, stream=True))
    return out.getvalue()


def test_save_restore_save_gives_the_same_contents():
    source = _source()
    first = read_snapshot(io.BytesIO(_save(source.device)))
    target = build_device("target", load_profile("full"), ncpus=NCPUS)
    result = restore(first, target.driver)
    assert result.entries == sum(len(state.entries) for state in first.maps)
    second = read_snapshot(io.BytesIO(_save(target.device)))
    assert [m.name for m in first.maps] == [m.name for m in second.maps]
    for before, after in zip(first.maps, second.maps, strict=True):
        assert before.spec == after.spec
        assert before.entries == after.entries, before.name
    hashed = first.map("flows").entries
    assert len(hashed) == ENTRIES - 50
