"""BPF_MAP_TYPE_XSKMAP (net/xdp/xskmap.c): redirect frames to AF_XDP sockets.

In the kernel a slot holds an AF_XDP socket bound to one receive queue, and the uAPI value is
the socket's fd. On the device a socket is what it is bound to: the value is a u32 receive
queue of the guest, and bpf_redirect_map() delivers the frame to that queue. The device
checks the queue exists (EINVAL otherwise: the device has no socket to bind there).

The rules are ``xsk_map_alloc()``/``xsk_map_update_elem()``'s otherwise: key_size and
value_size 4, max_entries at least 1, only BPF_F_NUMA_NODE, BPF_F_RDONLY and BPF_F_WRONLY;
updates take BPF_ANY, BPF_NOEXIST (EEXIST on a filled slot) or BPF_EXIST (ENOENT on an empty
one), an index past the end is E2BIG; deleting is EINVAL past the end and succeeds on an
empty slot; user-space lookups are EOPNOTSUPP, as in the kernel.

A program's bpf_map_lookup_elem() gets the kernel's ``struct bpf_xdp_sock``, whose only field
is the u32 ``queue_id``: here the read-only 4-byte value of the slot.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import MapFlags, UpdateFlags
from .array import next_index
from .base import Map
from .spec import MapSpec

XSK_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY)


def check_xskmap_spec(spec: MapSpec) -> None:
    """``xsk_map_alloc()``'s checks."""
    problems = []
    if spec.max_entries == 0:
        problems.append("max_entries must be at least 1")
    if spec.key_size != 4:
        problems.append(f"key_size must be 4, not {spec.key_size}")
    if spec.value_size != 4:
        problems.append(f"value_size must be 4 (a socket: here its receive queue), not "
                        f"{spec.value_size}")
    if spec.flags & ~XSK_CREATE_FLAG_MASK:
        problems.append(f"map_flags {spec.flags & ~XSK_CREATE_FLAG_MASK:#x} are not valid")
    if problems:
        raise ErrnoError(errno.EINVAL, f"Invalid {spec.type.name} map: " + "; ".join(problems) + ".")


class XskMap(Map):
    """Index -> the guest receive queue a socket is bound to; an empty slot is absent."""

    batch_lookup = batch_update = batch_delete = False
    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._slots: dict[int, bytearray] = {}

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_xskmap_spec(spec)

    @property
    def program_writable(self) -> bool:
        """Never: a program reads the socket (its queue id), it does not write it."""
        return False

    def _count(self) -> int:
        return len(self._slots)

    def _lookup(self, key: bytes) -> bytes | None:
        raise ErrnoError(errno.EOPNOTSUPP, "AF_XDP socket slots cannot be read from user "
                                           "space.")

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"Index {index} is past the end of the xskmap "
                                          f"(max_entries {self.max_entries}).")
        queue = int.from_bytes(value, "little")
        if not self.resolver.has_rx_queue(queue):
            raise ErrnoError(errno.EINVAL, f"The device has no guest receive queue {queue} to "
                                           "bind a socket to.")
        old = self._slots.get(index)
        if old is not None and old == value:
            return
        if old is not None and flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "The slot holds a socket already (BPF_NOEXIST).")
        if old is None and flags == UpdateFlags.EXIST:
            raise ErrnoError(errno.ENOENT, "The slot holds no socket (BPF_EXIST).")
        if old is None:
            self._slots[index] = bytearray(value)
        else:
            old[:] = value  # the buffer a program's pointer may name stays the same
        self._touch(key)

    def _delete(self, key: bytes) -> None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.EINVAL, f"Index {index} is past the end of the xskmap "
                                           f"(max_entries {self.max_entries}).")
        if self._slots.pop(index, None) is not None:
            self._touch(key)

    def _next_key(self, key: bytes | None) -> bytes | None:
        return next_index(key, self.max_entries)

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        slot = self._slots.get(int.from_bytes(key, "little"))
        return None if slot is None else (key, slot)

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        for index in sorted(self._slots):
            slot = self._slots.get(index)
            if slot is not None:
                yield index.to_bytes(4, "little"), bytes(slot)

    def _exact(self, key: bytes) -> tuple[bytes, bytes] | None:
        slot = self._slots.get(int.from_bytes(key, "little"))
        return None if slot is None else (key, bytes(slot))

    def queue_at(self, index: int) -> int | None:
        """The receive queue of the socket at ``index`` (bpf_redirect_map), or None."""
        slot = self._slots.get(index)
        return None if slot is None else int.from_bytes(slot, "little")
