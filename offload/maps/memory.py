"""What a map costs a device's memory: the charge MAP_CREATE takes from its budget.

A device charges a map for what it may hold, not for what it holds now, the way the kernel's
``bpf_map_memory_footprint()`` and each family's ``map_mem_usage`` count a preallocated map:
every entry a map may hold, its key and value rounded to 8 bytes (the kernel's element
stride), one value per CPU for per-CPU maps. A map that allocates lazily (arrays here
materialise an element on first use) is charged as if full, so a small request cannot declare
a map that a later full walk (a checkpoint, a lookup of every index) could never fit.

The overheads are documented constants in the spirit of the kernel's structures, not exact
sizes of any kernel build:

* every map: :data:`MAP_OVERHEAD` (``struct bpf_map`` and its family's header);
* arrays (and maps kept as arrays: program arrays, arrays of maps, perf event arrays,
  devmaps, cpumaps, xskmaps): ``max_entries * round8(value_size)``, no key (the index is the
  key); per-CPU arrays add a pointer per entry and keep ``ncpus`` values;
* hash-like maps (hash, LRU hash, hash of maps, devmap hash): ``max_entries *
  (HASH_ENTRY_OVERHEAD + round8(key_size) + round8(value_size))`` - ``struct htab_elem``
  and its share of the bucket table; per-CPU hashes keep a pointer in the element and
  ``ncpus`` values beside it;
* LPM tries: ``max_entries * (LPM_NODE_OVERHEAD + round8(key_size + value_size))``;
* ring buffers: the data area (``max_entries`` bytes) and :data:`RINGBUF_META_PAGES` pages of
  positions and header;
* perf event arrays also hold the device's stream of each CPU they may write to.
"""

from __future__ import annotations

from ..uapi import MapType
from .perf_event_array import PERF_STREAM_BYTES
from .spec import MapSpec
from .values import round8

MAP_OVERHEAD = 256  # struct bpf_map and the family's own header
HASH_ENTRY_OVERHEAD = 64  # struct htab_elem (48 bytes) and a bucket (16 bytes) per entry
LPM_NODE_OVERHEAD = 40  # struct lpm_trie_node before its data
POINTER = 8  # a per-CPU pointer
PAGE_SIZE = 4096
RINGBUF_META_PAGES = 3  # the header page, the consumer page and the producer page

_ARRAYS = frozenset({MapType.ARRAY, MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY,
                     MapType.ARRAY_OF_MAPS, MapType.DEVMAP, MapType.CPUMAP, MapType.XSKMAP})
_HASHES = frozenset({MapType.HASH, MapType.LRU_HASH, MapType.HASH_OF_MAPS,
                     MapType.DEVMAP_HASH})
_PERCPU_HASHES = frozenset({MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH})


def map_memory(spec: MapSpec, ncpus: int = 1) -> int:
    """Bytes of device memory a map created from ``spec`` is charged on ``ncpus`` CPUs."""
    entries, key, value = spec.max_entries, round8(spec.key_size), round8(spec.value_size)
    kind = spec.type
    if kind in _ARRAYS:
        body = entries * value
        if kind == MapType.PERF_EVENT_ARRAY:
            body += min(entries, ncpus) * PERF_STREAM_BYTES
    elif kind == MapType.PERCPU_ARRAY:
        body = entries * (POINTER + value * ncpus)
    elif kind in _HASHES:
        body = entries * (HASH_ENTRY_OVERHEAD + key + value)
    elif kind in _PERCPU_HASHES:
        body = entries * (HASH_ENTRY_OVERHEAD + key + POINTER + value * ncpus)
    elif kind == MapType.LPM_TRIE:
        body = entries * (LPM_NODE_OVERHEAD + round8(spec.key_size + spec.value_size))
    elif kind == MapType.RINGBUF:
        body = entries + RINGBUF_META_PAGES * PAGE_SIZE
    else:  # a type no device here creates: charged as a hash, the dearest layout
        body = entries * (HASH_ENTRY_OVERHEAD + key + value * max(1, ncpus))
    return MAP_OVERHEAD + body


def format_bytes(size: int) -> str:
    """``size`` for people: exact bytes with a binary-unit reading beside large ones."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size:,} bytes ({size / (1 << shift):.1f} {unit})"
    return f"{size:,} bytes"
