"""The ctypes layouts match union bpf_attr and the info structures of include/uapi/linux/bpf.h."""

from __future__ import annotations

import ctypes

import pytest

from offload.backends.kernel import attr

# (structure, field, offset in the uAPI)
OFFSETS = [
    (attr.MapCreateAttr, "map_flags", 16), (attr.MapCreateAttr, "inner_map_fd", 20),
    (attr.MapCreateAttr, "map_name", 28), (attr.MapCreateAttr, "map_ifindex", 44),
    (attr.MapCreateAttr, "btf_fd", 48), (attr.MapCreateAttr, "map_extra", 64),
    (attr.MapElemAttr, "key", 8), (attr.MapElemAttr, "value", 16), (attr.MapElemAttr, "flags", 24),
    (attr.MapBatchAttr, "keys", 16), (attr.MapBatchAttr, "count", 32),
    (attr.MapBatchAttr, "map_fd", 36), (attr.MapBatchAttr, "elem_flags", 40),
    (attr.MapBatchAttr, "flags", 48),
    (attr.ProgLoadAttr, "insns", 8), (attr.ProgLoadAttr, "license", 16),
    (attr.ProgLoadAttr, "log_level", 24), (attr.ProgLoadAttr, "log_buf", 32),
    (attr.ProgLoadAttr, "prog_flags", 44), (attr.ProgLoadAttr, "prog_name", 48),
    (attr.ProgLoadAttr, "expected_attach_type", 68), (attr.ProgLoadAttr, "fd_array", 120),
    (attr.ProgLoadAttr, "log_true_size", 140),
    (attr.TestRunAttr, "data_in", 16), (attr.TestRunAttr, "repeat", 32),
    (attr.TestRunAttr, "duration", 36), (attr.TestRunAttr, "ctx_in", 48),
    (attr.TestRunAttr, "flags", 64), (attr.TestRunAttr, "batch_size", 72),
    (attr.ObjInfoAttr, "info", 8),
    (attr.MapInfoStruct, "name", 24), (attr.MapInfoStruct, "netns_dev", 48),
    (attr.MapInfoStruct, "map_extra", 80),
    (attr.ProgInfoStruct, "tag", 8), (attr.ProgInfoStruct, "load_time", 40),
    (attr.ProgInfoStruct, "map_ids", 56), (attr.ProgInfoStruct, "name", 64),
    (attr.ProgInfoStruct, "netns_dev", 88), (attr.ProgInfoStruct, "run_time_ns", 192),
    (attr.ProgInfoStruct, "verified_insns", 216),
    (attr.XdpMdStruct, "egress_ifindex", 20),
]
SIZES = [(attr.MapCreateAttr, 72), (attr.MapElemAttr, 32), (attr.MapBatchAttr, 56),
         (attr.ProgLoadAttr, 144), (attr.TestRunAttr, 80), (attr.ObjInfoAttr, 16),
         (attr.MapInfoStruct, 88), (attr.XdpMdStruct, 24)]


@pytest.mark.parametrize(("struct", "name", "offset"), OFFSETS,
                         ids=[f"{s.__name__}.{n}" for s, n, _ in OFFSETS])
def test_field_offsets_follow_the_uapi(struct: type[ctypes.Structure], name: str,
                                       offset: int) -> None:
    assert getattr(struct, name).offset == offset


@pytest.mark.parametrize(("struct", "size"), SIZES, ids=[s.__name__ for s, _ in SIZES])
def test_sizes_follow_the_uapi(struct: type[ctypes.Structure], size: int) -> None:
    assert ctypes.sizeof(struct) == size
