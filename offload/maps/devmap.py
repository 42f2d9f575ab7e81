"""BPF_MAP_TYPE_DEVMAP and BPF_MAP_TYPE_DEVMAP_HASH (kernel/bpf/devmap.c): redirect targets.

A value is ``struct bpf_devmap_val``: a u32 ifindex, optionally followed by an int program fd
(value_size 4 or 8). The program must be an XDP program loaded with expected attach type
AttachType.XDP_DEVMAP; it runs on frames redirected through the entry. Lookups report the program
*id* in that field, as the kernel does. Any problem with the ifindex or the program is EINVAL.
Programs may only read devmaps (the kernel forces BPF_F_RDONLY_PROG) and use them in
bpf_redirect_map(); ``target()`` is what the device's redirect follows.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ErrnoError
from ..uapi import AttachType, MapFlags, MapType, ProgType, UpdateFlags
from .array import next_index
from .base import Map
from .hash import HashMap
from .resolver import ProgramHandle
from .spec import MapSpec

DEV_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE | MapFlags.RDONLY | MapFlags.WRONLY)


@dataclass(frozen=True, slots=True)
class DevmapTarget:
    """Where a redirect through one devmap entry goes, and the program to run first."""

    ifindex: int
    program: ProgramHandle | None


def check_devmap_spec(spec: MapSpec) -> None:
    """``dev_map_alloc_check()``/``dev_map_init_map()``."""
    problems = []
    if spec.max_entries == 0:
        problems.append("max_entries must be at least 1")
    if spec.key_size != 4:
        problems.append(f"key_size must be 4, not {spec.key_size}")
    if spec.value_size not in (4, 8):
        problems.append(f"value_size must be 4 (ifindex) or 8 (struct bpf_devmap_val), not "
                        f"{spec.value_size}")
    if spec.flags & ~DEV_CREATE_FLAG_MASK:
        problems.append(f"map_flags {spec.flags & ~DEV_CREATE_FLAG_MASK:#x} are not valid")
    if spec.type == MapType.DEVMAP_HASH and spec.max_entries > 1 << 31:
        problems.append("max_entries may be at most 2^31")
    if problems:
        raise ErrnoError(errno.EINVAL, f"Invalid {spec.type.name} map: " + "; ".join(problems) + ".")


class _Targets:
    """Turns uAPI values into referenced targets for one devmap (shared by both types)."""

    def __init__(self, owner: Map) -> None:
        self.owner = owner

    def parse(self, value: bytes) -> tuple[int, int]:
        ifindex = int.from_bytes(value[:4], "little")
        fd = int.from_bytes(value[4:8], "little", signed=True) if len(value) == 8 else 0
        return ifindex, fd

    def resolve(self, ifindex: int, fd: int) -> tuple[bytearray, ProgramHandle | None]:
        """The stored value and a new program reference for a non-zero ifindex."""
        resolver = self.owner.resolver
        if not resolver.has_interface(ifindex):
            raise ErrnoError(errno.EINVAL, f"No network interface with ifindex {ifindex}.")
        program = None
        if fd > 0:
            try:
                program = resolver.acquire_program(fd)
            except ErrnoError as exc:
                raise ErrnoError(errno.EINVAL, f"Program fd {fd} is unusable: {exc.detail}") from None
            if program.prog_type != ProgType.XDP or \
                    program.expected_attach_type != AttachType.XDP_DEVMAP:
                resolver.release(program)
                raise ErrnoError(errno.EINVAL, f"Program fd {fd} is not an XDP program loaded "
                                               "with expected attach type AttachType.XDP_DEVMAP.")
        stored = bytearray(self.owner.value_size)
        stored[:4] = ifindex.to_bytes(4, "little")
        if program is not None and len(stored) == 8:
            stored[4:8] = (program.id & 0xFFFFFFFF).to_bytes(4, "little")
        return stored, program

    def release(self, program: ProgramHandle | None) -> None:
        if program is not None:
            self.owner.resolver.release(program)


class DevMap(Map):
    """An array of redirect targets; an empty slot (ifindex 0) is simply absent."""

    batch_lookup = batch_update = batch_delete = False
    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._slots: dict[int, tuple[bytearray, ProgramHandle | None]] = {}
        self._targets = _Targets(self)

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_devmap_spec(spec)

    @classmethod
    def created_flags(cls, flags: int) -> int:
        return flags | MapFlags.RDONLY_PROG

    def _count(self) -> int:
        return len(self._slots)

    def _lookup(self, key: bytes) -> bytes | None:
        slot = self._slots.get(int.from_bytes(key, "little"))
        return None if slot is None else bytes(slot[0])

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"Index {index} is past the end of the devmap "
                                          f"(max_entries {self.max_entries}).")
        if flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "Devmap slots always exist: BPF_NOEXIST cannot succeed.")
        ifindex, fd = self._targets.parse(value)
        if ifindex == 0:
            if fd > 0:
                raise ErrnoError(errno.EINVAL, "A program fd needs a non-zero ifindex.")
            old = self._slots.pop(index, None)
        else:
            old = self._slots.get(index)
            self._slots[index] = self._targets.resolve(ifindex, fd)
        if old is not None:
            self._targets.release(old[1])
        self._touch(key)

    def _delete(self, key: bytes) -> None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.EINVAL, f"Index {index} is past the end of the devmap "
                                           f"(max_entries {self.max_entries}).")
        old = self._slots.pop(index, None)
        if old is not None:
            self._targets.release(old[1])
            self._touch(key)

    def _next_key(self, key: bytes | None) -> bytes | None:
        return next_index(key, self.max_entries)

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        slot = self._slots.get(int.from_bytes(key, "little"))
        return None if slot is None else (key, slot[0])

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        for index in sorted(self._slots):
            slot = self._slots.get(index)
            if slot is not None:
                yield index.to_bytes(4, "little"), bytes(slot[0])

    def target(self, key: bytes) -> DevmapTarget | None:
        """The redirect target at ``key`` (bpf_redirect_map), or None for an empty slot."""
        slot = self._slots.get(int.from_bytes(self._key(key), "little"))
        if slot is None:
            return None
        return DevmapTarget(int.from_bytes(slot[0][:4], "little"), slot[1])

    def release(self) -> None:
        slots, self._slots = self._slots, {}
        for _, program in slots.values():
            self._targets.release(program)


class DevMapHash(HashMap):
    """Redirect targets under arbitrary u32 keys (usually the ifindex itself)."""

    batch_lookup = batch_update = batch_delete = False
    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._programs: dict[bytes, ProgramHandle | None] = {}
        self._targets = _Targets(self)

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_devmap_spec(spec)

    @classmethod
    def created_flags(cls, flags: int) -> int:
        return flags | MapFlags.RDONLY_PROG

    @property
    def batch_cursor_size(self) -> int:
        return self.key_size

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        """``__dev_map_hash_update_elem()``: BPF_EXIST on a missing key inserts it."""
        ifindex, fd = self._targets.parse(value)
        if ifindex == 0:
            raise ErrnoError(errno.EINVAL, "A devmap hash entry needs a non-zero ifindex.")
        slot = self._index.get(key)
        if slot is not None and flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "An element with this key already exists "
                                           "(BPF_NOEXIST).")
        stored, program = self._targets.resolve(ifindex, fd)
        if slot is None:
            try:
                self._insert(key, stored, 0)
            except ErrnoError:
                self._targets.release(program)
                raise
        else:
            self._write_slot(slot, stored)
            self._targets.release(self._programs.get(key))
            self._touch(key)
        self._programs[key] = program

    def _remove(self, key: bytes) -> int:
        slot = super()._remove(key)
        self._targets.release(self._programs.pop(key, None))
        return slot

    def target(self, key: bytes) -> DevmapTarget | None:
        """The redirect target at ``key`` (bpf_redirect_map), or None."""
        raw = self._key(key)
        slot = self._index.get(raw)
        if slot is None:
            return None
        return DevmapTarget(int.from_bytes(self._slab.read(slot)[:4], "little"),
                            self._programs.get(raw))

    def release(self) -> None:
        for key in list(self._index):
            self._remove(key)
