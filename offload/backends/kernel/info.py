"""What the kernel says about a live map or program: BPF_OBJ_GET_INFO_BY_FD.

The info structures grow with each kernel release; the kernel fills as much as both sides
know and reports ``info_len``. Fields a kernel does not know stay zero.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .attr import MapInfoStruct, ObjInfoAttr, ProgInfoStruct
from .syscall import BpfCmd, bpf


@dataclass(frozen=True, slots=True)
class MapInfo:
    """``struct bpf_map_info``, the fields that describe the map."""

    id: int
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    name: str
    btf_id: int
    map_extra: int


@dataclass(frozen=True, slots=True)
class ProgInfo:
    """``struct bpf_prog_info``, the fields that describe the program and its run counters."""

    id: int
    type: int
    tag: bytes
    name: str
    xlated_len: int
    jited_len: int
    map_ids: tuple[int, ...]
    gpl_compatible: bool
    run_time_ns: int
    run_count: int
    verified_insns: int


def _get_info(fd: int, info: ctypes.Structure, what: str) -> None:
    attr = ObjInfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(BpfCmd.OBJ_GET_INFO_BY_FD, attr, what=what)


def map_info(fd: int, what: str = "a map") -> MapInfo:
    info = MapInfoStruct()
    _get_info(fd, info, what)
    return MapInfo(id=info.id, type=info.type, key_size=info.key_size,
                   value_size=info.value_size, max_entries=info.max_entries,
                   flags=info.map_flags, name=info.name.decode("ascii", "replace"),
                   btf_id=info.btf_id, map_extra=info.map_extra)


def prog_info(fd: int, what: str = "a program") -> ProgInfo:
    """Program info, with the ids of the maps it uses (a second call sized by the first)."""
    info = ProgInfoStruct()
    _get_info(fd, info, what)
    map_ids: tuple[int, ...] = ()
    if info.nr_map_ids:
        count = info.nr_map_ids
        ids = (ctypes.c_uint32 * count)()
        second = ProgInfoStruct(nr_map_ids=count, map_ids=ctypes.addressof(ids))
        _get_info(fd, second, what)
        map_ids = tuple(ids[:min(count, second.nr_map_ids)])
    return ProgInfo(id=info.id, type=info.type, tag=bytes(info.tag),
                    name=info.name.decode("ascii", "replace"),
                    xlated_len=info.xlated_prog_len, jited_len=info.jited_prog_len,
                    map_ids=map_ids, gpl_compatible=bool(info.gpl_compatible & 1),
                    run_time_ns=info.run_time_ns, run_count=info.run_cnt,
                    verified_insns=info.verified_insns)
