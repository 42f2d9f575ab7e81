"""BPF_MAP_TYPE_CPUMAP (kernel/bpf/cpumap.c): redirect frames to another CPU's queue.

The key is a CPU; the value ``struct bpf_cpumap_val``: a u32 queue size, optionally followed
by an int program fd (value_size 4 or 8). On the device each entry is a worker queue of that
CPU holding at most ``qsize`` frames; bpf_redirect_map() puts a frame there and the device's
worker takes it on to the guest, running the entry's program first if it has one (an XDP
program loaded with expected attach type AttachType.XDP_CPUMAP, whose id lookups report).

The rules are ``cpu_map_alloc()``/``cpu_map_update_elem()``'s, errno for errno: key_size 4,
value_size 4 or 8, max_entries from 1 to NR_CPUS (E2BIG beyond), only BPF_F_NUMA_NODE;
updates take BPF_ANY or BPF_EXIST (BPF_NOEXIST is always EEXIST), an index past the end is
E2BIG, a queue size over 16384 EOVERFLOW, a CPU the device does not have ENODEV, a queue
size of 0 empties the slot, and a program fd the kernel cannot use ENOMEM (the entry's
allocation fails there). Deleting is EINVAL past the end and succeeds on an empty slot.
Programs cannot look entries up; they only redirect through them.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import ErrnoError
from ..uapi import AttachType, MapFlags, ProgType, UpdateFlags
from .array import next_index
from .base import Map
from .resolver import ProgramHandle
from .spec import MapSpec

#: The kernel's NR_CPUS bound on max_entries, for this device: the most CPUs it can have.
NR_CPUS = 8192
CPUMAP_MAX_QSIZE = 16384
CPU_CREATE_FLAG_MASK = int(MapFlags.NUMA_NODE)


@dataclass(frozen=True, slots=True)
class CpumapTarget:
    """Where a redirect through one cpumap entry goes: a CPU's worker queue."""

    cpu: int
    qsize: int
    program: ProgramHandle | None


def check_cpumap_spec(spec: MapSpec) -> None:
    """``cpu_map_alloc()``'s checks."""
    problems = []
    if spec.max_entries == 0:
        problems.append("max_entries must be at least 1")
    if spec.key_size != 4:
        problems.append(f"key_size must be 4 (a CPU number), not {spec.key_size}")
    if spec.value_size not in (4, 8):
        problems.append(f"value_size must be 4 (qsize) or 8 (struct bpf_cpumap_val), not "
                        f"{spec.value_size}")
    if spec.flags & ~CPU_CREATE_FLAG_MASK:
        problems.append(f"map_flags {spec.flags & ~CPU_CREATE_FLAG_MASK:#x} are not valid (only "
                        "BPF_F_NUMA_NODE)")
    if problems:
        raise ErrnoError(errno.EINVAL, f"Invalid {spec.type.name} map: " + "; ".join(problems) + ".")
    if spec.max_entries > NR_CPUS:
        raise ErrnoError(errno.E2BIG, f"max_entries {spec.max_entries} is more CPUs than "
                                      f"NR_CPUS ({NR_CPUS}).")


class CpuMap(Map):
    """CPU -> (queue size, program); an empty slot is absent."""

    batch_lookup = batch_update = batch_delete = False
    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self._slots: dict[int, tuple[bytearray, ProgramHandle | None]] = {}

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_cpumap_spec(spec)

    def _count(self) -> int:
        return len(self._slots)

    def _lookup(self, key: bytes) -> bytes | None:
        slot = self._slots.get(int.from_bytes(key, "little"))
        return None if slot is None else bytes(slot[0])

    def _acquire(self, fd: int) -> ProgramHandle:
        try:
            program = self.resolver.acquire_program(fd)
        except ErrnoError as exc:
            raise ErrnoError(errno.ENOMEM, f"Program fd {fd} is unusable ({exc.detail}); the "
                                           "kernel fails the entry's allocation: ENOMEM.") from None
        if program.prog_type != ProgType.XDP or program.expected_attach_type != AttachType.XDP_CPUMAP:
            self.resolver.release(program)
            raise ErrnoError(errno.ENOMEM, f"Program fd {fd} is not an XDP program loaded with "
                                           "expected attach type AttachType.XDP_CPUMAP; the kernel "
                                           "fails the entry's allocation: ENOMEM.")
        return program

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"CPU {index} is past the end of the cpumap "
                                          f"(max_entries {self.max_entries}).")
        if flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "Cpumap slots always exist: BPF_NOEXIST cannot "
                                           "succeed.")
        qsize = int.from_bytes(value[:4], "little")
        fd = int.from_bytes(value[4:8], "little", signed=True) if len(value) == 8 else 0
        if qsize > CPUMAP_MAX_QSIZE:
            raise ErrnoError(errno.EOVERFLOW, f"qsize {qsize} is over the limit of "
                                              f"{CPUMAP_MAX_QSIZE} frames.")
        if index >= self.ncpus:
            raise ErrnoError(errno.ENODEV, f"CPU {index} does not exist: the device has "
                                           f"{self.ncpus} CPU(s).")
        if qsize == 0:
            old = self._slots.pop(index, None)
        else:
            program = self._acquire(fd) if fd > 0 else None
            stored = bytearray(self.value_size)
            stored[:4] = qsize.to_bytes(4, "little")
            if program is not None and len(stored) == 8:
                stored[4:8] = (program.id & 0xFFFFFFFF).to_bytes(4, "little")
            old = self._slots.get(index)
            self._slots[index] = (stored, program)
        if old is not None and old[1] is not None:
            self.resolver.release(old[1])
        self._touch(key)

    def _delete(self, key: bytes) -> None:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.EINVAL, f"CPU {index} is past the end of the cpumap "
                                           f"(max_entries {self.max_entries}).")
        old = self._slots.pop(index, None)
        if old is not None:
            if old[1] is not None:
                self.resolver.release(old[1])
            self._touch(key)

    def _next_key(self, key: bytes | None) -> bytes | None:
        return next_index(key, self.max_entries)

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        raise ErrnoError(errno.EINVAL, f"cannot pass map_type {int(self.spec.type)} into func "
                                       "bpf_map_lookup_elem")

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        for index in sorted(self._slots):
            slot = self._slots.get(index)
            if slot is not None:
                yield index.to_bytes(4, "little"), bytes(slot[0])

    def target(self, index: int) -> CpumapTarget | None:
        """The worker queue at CPU ``index`` (bpf_redirect_map), or None for an empty slot."""
        slot = self._slots.get(index)
        if slot is None:
            return None
        return CpumapTarget(index, int.from_bytes(slot[0][:4], "little"), slot[1])

    def release(self) -> None:
        slots, self._slots = self._slots, {}
        for _, program in slots.values():
            if program is not None:
                self.resolver.release(program)
