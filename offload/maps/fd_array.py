"""Arrays whose values are references to other objects (kernel/bpf/arraymap.c, "fd_array").

PROG_ARRAY and ARRAY_OF_MAPS take an fd in each uAPI update, keep a counted reference on the
object for as long as the slot holds it, and report the object's *id* on lookup. Updates only
accept BPF_ANY; an index past the end is E2BIG for update and delete; deleting an empty slot is
ENOENT. The family decides what an fd may name (``_acquire``).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import MapFlags, UpdateFlags
from .array import check_array_spec, next_index
from .base import Map
from .spec import MapSpec


def check_fd_array_spec(spec: MapSpec) -> None:
    """``fd_array_map_alloc_check()``."""
    if spec.value_size != 4:
        raise ErrnoError(errno.EINVAL, f"{spec.type.name} values are u32 file descriptors: "
                                       f"value_size must be 4, not {spec.value_size}.")
    if spec.flags & (MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG):
        raise ErrnoError(errno.EINVAL, "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG are not valid "
                                       f"for {spec.type.name} maps.")
    check_array_spec(spec)


class FdArrayMap(Map):
    """Slots holding references; subclasses say what an fd may name."""

    batch_delete = False
    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._slots: dict[int, object] = {}

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_fd_array_spec(spec)

    # -- what subclasses provide -------------------------------------------------------------

    def _acquire(self, fd: int) -> object:
        """A new reference for ``fd`` (ErrnoError if it names nothing usable here)."""
        raise NotImplementedError

    def _object_id(self, handle: object) -> int:
        return handle.id  # type: ignore[attr-defined]

    # -- hooks -------------------------------------------------------------------------------

    def _index_of(self, key: bytes, what: str) -> int:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"Cannot {what} index {index}: it is past the end of "
                                          f"the array (max_entries {self.max_entries}).")
        return index

    def _count(self) -> int:
        return len(self._slots)

    def _lookup(self, key: bytes) -> bytes | None:
        handle = self._slots.get(int.from_bytes(key, "little"))
        if handle is None:
            return None
        return (self._object_id(handle) & 0xFFFFFFFF).to_bytes(4, "little")

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        if flags != UpdateFlags.ANY:
            raise ErrnoError(errno.EINVAL, f"{self.spec.type.name} updates only accept BPF_ANY.")
        index = self._index_of(key, "update")
        handle = self._acquire(int.from_bytes(value, "little"))
        old = self._slots.get(index)
        self._slots[index] = handle
        if old is not None:
            self.resolver.release(old)  # type: ignore[arg-type]
        self._touch(key)

    def _delete(self, key: bytes) -> None:
        index = self._index_of(key, "delete")
        old = self._slots.pop(index, None)
        if old is None:
            raise ErrnoError(errno.ENOENT, f"Slot {index} is empty.")
        self.resolver.release(old)  # type: ignore[arg-type]
        self._touch(key)

    def _next_key(self, key: bytes | None) -> bytes | None:
        return next_index(key, self.max_entries)

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        raise ErrnoError(errno.EINVAL, f"cannot pass map_type {int(self.spec.type)} into func "
                                       "bpf_map_lookup_elem")

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        for index in sorted(self._slots):
            handle = self._slots.get(index)
            if handle is not None:
                yield index.to_bytes(4, "little"), \
                    (self._object_id(handle) & 0xFFFFFFFF).to_bytes(4, "little")

    def handle_at(self, key: bytes | int) -> object | None:
        """The object in a slot (for the device: tail calls, inner map lookups), or None."""
        if isinstance(key, int) and not isinstance(key, bool):
            return self._slots.get(key) if 0 <= key < self.max_entries else None
        return self._slots.get(int.from_bytes(self._key(key), "little"))

    def release(self) -> None:
        """Drop every reference (the map is freed, or its last user reference went away)."""
        slots, self._slots = self._slots, {}
        for handle in slots.values():
            self.resolver.release(handle)  # type: ignore[arg-type]
