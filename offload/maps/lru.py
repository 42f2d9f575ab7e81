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

The lists hold slot numbers, not keys: a bulk load appends a run of consecutive slots (small
integers, cheap to hash and to insert in order), where keys would cost a second hash table of
a million byte strings; only BPF_F_NO_COMMON_LRU needs to know which list holds a slot.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from itertools import repeat

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
        #: Each list's slots, least recently used first.
        self._lists: list[OrderedDict[int, None]] = [OrderedDict() for _ in range(lists)]
        self._list_size = self.max_entries // lists
        #: Slot -> the list holding it, only with more than one list.
        self._owner: dict[int, int] | None = {} if lists > 1 else None

    def _list_of(self, cpu: int) -> int:
        return cpu if len(self._lists) > 1 else 0

    def _make_room(self, key: bytes, cpu: int) -> None:
        recent = self._lists[self._list_of(cpu)]
        while recent and (len(recent) >= self._list_size or len(self._index) >= self.max_entries):
            self._remove(self._slot_key(next(iter(recent))))

    def _insert(self, key: bytes, raw: bytes | bytearray, cpu: int) -> int:
        slot = super()._insert(key, raw, cpu)
        owner = self._list_of(cpu)
        self._lists[owner][slot] = None
        if self._owner is not None:
            self._owner[slot] = owner
        return slot

    def _remove(self, key: bytes) -> int:
        slot = super()._remove(key)
        if self._owner is None:
            del self._lists[0][slot]
        else:
            del self._lists[self._owner.pop(slot)][slot]
        return slot

    def _used_by(self, slot: int, cpu: int) -> None:
        owner = self._owner
        (self._lists[0] if owner is None else self._lists[owner[slot]]).move_to_end(slot)

    def _room_for(self, count: int) -> bool:
        return len(self._lists[0]) + count <= self._list_size

    def _bulk_inserted(self, first: int, count: int) -> None:
        slots = range(first, first + count)
        self._lists[0].update(zip(slots, repeat(None)))
        if self._owner is not None:
            self._owner.update(zip(slots, repeat(0)))

    def _chunks(self, limit: int) -> Iterator[Chunk]:
        """Least recent first (see the module's docstring). The order is taken when the walk
        starts; a key deleted during the walk is skipped, as in slot order."""
        order = [slot for recent in self._lists for slot in list(recent)]
        used, keyslab, slab = self._used, self._keyslab, self._slab
        self._walks += 1
        try:
            for start in range(0, len(order), limit):
                keys, values, count = bytearray(), bytearray(), 0
                for slot in order[start:start + limit]:
                    if not used[slot]:
                        continue
                    key = keyslab.read(slot)
                    if key in self._deleted_in_walk:
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
        return [self._slot_key(slot) for slot in self._lists[self._list_of(self._cpu(cpu))]]


class LruPercpuHashMap(LruHashMap):
    """BPF_MAP_TYPE_LRU_PERCPU_HASH: LRU eviction, one copy of the value per CPU."""
