"""Binary layout of BTF and BTF.ext (Documentation/bpf/btf.rst, include/uapi/linux/btf.h).

Only structure lives here: the kinds, the header and record formats and the size of the data
that follows each type record. :mod:`offload.loader.btf` gives the records meaning.
"""

from __future__ import annotations

import struct
from enum import IntEnum

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1

#: struct btf_header: magic, version, flags, hdr_len, type_off, type_len, str_off, str_len.
HEADER = struct.Struct("<HBBIIIII")
#: struct btf_type: name_off, info (vlen 0-15, kind 24-28, kind_flag 31), size or type.
TYPE = struct.Struct("<III")
U32 = struct.Struct("<I")
#: struct btf_array: type, index_type, nelems.
ARRAY = struct.Struct("<III")
#: struct btf_member: name_off, type, offset (bit offset, or bitfield size << 24 | offset).
MEMBER = struct.Struct("<III")
#: struct btf_enum: name_off, val.
ENUM = struct.Struct("<Ii")
#: struct btf_enum64: name_off, val_lo32, val_hi32.
ENUM64 = struct.Struct("<III")
#: struct btf_param: name_off, type.
PARAM = struct.Struct("<II")
#: struct btf_var: linkage.
VAR = struct.Struct("<I")
#: struct btf_var_secinfo: type, offset, size.
VAR_SECINFO = struct.Struct("<III")
#: struct btf_decl_tag: component_idx.
DECL_TAG = struct.Struct("<i")

#: struct btf_ext_header: magic, version, flags, hdr_len, func_info_off/len,
#: line_info_off/len; core_relo_off/len follow when hdr_len is at least 32.
EXT_HEADER = struct.Struct("<HBBIIIII")
EXT_CORE = struct.Struct("<II")
#: struct btf_ext_info_sec: sec_name_off, num_info (the records follow).
EXT_INFO_SEC = struct.Struct("<II")
#: struct bpf_func_info: insn_off (bytes in the object file), type_id.
FUNC_INFO = struct.Struct("<II")
#: struct bpf_line_info: insn_off, file_name_off, line_off, line_col (line << 10 | column).
LINE_INFO = struct.Struct("<IIII")

MAX_VLEN = 0xFFFF
MAX_RESOLVE_DEPTH = 32  # the kernel's bound on modifier and typedef chains


class BtfKind(IntEnum):
    """``BTF_KIND_*``."""

    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class IntEncoding(IntEnum):
    """``BTF_INT_*`` bits of an INT's encoding."""

    NONE = 0
    SIGNED = 1 << 0
    CHAR = 1 << 1
    BOOL = 1 << 2


class VarLinkage(IntEnum):
    """``BTF_VAR_*``."""

    STATIC = 0
    GLOBAL_ALLOCATED = 1
    GLOBAL_EXTERN = 2


class FuncLinkage(IntEnum):
    """``BTF_FUNC_*`` (the vlen of a FUNC)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


def trailing_size(kind: int, vlen: int) -> int:
    """Bytes of kind-specific data after a ``struct btf_type`` of this kind."""
    if kind == BtfKind.INT:
        return U32.size
    if kind == BtfKind.ARRAY:
        return ARRAY.size
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        return vlen * MEMBER.size
    if kind == BtfKind.ENUM:
        return vlen * ENUM.size
    if kind == BtfKind.ENUM64:
        return vlen * ENUM64.size
    if kind == BtfKind.FUNC_PROTO:
        return vlen * PARAM.size
    if kind == BtfKind.VAR:
        return VAR.size
    if kind == BtfKind.DATASEC:
        return vlen * VAR_SECINFO.size
    if kind == BtfKind.DECL_TAG:
        return DECL_TAG.size
    return 0
