"""BPF_MAP_TYPE_HASH and BPF_MAP_TYPE_PERCPU_HASH (kernel/bpf/hashtab.c).

Elements live in numbered slots, like the kernel's preallocated elements: a deleted element's
slot goes back on a free list and is reused first. Slot order is the iteration order of
get_next_key, items and batches, and a slot number is the batch cursor (the kernel uses a
bucket number the same way), so a walk interrupted by inserts and deletes never visits an
element twice and never loses one that stayed. A full map refuses new keys with E2BIG but
still lets existing ones be replaced.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import MapFlags, MapType, UpdateFlags
from .array import ACCESS_MASK, PCPU_MIN_UNIT_SIZE
from .base import LookupBatch, Map, enotsupp
from .spec import MapSpec
from .values import round8

KMALLOC_MAX_SIZE = 4 << 20
HTAB_ELEM_SIZE = 48  # sizeof(struct htab_elem) on 64-bit
BUCKET_SIZE = 16  # sizeof(struct bucket)
U32_MAX = (1 << 32) - 1
HTAB_CREATE_FLAG_MASK = int(MapFlags.NO_PREALLOC | MapFlags.NO_COMMON_LRU | MapFlags.NUMA_NODE
                            | ACCESS_MASK | MapFlags.ZERO_SEED)
LRU_TYPES = (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH)


def check_hash_spec(spec: MapSpec) -> None:
    """``htab_map_alloc_check()`` plus the size checks of ``htab_map_alloc()``."""
    percpu = spec.type in (MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH)
    lru = spec.type in LRU_TYPES
    percpu_lru = bool(spec.flags & MapFlags.NO_COMMON_LRU)
    if spec.flags & ~HTAB_CREATE_FLAG_MASK:
        raise ErrnoError(errno.EINVAL, f"map_flags {spec.flags & ~HTAB_CREATE_FLAG_MASK:#x} are "
                                       f"not valid for {spec.type.name} maps.")
    if not lru and percpu_lru:
        raise ErrnoError(errno.EINVAL, "BPF_F_NO_COMMON_LRU is only valid for LRU hash maps.")
    if lru and spec.flags & MapFlags.NO_PREALLOC:
        raise enotsupp("LRU hash maps are always preallocated: drop BPF_F_NO_PREALLOC.")
    if spec.flags & MapFlags.NUMA_NODE and (percpu or percpu_lru):
        raise ErrnoError(errno.EINVAL, "BPF_F_NUMA_NODE is not valid for per-CPU hash maps or "
                                       "per-CPU LRU lists.")
    if spec.max_entries == 0 or spec.key_size == 0 or spec.value_size == 0:
        raise ErrnoError(errno.EINVAL, "max_entries, key_size and value_size must all be at "
                                       "least 1.")
    if spec.key_size + spec.value_size >= KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE:
        raise ErrnoError(errno.E2BIG, f"key_size + value_size must be below "
                                      f"{KMALLOC_MAX_SIZE - HTAB_ELEM_SIZE} bytes.")
    if percpu and round8(spec.value_size) > PCPU_MIN_UNIT_SIZE:
        raise ErrnoError(errno.E2BIG, f"value_size {spec.value_size} exceeds the "
                                      f"{PCPU_MIN_UNIT_SIZE}-byte per-CPU unit.")


def check_hash_entries(max_entries: int) -> None:
    """The bucket array must stay addressable: ``n_buckets * sizeof(struct bucket) <= U32_MAX``."""
    buckets = 1 << (max_entries - 1).bit_length()
    if max_entries > 1 << 31 or buckets > U32_MAX // BUCKET_SIZE:
        raise ErrnoError(errno.E2BIG, f"max_entries {max_entries} is too large for a hash table "
                                      f"(at most {(U32_MAX // BUCKET_SIZE + 1) // 2}).")


class HashMap(Map):
    """Keys of ``key_size`` bytes to values, at most ``max_entries`` of them."""

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._index: dict[bytes, int] = {}
        self._keys: list[bytes | None] = []
        self._stored: list = []
        self._free: list[int] = []
        #: Keys deleted while a walk is under way (only then): a walk skips them, so a key
        #: deleted behind its cursor and re-added in a later slot is not seen twice.
        self._walks = 0
        self._deleted_in_walk: set[bytes] = set()

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_hash_spec(spec)
        check_hash_entries(spec.max_entries)

    @property
    def batch_cursor_size(self) -> int:
        """Hash batches resume at a slot number, a u32 (the kernel's bucket number)."""
        return 4

    # -- element storage ---------------------------------------------------------------------

    def _count(self) -> int:
        return len(self._index)

    def _check_flags(self, key: bytes, flags: int) -> int | None:
        slot = self._index.get(key)
        if slot is not None and flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "An element with this key already exists "
                                           "(BPF_NOEXIST).")
        if slot is None and flags == UpdateFlags.EXIST:
            raise ErrnoError(errno.ENOENT, "No element with this key to replace (BPF_EXIST).")
        return slot

    def _make_room(self, key: bytes, cpu: int) -> None:
        """Called before adding a new key; a plain hash map just refuses when full."""
        if len(self._index) >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"The map is full ({self.max_entries} elements): "
                                          "delete an element or use a larger max_entries.")

    def _insert(self, key: bytes, stored, cpu: int) -> None:  # noqa: ANN001
        self._make_room(key, cpu)
        if self._free:
            slot = self._free.pop()
            self._keys[slot] = key
            self._stored[slot] = stored
        else:
            slot = len(self._keys)
            self._keys.append(key)
            self._stored.append(stored)
        self._index[key] = slot
        self._touch(key)

    def _remove(self, key: bytes) -> None:
        slot = self._index.pop(key)
        self._keys[slot] = None
        self._stored[slot] = None
        self._free.append(slot)
        if self._walks:
            self._deleted_in_walk.add(key)
        self._touch(key)

    def _used(self, key: bytes, cpu: int) -> None:
        """An element was referenced or written by a program (LRU maps keep recency here)."""

    # -- hooks -------------------------------------------------------------------------------

    def _lookup(self, key: bytes) -> bytes | None:
        slot = self._index.get(key)
        return None if slot is None else self.values.read(self._stored[slot])

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        slot = self._check_flags(key, flags)
        if slot is None:
            self._insert(key, self.values.new(value), 0)
        else:
            self.values.write(self._stored[slot], value)
            self._used(key, 0)
            self._touch(key)

    def _program_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> None:
        slot = self._check_flags(key, flags)
        if slot is None:
            self._insert(key, self.values.new_from_program(value, cpu), cpu)
        else:
            self.values.write_from_program(self._stored[slot], value, cpu)
            self._used(key, cpu)
            self._touch(key)

    def _delete(self, key: bytes) -> None:
        if key not in self._index:
            raise ErrnoError(errno.ENOENT, "No element with this key to delete.")
        self._remove(key)

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        slot = self._index.get(key)
        if slot is None:
            return None
        self._used(key, cpu)
        return key, self.values.cpu_buffer(self._stored[slot], cpu)

    def _next_slot(self, start: int) -> int | None:
        keys = self._keys
        for slot in range(start, len(keys)):
            if keys[slot] is not None:
                return slot
        return None

    def _next_key(self, key: bytes | None) -> bytes | None:
        slot = None if key is None else self._index.get(key)
        found = self._next_slot(0 if slot is None else slot + 1)
        return None if found is None else self._keys[found]

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Slot order. An element present for the whole walk is seen once; one deleted during
        the walk is not seen again even if re-added (dirty tracking reports it)."""
        self._walks += 1
        try:
            start = 0
            while (slot := self._next_slot(start)) is not None:
                key = self._keys[slot]
                if key not in self._deleted_in_walk:
                    yield key, self.values.read(self._stored[slot])  # type: ignore[misc]
                start = slot + 1
        finally:
            self._walks -= 1
            if not self._walks:
                self._deleted_in_walk.clear()

    def _lookup_batch(self, cursor: bytes | None, count: int) -> LookupBatch:
        slot = 0 if cursor is None else int.from_bytes(cursor, "little")
        entries: list[tuple[bytes, bytes]] = []
        read = self.values.read
        while len(entries) < count:
            found = self._next_slot(slot)
            if found is None:
                slot = max(slot, len(self._keys))
                return LookupBatch(tuple(entries), slot.to_bytes(4, "little"), True)
            entries.append((self._keys[found], read(self._stored[found])))  # type: ignore[arg-type]
            slot = found + 1
        return LookupBatch(tuple(entries), slot.to_bytes(4, "little"), False)


class PercpuHashMap(HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH: one copy of the value per CPU."""
