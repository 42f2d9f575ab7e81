"""What a map is, apart from any live instance: ``MapSpec`` and the uAPI constants.

A spec is plain, comparable data (the loader produces it from an ELF object, a snapshot stores
it, a device turns it into a live map). Values follow ``enum bpf_map_type`` and the map flags
of the Linux uAPI (include/uapi/linux/bpf.h) so specs mean the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, IntFlag


class MapType(IntEnum):
    """``enum bpf_map_type``."""

    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    CGROUP_ARRAY = 8
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    LPM_TRIE = 11
    ARRAY_OF_MAPS = 12
    HASH_OF_MAPS = 13
    DEVMAP = 14
    SOCKMAP = 15
    CPUMAP = 16
    XSKMAP = 17
    SOCKHASH = 18
    CGROUP_STORAGE = 19
    REUSEPORT_SOCKARRAY = 20
    PERCPU_CGROUP_STORAGE = 21
    QUEUE = 22
    STACK = 23
    SK_STORAGE = 24
    DEVMAP_HASH = 25
    STRUCT_OPS = 26
    RINGBUF = 27
    INODE_STORAGE = 28
    TASK_STORAGE = 29
    BLOOM_FILTER = 30
    USER_RINGBUF = 31
    CGRP_STORAGE = 32
    ARENA = 33

    @property
    def is_percpu(self) -> bool:
        return self in (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
                        MapType.PERCPU_CGROUP_STORAGE)

    @property
    def is_map_in_map(self) -> bool:
        return self in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)


class MapFlags(IntFlag):
    """``map_flags`` of BPF_MAP_CREATE."""

    NONE = 0
    NO_PREALLOC = 1 << 0
    NO_COMMON_LRU = 1 << 1
    NUMA_NODE = 1 << 2
    RDONLY = 1 << 3
    WRONLY = 1 << 4
    STACK_BUILD_ID = 1 << 5
    ZERO_SEED = 1 << 6
    RDONLY_PROG = 1 << 7
    WRONLY_PROG = 1 << 8
    CLONE = 1 << 9
    MMAPABLE = 1 << 10
    PRESERVE_ELEMS = 1 << 11
    INNER_MAP = 1 << 12


#: Bytes of ``struct bpf_spin_lock`` (one u32).
SPIN_LOCK_SIZE = 4


class UpdateFlags(IntEnum):
    """``flags`` of BPF_MAP_UPDATE_ELEM."""

    ANY = 0
    NOEXIST = 1
    EXIST = 2
    F_LOCK = 4


class Pinning(IntEnum):
    """libbpf's ``pinning`` attribute of BTF-defined maps."""

    NONE = 0
    BY_NAME = 1


@dataclass(frozen=True, slots=True)
class MapSpec:
    """Everything needed to create a map, plus optional initial contents.

    ``contents`` holds (key, value) pairs written after creation (global data sections use it);
    ``frozen`` makes the map read-only for the program once created (``.rodata``); ``inner`` is
    the template of the inner map of a map-in-map. ``spin_lock_off`` is the offset of the
    ``struct bpf_spin_lock`` in the value, or None: what the kernel finds in the value's BTF
    at BPF_MAP_CREATE (``btf_value_type_id``) and keeps as the map record's lock offset.
    """

    name: str
    type: MapType
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    pinning: Pinning = Pinning.NONE
    inner: MapSpec | None = None
    contents: tuple[tuple[bytes, bytes], ...] = field(default=())
    frozen: bool = False
    spin_lock_off: int | None = None
