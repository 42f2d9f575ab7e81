"""BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY (kernel/bpf/arraymap.c).

Every index below ``max_entries`` always exists and starts zeroed, so updates never allocate
(NOEXIST is EEXIST, an index past the end is E2BIG) and delete is EINVAL. Values sit in a slab
(``slab.py``) whose segments are made on first write or first program reference, so a large,
mostly untouched array costs memory only for what is used; reads of untouched elements see
zeros, as in the kernel. The index is the slot, so a chunk of consecutive indices is a slice.
"""

from __future__ import annotations

import errno
import sys
from array import array
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import MapFlags, MapType, UpdateFlags
from .base import BatchError, Chunk, ColumnBatch
from .dirty import SlotDirty, SlotTrackedMap
from .slab import Slab
from .spec import MapSpec
from .values import round8

INT_MAX = (1 << 31) - 1
PCPU_MIN_UNIT_SIZE = 32 << 10  # bound on one CPU's copy of a per-CPU value
# Plain ints: the complement of an IntFlag stays inside the defined bits.
ACCESS_MASK = int(MapFlags.RDONLY | MapFlags.WRONLY | MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG)
ARRAY_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.MMAPABLE | ACCESS_MASK
                             | MapFlags.PRESERVE_ELEMS | MapFlags.INNER_MAP)


def next_index(key: bytes | None, max_entries: int) -> bytes | None:
    """BPF_MAP_GET_NEXT_KEY of every map indexed by u32 (array_map_get_next_key): no key or
    one past the end starts at 0, the last index has no successor."""
    index = (1 << 32) - 1 if key is None else int.from_bytes(key, "little")
    if index >= max_entries:
        return bytes(4)
    if index == max_entries - 1:
        return None
    return (index + 1).to_bytes(4, "little")


def check_array_spec(spec: MapSpec) -> None:
    """``array_map_alloc_check()``: shared by every array-backed map type."""
    percpu = spec.type == MapType.PERCPU_ARRAY
    problems = []
    if spec.max_entries == 0:
        problems.append("max_entries must be at least 1")
    if spec.key_size != 4:
        problems.append(f"key_size must be 4 (a u32 index), not {spec.key_size}")
    if spec.value_size == 0:
        problems.append("value_size must not be 0")
    if spec.flags & ~ARRAY_CREATE_FLAG_MASK:
        problems.append(f"map_flags {spec.flags & ~ARRAY_CREATE_FLAG_MASK:#x} are not valid for "
                        "arrays")
    if percpu and spec.flags & MapFlags.NUMA_NODE:
        problems.append("BPF_F_NUMA_NODE is not valid for per-CPU arrays")
    if spec.type != MapType.ARRAY and spec.flags & (MapFlags.MMAPABLE | MapFlags.INNER_MAP):
        problems.append("BPF_F_MMAPABLE and BPF_F_INNER_MAP are only valid for BPF_MAP_TYPE_ARRAY")
    if spec.type != MapType.PERF_EVENT_ARRAY and spec.flags & MapFlags.PRESERVE_ELEMS:
        problems.append("BPF_F_PRESERVE_ELEMS is only valid for perf event arrays")
    if problems:
        raise ErrnoError(errno.EINVAL, f"Invalid {spec.type.name} map: " + "; ".join(problems) + ".")
    if spec.value_size > INT_MAX:
        raise ErrnoError(errno.E2BIG, f"value_size {spec.value_size} is larger than INT_MAX.")
    if percpu and round8(spec.value_size) > PCPU_MIN_UNIT_SIZE:
        raise ErrnoError(errno.E2BIG, f"value_size {spec.value_size} exceeds the "
                                      f"{PCPU_MIN_UNIT_SIZE}-byte per-CPU unit.")


def index_keys(first: int, count: int) -> bytes:
    """The u32 little-endian keys ``first .. first + count - 1`` back to back, built in C."""
    keys = array("I", range(first, first + count))
    if sys.byteorder != "little":
        keys.byteswap()
    return keys.tobytes()


class ArrayMap(SlotTrackedMap):
    """A fixed array of zero-initialised values indexed by a little-endian u32 key."""

    batch_delete = False  # arrays have no map_delete_batch: ENOTSUPP

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._slab = Slab(self.values.slot_size, self.max_entries)
        self._slots_dirty: SlotDirty | None = None
        self._init_views()

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_array_spec(spec)

    def _in_range(self, key: bytes, flags: int) -> int:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"Index {index} is past the end of the array "
                                          f"(max_entries {self.max_entries}).")
        if flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "Array elements always exist: BPF_NOEXIST cannot "
                                           "succeed.")
        return index

    def _mark(self, index: int) -> None:
        if self._slots_dirty is not None:
            self._slots_dirty.mark(index)

    def _count(self) -> int:
        return self.max_entries

    def _lookup(self, key: bytes) -> bytes | None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            return None
        return self.values.from_slot(self._slab.read(index))

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        index = self._in_range(key, flags)
        self._slab.write(index, self.values.to_slot(value))
        self._mark(index)

    def _program_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> None:
        index = self._in_range(key, flags)
        self._slab.write(index, value, self.values.program_offset(cpu))
        self._mark(index)

    def _delete(self, key: bytes) -> None:
        raise ErrnoError(errno.EINVAL, "Array elements cannot be deleted: they always exist.")

    def _next_key(self, key: bytes | None) -> bytes | None:
        return next_index(key, self.max_entries)

    def _ref(self, key: bytes, cpu: int) -> tuple[int, memoryview] | None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            return None
        view = self._views.get(index * self._view_copies + cpu % self._view_copies)
        if view is None:
            view = self._new_view(index, cpu)
        return index, view

    def _mark_ref(self, token: object) -> None:
        if self._slots_dirty is not None:
            self._slots_dirty.mark(token)  # type: ignore[arg-type]

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        from_slot, read = self.values.from_slot, self._slab.read
        for index in range(self.max_entries):
            yield index.to_bytes(4, "little"), from_slot(read(index))

    def _chunks(self, limit: int) -> Iterator[Chunk]:
        for first in range(0, self.max_entries, limit):
            count = min(limit, self.max_entries - first)
            yield Chunk(count, index_keys(first, count), self._slab.read_run(first, count))

    def _lookup_columns(self, cursor: bytes | None, count: int) -> ColumnBatch:
        """``generic_map_lookup_batch()`` over indices: from the index after ``cursor``."""
        first = 0 if cursor is None else int.from_bytes(cursor, "little") + 1
        if cursor is not None and first > self.max_entries:
            first = 0  # a cursor past the end restarts, as get_next_key does
        n = max(0, min(count, self.max_entries - first))
        done = n < count
        values = self.values.uapi_blob(self._slab.read_run(first, n), n) if n else b""
        return ColumnBatch(n, index_keys(first, n), values,
                           (first + n - 1).to_bytes(4, "little") if n else None, done)

    def _import(self, count: int, keys: bytes, values: bytes, *, user: bool) -> int:
        first = int.from_bytes(keys[:4], "little") if count else 0
        if count and first + count <= self.max_entries and keys == index_keys(first, count):
            self._slab.write_run(first, values)
            if self._slots_dirty is not None:
                self._slots_dirty.mark_run(first, count)
            return count
        size = self.values.slot_size
        for i in range(count):
            try:
                index = self._in_range(keys[i * 4:(i + 1) * 4], UpdateFlags.ANY)
            except ErrnoError as exc:
                if not user:
                    raise
                raise BatchError(exc.errno, f"entry {i}: {exc.detail}", count=i) from None
            self._slab.write(index, values[i * size:(i + 1) * size])
            self._mark(index)
        return count

    # -- dirty slots -------------------------------------------------------------------------

    def take_dirty(self) -> set[bytes]:
        return {s.to_bytes(4, "little") for s in self._take_dirty_slots().slots()}

    def take_dirty_chunk(self) -> tuple[Chunk, bytes]:
        slots = self._take_dirty_slots().slots()
        read = self._slab.read
        return Chunk(len(slots), b"".join([s.to_bytes(4, "little") for s in slots]),
                     b"".join([read(s) for s in slots])), b""

    def release(self) -> None:
        self._views.clear()


class PercpuArrayMap(ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY: one copy per CPU; the value layout does the difference."""
