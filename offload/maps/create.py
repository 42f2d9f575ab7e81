"""``create_map``: BPF_MAP_CREATE for a device - check a ``MapSpec``, build the live map.

Checks run in the kernel's order: attribute sanity common to every map (``map_create()`` in
kernel/bpf/syscall.c), then the family's ``map_alloc_check``, then the device's own limits
(E2BIG, as the kernel's allocation limits report). The spec's initial ``contents`` are written
and ``frozen`` applied before the map is returned, so a caller never holds a half-built map.
"""

from __future__ import annotations

import errno
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import ErrnoError
from ..uapi import MapFlags, MapType
from .array import ArrayMap, PercpuArrayMap
from .base import Map, as_u32
from .cpumap import CpuMap
from .devmap import DevMap, DevMapHash
from .hash import HashMap, PercpuHashMap
from .lpm import LpmTrieMap
from .lru import LruHashMap, LruPercpuHashMap, lru_max_entries
from .map_in_map import ArrayOfMaps, HashOfMaps, check_inner_template
from .perf_event_array import PerfEventArrayMap
from .prog_array import ProgArrayMap
from .resolver import NO_OBJECTS, Resolver
from .ringbuf import RingBufMap
from .spec import SPIN_LOCK_SIZE, MapSpec
from .xskmap import XskMap

if TYPE_CHECKING:  # caps imports maps.spec; a runtime import here would be circular
    from ..caps.capabilities import Limits

MAP_CLASSES: dict[MapType, type[Map]] = {
    MapType.ARRAY: ArrayMap,
    MapType.PERCPU_ARRAY: PercpuArrayMap,
    MapType.HASH: HashMap,
    MapType.PERCPU_HASH: PercpuHashMap,
    MapType.LRU_HASH: LruHashMap,
    MapType.LRU_PERCPU_HASH: LruPercpuHashMap,
    MapType.LPM_TRIE: LpmTrieMap,
    MapType.DEVMAP: DevMap,
    MapType.DEVMAP_HASH: DevMapHash,
    MapType.PROG_ARRAY: ProgArrayMap,
    MapType.ARRAY_OF_MAPS: ArrayOfMaps,
    MapType.HASH_OF_MAPS: HashOfMaps,
    MapType.CPUMAP: CpuMap,
    MapType.XSKMAP: XskMap,
    MapType.PERF_EVENT_ARRAY: PerfEventArrayMap,
    MapType.RINGBUF: RingBufMap,
}
SUPPORTED_MAP_TYPES = frozenset(MAP_CLASSES)
ALL_MAP_FLAGS = int(sum(MapFlags))
MAX_CPUS = 8192  # NR_CPUS upper bound of common kernel configurations


def check_spec(spec: object, *, ncpus: int = 1, limits: Limits | None = None) -> type[Map]:
    """Raise the ErrnoError BPF_MAP_CREATE would give for ``spec``; return the map class."""
    if not isinstance(spec, MapSpec):
        raise ErrnoError(errno.EINVAL, f"A map is created from a MapSpec, not "
                                       f"{type(spec).__name__}.")
    if isinstance(ncpus, bool) or not isinstance(ncpus, int) or not 1 <= ncpus <= MAX_CPUS:
        raise ErrnoError(errno.EINVAL, f"ncpus must be 1..{MAX_CPUS}, got {ncpus!r}.")
    for field in ("key_size", "value_size", "max_entries", "flags"):
        as_u32(getattr(spec, field), field)
    if not isinstance(spec.name, str):
        raise ErrnoError(errno.EINVAL, "The map name must be a string.")
    try:
        map_type = MapType(spec.type)
    except (ValueError, TypeError):
        raise ErrnoError(errno.EINVAL, f"Unknown map type {spec.type!r}.") from None
    cls = MAP_CLASSES.get(map_type)
    if cls is None:
        raise ErrnoError(errno.EINVAL, f"Map type {map_type.name} is not supported by this "
                                       f"device; it offers "
                                       f"{', '.join(t.name for t in MAP_CLASSES)}.")
    if spec.flags & ~ALL_MAP_FLAGS:
        raise ErrnoError(errno.EINVAL, f"Unknown map_flags {spec.flags & ~ALL_MAP_FLAGS:#x}.")
    if spec.flags & MapFlags.RDONLY and spec.flags & MapFlags.WRONLY:
        raise ErrnoError(errno.EINVAL, "BPF_F_RDONLY and BPF_F_WRONLY exclude each other.")
    if spec.flags & MapFlags.RDONLY_PROG and spec.flags & MapFlags.WRONLY_PROG:
        raise ErrnoError(errno.EINVAL, "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG exclude each "
                                       "other.")
    if map_type is not spec.type:
        spec = _retyped(spec, map_type)
    if map_type.is_map_in_map:
        check_inner_template(spec)
        check_spec(spec.inner, ncpus=ncpus, limits=limits)
    cls.check_spec(spec, ncpus)
    if spec.spin_lock_off is not None:
        _check_spin_lock(spec)
    if limits is not None:
        _check_limits(spec, limits)
    return cls


#: Map types whose value may hold a bpf_spin_lock (the kernel's ``map_check_btf``; the others
#: it allows are storage maps an XDP device does not have).
SPIN_LOCK_MAP_TYPES = frozenset({MapType.HASH, MapType.ARRAY})


def _check_spin_lock(spec: MapSpec) -> None:
    """A value's ``struct bpf_spin_lock``, refused as BPF_MAP_CREATE with BTF refuses it: it
    must lie in the value, 4-byte aligned (EINVAL: the kernel finds no such lock); programs
    take it, so they must both read and write the map (EACCES); and only hash and array maps
    keep a lock in their values (EOPNOTSUPP)."""
    off = spec.spin_lock_off
    if isinstance(off, bool) or not isinstance(off, int) or off < 0 or off % 4 or \
            off + SPIN_LOCK_SIZE > spec.value_size:
        raise ErrnoError(errno.EINVAL, f"The bpf_spin_lock at offset {off!r} is not a 4-byte "
                                       f"aligned field of the {spec.value_size}-byte value.")
    if spec.flags & (MapFlags.RDONLY_PROG | MapFlags.WRONLY_PROG):
        raise ErrnoError(errno.EACCES, "A map whose value holds a bpf_spin_lock cannot be "
                                       "BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG.")
    if spec.type not in SPIN_LOCK_MAP_TYPES:
        raise ErrnoError(errno.EOPNOTSUPP, f"{spec.type.name} maps cannot hold a "
                                           "bpf_spin_lock in their values: only HASH and "
                                           "ARRAY maps do.")


def _retyped(spec: MapSpec, map_type: MapType) -> MapSpec:
    return replace(spec, type=map_type)


def _check_limits(spec: MapSpec, limits: Limits) -> None:
    for what, have, most in (("max_entries", spec.max_entries, limits.max_map_entries),
                             ("key_size", spec.key_size, limits.max_key_size),
                             ("value_size", spec.value_size, limits.max_value_size)):
        if have > most:
            raise ErrnoError(errno.E2BIG, f"{what} {have} exceeds this device's limit of {most}.")


def create_map(spec: MapSpec, *, ncpus: int = 1, resolver: Resolver = NO_OBJECTS,
               limits: Limits | None = None) -> Map:
    """BPF_MAP_CREATE: a live map for ``spec`` on a device with ``ncpus`` CPUs.

    ``resolver`` gives maps that hold programs, maps or interfaces access to the device's
    objects; ``limits`` are the device's (E2BIG beyond them).
    """
    cls = check_spec(spec, ncpus=ncpus, limits=limits)
    if not isinstance(spec.type, MapType):
        spec = _retyped(spec, MapType(spec.type))
    max_entries = spec.max_entries
    if spec.type in (MapType.LRU_HASH, MapType.LRU_PERCPU_HASH):
        max_entries = lru_max_entries(max_entries, ncpus, spec.flags)
    live = cls(spec, ncpus=ncpus, resolver=resolver, max_entries=max_entries,
               flags=cls.created_flags(spec.flags))
    try:
        if not isinstance(spec.contents, tuple):
            raise ErrnoError(errno.EINVAL, "The spec's contents must be a tuple of pairs.")
        live.import_entries(spec.contents)
        if spec.frozen:
            live.freeze()
    except ErrnoError as exc:
        live.release()
        raise ErrnoError(exc.errno, f"Cannot fill map {spec.name!r} with its initial contents: "
                                    f"{exc.detail}") from None
    return live
