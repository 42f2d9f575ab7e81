"""BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY (kernel/bpf/arraymap.c).

Every index below ``max_entries`` always exists and starts zeroed, so updates never allocate
(NOEXIST is EEXIST, an index past the end is E2BIG) and delete is EINVAL. Elements are
materialised on first write or first program reference, so a large, mostly untouched array
costs memory only for what is used; reads of untouched elements see zeros, as in the kernel.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import MapFlags, MapType, UpdateFlags
from .base import Map
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


class ArrayMap(Map):
    """A fixed array of zero-initialised values indexed by a little-endian u32 key."""

    batch_delete = False  # arrays have no map_delete_batch: ENOTSUPP

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._elements: dict[int, bytearray | list[bytearray]] = {}

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_array_spec(spec)

    def _slot(self, index: int):  # noqa: ANN202 - stored value of the layout
        stored = self._elements.get(index)
        if stored is None:
            stored = self._elements[index] = self.values.zero()
        return stored

    def _in_range(self, key: bytes, flags: int) -> int:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"Index {index} is past the end of the array "
                                          f"(max_entries {self.max_entries}).")
        if flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "Array elements always exist: BPF_NOEXIST cannot "
                                           "succeed.")
        return index

    def _count(self) -> int:
        return self.max_entries

    def _lookup(self, key: bytes) -> bytes | None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            return None
        stored = self._elements.get(index)
        return bytes(self.uapi_value_size) if stored is None else self.values.read(stored)

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        index = self._in_range(key, flags)
        self.values.write(self._slot(index), value)
        self._touch(key)

    def _program_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> None:
        index = self._in_range(key, flags)
        self.values.write_from_program(self._slot(index), value, cpu)
        self._touch(key)

    def _delete(self, key: bytes) -> None:
        raise ErrnoError(errno.EINVAL, "Array elements cannot be deleted: they always exist.")

    def _next_key(self, key: bytes | None) -> bytes | None:
        return next_index(key, self.max_entries)

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            return None
        return key, self.values.cpu_buffer(self._slot(index), cpu)

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        zero = bytes(self.uapi_value_size)
        read = self.values.read
        for index in range(self.max_entries):
            stored = self._elements.get(index)
            yield index.to_bytes(4, "little"), zero if stored is None else read(stored)


class PercpuArrayMap(ArrayMap):
    """BPF_MAP_TYPE_PERCPU_ARRAY: one copy per CPU; the value layout does the difference."""
