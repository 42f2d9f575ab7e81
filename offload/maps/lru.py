"""BPF_MAP_TYPE_LRU_HASH and BPF_MAP_TYPE_LRU_PERCPU_HASH (kernel/bpf/bpf_lru_list.c).

A full LRU map never refuses a new key: it evicts the least recently used element instead.
Recency follows the kernel's notion of use: inserting or updating an element, and a program's
lookup, make it the most recent; a lookup through the uAPI does not (``lookup_elem_sys``).
With BPF_F_NO_COMMON_LRU every CPU keeps its own list of ``max_entries / ncpus`` elements
and evicts only from the list of the CPU that inserts; ``max_entries`` is rounded to a multiple
of the CPU count so every list has the same size, as ``htab_map_alloc()`` does.

The kernel's lists are an approximation (per-CPU free batches, a second-chance reference bit)
that may evict before the map is full; this implementation is exact LRU, which is what those
approximations aim at and what tests can state.

A checkpoint exports the elements in recency order, least recent first (list by list with
BPF_F_NO_COMMON_LRU), so a restore - which inserts in the order it is given - rebuilds the
same recency, and the restored map evicts the keys the source would have evicted next.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

from ..uapi import MapFlags
from .base import Chunk
from .hash import HashMap
from .spec import MapSpec

U32_MAX = (1 << 32) - 1


def lru_max_entries(max_entries: int, ncpus: int, flags: int) -> int:
    """``max_entries`` after the per-CPU-list rounding of ``htab_map_alloc()``."""
    if not flags & MapFlags.NO_COMMON_LRU:
        return max_entries
    rounded = -(-max_entries // ncpus) * ncpus
    if rounded > U32_MAX:
        rounded = max_entries // ncpus * ncpus
    return rounded


class LruHashMap(HashMap):
    """A hash map that evicts its least recently used element when full."""

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        lists = self.ncpus if self.flags & MapFlags.NO_COMMON_LRU else 1
        self._lists: list[OrderedDict[bytes, None]] = [OrderedDict() for _ in range(lists)]
        self._list_size = self.max_entries // lists
        self._owner: dict[bytes, int] = {}

    def _list_of(self, cpu: int) -> int:
        return cpu if len(self._lists) > 1 else 0

    def _make_room(self, key: bytes, cpu: int) -> None:
        recent = self._lists[self._list_of(cpu)]
        while recent and (len(recent) >= self._list_size or len(self._index) >= self.max_entries):
            victim = next(iter(recent))
            self._remove(victim)

    def _insert(self, key: bytes, raw: bytes | bytearray, cpu: int) -> int:
        slot = super()._insert(key, raw, cpu)
        owner = self._list_of(cpu)
        self._lists[owner][key] = None
        self._owner[key] = owner
        return slot

    def _remove(self, key: bytes) -> None:
        super()._remove(key)
        del self._lists[self._owner.pop(key)][key]

    def _used_by(self, key: bytes, cpu: int) -> None:
        self._lists[self._owner[key]].move_to_end(key)

    def _room_for(self, count: int) -> bool:
        return len(self._lists[0]) + count <= self._list_size

    def _bulk_inserted(self, keys: Sequence[bytes]) -> None:
        self._lists[0].update(dict.fromkeys(keys))
        self._owner.update(dict.fromkeys(keys, 0))

    def _chunks(self, limit: int) -> Iterator[Chunk]:
        """Least recent first (see the module's docstring). The order is taken when the walk
        starts; a key deleted during the walk is skipped, as in slot order."""
        order = [key for recent in self._lists for key in list(recent)]
        index, slab = self._index, self._slab
        self._walks += 1
        try:
            for start in range(0, len(order), limit):
                keys, values, count = bytearray(), bytearray(), 0
                for key in order[start:start + limit]:
                    slot = index.get(key)
                    if slot is None or key in self._deleted_in_walk:
                        continue
                    keys += key
                    values += slab.read(slot)
                    count += 1
                if count:
                    yield Chunk(count, bytes(keys), bytes(values))
        finally:
            self._walks -= 1
            if not self._walks:
                self._deleted_in_walk.clear()

    def lru_order(self, cpu: int = 0) -> list[bytes]:
        """Keys of ``cpu``'s LRU list (the only list without BPF_F_NO_COMMON_LRU), oldest first."""
        return list(self._lists[self._list_of(self._cpu(cpu))])


class LruPercpuHashMap(LruHashMap):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH: LRU eviction, one copy of the value per CPU."""
