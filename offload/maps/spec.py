"""What a map is, apart from any live instance: ``MapSpec``.

A spec is plain, comparable data (the loader produces it from an ELF object, a snapshot stores
it, a device turns it into a live map). Values follow ``enum bpf_map_type`` and the map flags
of the Linux uAPI (include/uapi/linux/bpf.h) so specs mean the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from ..uapi import MapType

#: Bytes of ``struct bpf_spin_lock`` (one u32).
SPIN_LOCK_SIZE = 4


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
