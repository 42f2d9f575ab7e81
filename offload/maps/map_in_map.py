"""BPF_MAP_TYPE_ARRAY_OF_MAPS and BPF_MAP_TYPE_HASH_OF_MAPS (kernel/bpf/map_in_map.c).

The outer map's values are references to inner maps, which must all match the inner template
given at creation (``MapSpec.inner``): same type, key and value size, flags, and max_entries
unless the template has BPF_F_INNER_MAP (``bpf_map_meta_equal()``). Lookups through the uAPI
report the inner map's id; a program's lookup yields the inner map itself (``inner_map``).
Programs cannot update the outer map.
"""

from __future__ import annotations

import errno

from ..errors import ErrnoError
from ..uapi import MapFlags, MapType
from .base import Map, enotsupp
from .fd_array import FdArrayMap, check_fd_array_spec
from .hash import HashMap, check_hash_entries, check_hash_spec
from .resolver import MapHandle
from .spec import MapSpec

NOT_INNER = frozenset({MapType.PROG_ARRAY})  # no map_meta_equal: ENOTSUPP as an inner map

#: A reference on an inner map, as the device's resolver hands it out.
InnerHandle = MapHandle[Map]


def check_inner_template(spec: MapSpec) -> None:
    """What ``bpf_map_meta_alloc()`` refuses about the inner template itself."""
    inner = spec.inner
    if not isinstance(inner, MapSpec):
        raise ErrnoError(errno.EINVAL, f"{spec.type.name} maps need an inner map template "
                                       "(inner_map_fd).")
    if MapType(inner.type).is_map_in_map:
        raise ErrnoError(errno.EINVAL, "Maps of maps nest only one level deep.")
    if inner.type in NOT_INNER:
        raise enotsupp(f"{MapType(inner.type).name} maps cannot be inner maps.")


def acquire_inner(outer: Map, fd: int) -> InnerHandle:
    handle = outer.resolver.acquire_map(fd)
    template = outer.spec.inner
    inner = handle.map
    assert template is not None
    same = (inner.spec.type == template.type and inner.key_size == template.key_size
            and inner.value_size == template.value_size
            and int(inner.flags) == int(type(inner).created_flags(template.flags))
            and (template.flags & MapFlags.INNER_MAP or inner.max_entries == template.max_entries))
    if not same:
        outer.resolver.release(handle)
        raise ErrnoError(errno.EINVAL, f"Map fd {fd} does not match the inner map template "
                                       "(type, key_size, value_size, map_flags, max_entries).")
    return handle


class ArrayOfMaps(FdArrayMap):
    """An array of inner-map references."""

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_fd_array_spec(spec)

    def _acquire(self, fd: int) -> InnerHandle:
        return acquire_inner(self, fd)

    def inner_map(self, key: bytes) -> Map | None:
        """What a program's bpf_map_lookup_elem() returns: the inner map, or None."""
        handle = self.handle_at(key)
        return None if handle is None else handle.map  # type: ignore[attr-defined]


class HashOfMaps(HashMap):
    """Inner-map references under arbitrary keys; update flags work as for hash maps."""

    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._handles: dict[bytes, InnerHandle] = {}

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        if spec.value_size != 4:
            raise ErrnoError(errno.EINVAL, "HASH_OF_MAPS values are u32 map fds: value_size "
                                           f"must be 4, not {spec.value_size}.")
        check_hash_spec(spec)
        check_hash_entries(spec.max_entries)

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        handle = acquire_inner(self, int.from_bytes(value, "little"))
        stored = bytearray((handle.id & 0xFFFFFFFF).to_bytes(4, "little"))
        try:
            slot = self._check_flags(key, flags)
            if slot is None:
                self._insert(key, stored, 0)
            else:
                self._write_slot(slot, stored)
                self.resolver.release(self._handles[key])
                self._touch(key)
        except ErrnoError:
            self.resolver.release(handle)
            raise
        self._handles[key] = handle

    def _remove(self, key: bytes) -> int:
        slot = super()._remove(key)
        handle = self._handles.pop(key, None)
        if handle is not None:
            self.resolver.release(handle)
        return slot

    def _ref(self, key: bytes, cpu: int) -> tuple[int, memoryview] | None:
        raise ErrnoError(errno.EINVAL, "A map of maps yields inner maps: use inner_map().")

    def inner_map(self, key: bytes) -> Map | None:
        """What a program's bpf_map_lookup_elem() returns: the inner map, or None."""
        handle = self._handles.get(self._key(key))
        return None if handle is None else handle.map

    def release(self) -> None:
        for key in list(self._index):
            self._remove(key)

