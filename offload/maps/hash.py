"""BPF_MAP_TYPE_HASH and BPF_MAP_TYPE_PERCPU_HASH (kernel/bpf/hashtab.c).

Elements live in numbered slots, like the kernel's preallocated elements: a deleted element's
slot goes back on a free list and is reused first. Keys and values sit in slabs (one buffer
per run of slots, ``slab.py``) and a dict maps each key to its slot, so a checkpoint chunk of
consecutive slots is two slices and a restore into fresh slots two slice assignments plus one
bulk dict update. Slot order is the iteration order of
get_next_key, items and batches, and a slot number is the batch cursor (the kernel uses a
bucket number the same way), so a walk interrupted by inserts and deletes never visits an
element twice and never loses one that stayed. A full map refuses new keys with E2BIG but
still lets existing ones be replaced.
"""

from __future__ import annotations

import errno
import struct
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from ..errors import ErrnoError
from ..uapi import MapFlags, MapType, UpdateFlags
from .array import ACCESS_MASK, PCPU_MIN_UNIT_SIZE
from .base import BatchError, Chunk, ColumnBatch, LookupBatch, enotsupp
from .dirty import SlotDirty, SlotTrackedMap
from .slab import Slab
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


class HashMap(SlotTrackedMap):
    """Keys of ``key_size`` bytes to values, at most ``max_entries`` of them."""

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._index: dict[bytes, int] = {}
        self._keyslab = Slab(self.key_size, self.max_entries)
        self._slab = Slab(self.values.slot_size, self.max_entries)
        #: One byte per slot ever used: 1 while it holds an element (find() walks it in C).
        self._used = bytearray()
        self._free: list[int] = []
        self._slots_dirty: SlotDirty | None = None
        self._init_views()
        #: Keys deleted while a walk is under way (only then): a walk skips them, so a key
        #: deleted behind its cursor and re-added in a later slot is not seen twice.
        self._walks = 0
        self._deleted_in_walk: set[bytes] = set()
        self._split = _splitter(self.key_size)
        #: Values are plain bytes (not object references a family resolves in _update), so
        #: a run of new keys may go straight into the slabs.
        self._plain_values = type(self)._update is HashMap._update

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

    def _insert(self, key: bytes, raw: bytes | bytearray, cpu: int) -> int:
        """Add ``key`` with slot bytes ``raw``; its slot."""
        self._make_room(key, cpu)
        if self._free:
            slot = self._free.pop()
            self._used[slot] = 1
        else:
            slot = len(self._used)
            self._used.append(1)
        self._keyslab.write(slot, key)
        self._slab.write(slot, raw)
        self._index[key] = slot
        if self._slots_dirty is not None:
            self._slots_dirty.mark(slot)
        return slot

    def _remove(self, key: bytes) -> int:
        """Drop ``key``'s element; the slot it held."""
        slot = self._index.pop(key)
        self._used[slot] = 0
        self._free.append(slot)
        if self._walks:
            self._deleted_in_walk.add(key)
        if self._slots_dirty is not None:
            self._slots_dirty.gone(slot, key)
        return slot

    def _write_slot(self, slot: int, raw: bytes | bytearray, offset: int = 0) -> None:
        self._slab.write(slot, raw, offset)
        if self._slots_dirty is not None:
            self._slots_dirty.mark(slot)

    def _touch(self, key: bytes) -> None:
        if self._slots_dirty is not None:
            slot = self._index.get(key)
            if slot is not None:
                self._slots_dirty.mark(slot)

    def _used_by(self, slot: int, cpu: int) -> None:
        """The element in ``slot`` was referenced or written by a program, or replaced (LRU
        maps keep recency here)."""

    # -- hooks -------------------------------------------------------------------------------

    def _lookup(self, key: bytes) -> bytes | None:
        slot = self._index.get(key)
        return None if slot is None else self.values.from_slot(self._slab.read(slot))

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        slot = self._check_flags(key, flags)
        if slot is None:
            self._insert(key, self.values.to_slot(value), 0)
        else:
            self._write_slot(slot, self.values.to_slot(value))
            self._used_by(slot, 0)

    def _program_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> None:
        slot = self._check_flags(key, flags)
        if slot is None:
            self._insert(key, self.values.program_new(value, cpu), cpu)
        else:
            self._write_slot(slot, value, self.values.program_offset(cpu))
            self._used_by(slot, cpu)

    def _delete(self, key: bytes) -> None:
        if key not in self._index:
            raise ErrnoError(errno.ENOENT, "No element with this key to delete.")
        self._remove(key)

    def _ref(self, key: bytes, cpu: int) -> tuple[int, memoryview] | None:
        slot = self._index.get(key)
        if slot is None:
            return None
        self._used_by(slot, cpu)
        view = self._views.get(slot * self._view_copies + cpu % self._view_copies)
        if view is None:
            view = self._new_view(slot, cpu)
        return slot, view

    def _mark_ref(self, token: object) -> None:
        if self._slots_dirty is not None:
            self._slots_dirty.mark(token)  # type: ignore[arg-type]

    def _next_slot(self, start: int) -> int | None:
        found = self._used.find(1, start)
        return None if found < 0 else found

    def _slot_key(self, slot: int) -> bytes:
        return self._keyslab.read(slot)

    def _next_key(self, key: bytes | None) -> bytes | None:
        slot = None if key is None else self._index.get(key)
        found = self._next_slot(0 if slot is None else slot + 1)
        return None if found is None else self._slot_key(found)

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Slot order. An element present for the whole walk is seen once; one deleted during
        the walk is not seen again even if re-added (dirty tracking reports it)."""
        self._walks += 1
        try:
            start = 0
            while (slot := self._next_slot(start)) is not None:
                key = self._slot_key(slot)
                if key not in self._deleted_in_walk:
                    yield key, self.values.from_slot(self._slab.read(slot))
                start = slot + 1
        finally:
            self._walks -= 1
            if not self._walks:
                self._deleted_in_walk.clear()

    # -- runs of slots -----------------------------------------------------------------------

    def _gather(self, slot: int, limit: int) -> tuple[int, bytes, bytes, int]:
        """Up to ``limit`` elements in slot order from ``slot``: (count, keys, slot values,
        the slot after the last one looked at). One slice per run of occupied slots."""
        used, top = self._used, len(self._used)
        keys: list[bytes] = []
        values: list[bytes] = []
        count = 0
        while count < limit and slot < top:
            start = used.find(1, slot)
            if start < 0:
                slot = top
                break
            stop = min(top, start + limit - count)
            end = used.find(0, start, stop)
            if end < 0:
                end = stop
            keys.append(self._keyslab.read_run(start, end - start))
            values.append(self._slab.read_run(start, end - start))
            count += end - start
            slot = end
        if len(keys) == 1:
            return count, keys[0], values[0], slot
        return count, b"".join(keys), b"".join(values), slot

    def _drop_deleted(self, count: int, keys: bytes, values: bytes) -> tuple[int, bytes, bytes]:
        """A chunk without the keys deleted during the walk (only while some were)."""
        ks, vs = self.key_size, self.values.slot_size
        kept_keys, kept_values = bytearray(), bytearray()
        for i in range(count):
            key = keys[i * ks:(i + 1) * ks]
            if key not in self._deleted_in_walk:
                kept_keys += key
                kept_values += values[i * vs:(i + 1) * vs]
        return len(kept_keys) // ks, bytes(kept_keys), bytes(kept_values)

    def _chunks(self, limit: int) -> Iterator[Chunk]:
        self._walks += 1
        try:
            slot = 0
            while True:
                count, keys, values, slot = self._gather(slot, limit)
                if not count:
                    return
                if self._deleted_in_walk:
                    count, keys, values = self._drop_deleted(count, keys, values)
                    if not count:
                        continue
                yield Chunk(count, keys, values)
        finally:
            self._walks -= 1
            if not self._walks:
                self._deleted_in_walk.clear()

    def _import(self, count: int, keys: bytes, values: bytes, *, user: bool) -> int:
        """``count`` BPF_ANY updates from packed keys and slot values, in order.

        New keys that all fit go in with one setdefault pass and one slice per slab; anything
        else (a key already present or repeated, a full map, free slots to reuse) takes the
        per-element path, which stops at the first failure as a batch does.
        """
        split = self._split(keys, count)
        index = self._index
        if self._plain_values and not self._free and len(index) + count <= self.max_entries \
                and self._room_for(count):
            first = len(self._used)
            before = len(index)
            # setdefault inserts only absent keys, one lookup each, in C
            deque(map(index.setdefault, split, range(first, first + count)), maxlen=0)
            if len(index) == before + count:  # every key new, none repeated
                self._keyslab.write_run(first, keys)
                self._slab.write_run(first, values)
                self._used.extend(b"\x01" * count)
                self._bulk_inserted(first, count)
                if self._slots_dirty is not None:
                    self._slots_dirty.mark_run(first, count)
                return count
            for i, key in enumerate(split):  # undo: drop what this call inserted
                if index.get(key) == first + i:
                    del index[key]
        size = self.values.slot_size
        from_slot = self.values.from_slot
        done = 0
        try:
            for i, key in enumerate(split):
                self._update(key, from_slot(values[i * size:(i + 1) * size]), UpdateFlags.ANY)
                done += 1
        except ErrnoError as exc:
            if not user:
                raise
            raise BatchError(exc.errno, f"entry {done}: {exc.detail}", count=done) from None
        return done

    def _room_for(self, count: int) -> bool:
        """Whether ``count`` new keys fit without evicting (LRU lists have their own size)."""
        return True

    def _bulk_inserted(self, first: int, count: int) -> None:
        """New keys went into slots ``first .. first + count - 1`` with one bulk insert (LRU
        maps append those slots to their list)."""

    def _lookup_columns(self, cursor: bytes | None, count: int) -> ColumnBatch:
        slot = 0 if cursor is None else int.from_bytes(cursor, "little")
        found, keys, values, after = self._gather(slot, count)
        top = len(self._used)
        done = found < count
        if done:
            after = max(after, slot, top)
        return ColumnBatch(found, keys, self.values.uapi_blob(values, found),
                           after.to_bytes(4, "little"), done)

    def _lookup_batch(self, cursor: bytes | None, count: int) -> LookupBatch:
        columns = self._lookup_columns(cursor, count)
        return LookupBatch(columns.pairs(self.key_size, self.uapi_value_size),
                           columns.cursor, columns.done)

    # -- dirty slots -------------------------------------------------------------------------

    def take_dirty(self) -> set[bytes]:
        dirty = self._take_dirty_slots()
        used = self._used
        keys = {self._slot_key(s) for s in dirty.slots() if s < len(used) and used[s]}
        return keys | dirty.deleted

    def take_dirty_chunk(self) -> tuple[Chunk, bytes]:
        dirty = self._take_dirty_slots()
        used = self._used
        slots = [s for s in dirty.slots() if s < len(used) and used[s]]
        keyslab, slab = self._keyslab, self._slab
        keys = b"".join([keyslab.read(s) for s in slots])
        values = b"".join([slab.read(s) for s in slots])
        index = self._index
        gone = b"".join(sorted(k for k in dirty.deleted if k not in index))
        return Chunk(len(slots), keys, values), gone

    def release(self) -> None:
        self._views.clear()


def _splitter(size: int) -> Callable[[bytes, int], Sequence[bytes]]:
    """Cut a blob of ``count`` keys of ``size`` bytes into bytes objects in one C call (a
    struct of ``count`` byte-string fields, kept for the last few counts seen)."""
    formats: dict[int, struct.Struct] = {}

    def split(blob: bytes, count: int) -> Sequence[bytes]:
        if size == 0:
            return [b""] * count
        unpack = formats.get(count)
        if unpack is None:
            if len(formats) >= 4:
                formats.clear()
            unpack = formats[count] = struct.Struct(f"{size}s" * count)
        return unpack.unpack_from(blob)
    return split


class PercpuHashMap(HashMap):
    """BPF_MAP_TYPE_PERCPU_HASH: one copy of the value per CPU."""
