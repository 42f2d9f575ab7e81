"""BTF out of type records: the inverse of :func:`offload.loader.btf.parse_btf`.

A device describes the types its programs can see as BTF built from Python declarations, and
a program keeps the local types its CO-RE relocations name as BTF of its own; both are
encoded here and read back by the one parser, so what is written is what every reader sees.
Records keep the ids they are given (1, 2, ... in order); strings are written once each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from .btf import SIZED_KINDS, Btf, BtfType
from .btf_layout import (
    ARRAY,
    BTF_MAGIC,
    BTF_VERSION,
    DECL_TAG,
    ENUM,
    ENUM64,
    HEADER,
    MAX_VLEN,
    MEMBER,
    PARAM,
    TYPE,
    U32,
    VAR,
    VAR_SECINFO,
    BtfKind,
)
from .errors import LoaderError

_MAX_BITFIELD = 0xFF
_MAX_BIT_OFFSET = 0xFFFFFF


class _Strings:
    """The string section: each distinct string once, the empty string at offset 0."""

    def __init__(self) -> None:
        self.data = bytearray(b"\0")
        self.offsets: dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        found = self.offsets.get(text)
        if found is None:
            raw = text.encode("utf-8")
            if b"\0" in raw:
                raise LoaderError(f"BTF name {text!r} holds a NUL byte.")
            found = len(self.data)
            self.data += raw + b"\0"
            self.offsets[text] = found
        return found


def encode_btf(types: Sequence[BtfType]) -> bytes:
    """``types`` (ids 1..n in order; a leading void record is skipped) as a ``.BTF`` section."""
    records = list(types)
    if records and records[0].id == 0:
        records = records[1:]
    strings = _Strings()
    body = bytearray()
    for index, btf_type in enumerate(records, start=1):
        if btf_type.id != index:
            raise LoaderError(f"type record {index} carries id {btf_type.id}; records are "
                              "numbered 1, 2, ... in order.")
        body += _encode_type(btf_type, strings, len(records))
    header = HEADER.pack(BTF_MAGIC, BTF_VERSION, 0, HEADER.size, 0, len(body), len(body),
                         len(strings.data))
    return header + bytes(body) + bytes(strings.data)


def _check_ref(btf_type: BtfType, ref: int, count: int) -> int:
    if not 0 <= ref <= count:
        raise LoaderError(f"{btf_type.kind.name} type [{btf_type.id}] refers to type [{ref}], "
                          f"which is not among the {count} types written.")
    return ref


def _encode_type(t: BtfType, strings: _Strings, count: int) -> bytes:
    kind = t.kind
    if kind == BtfKind.UNKN:
        raise LoaderError(f"type [{t.id}] has kind UNKN, which BTF cannot hold.")
    vlen = _vlen(t)
    if vlen > MAX_VLEN:
        raise LoaderError(f"{kind.name} type [{t.id}] has {vlen} entries; BTF allows "
                          f"{MAX_VLEN}.")
    kind_flag = t.kind_flag or (kind in (BtfKind.STRUCT, BtfKind.UNION) and
                                any(m.bitfield_size for m in t.members))
    info = (int(kind_flag) << 31) | (int(kind) << 24) | vlen
    third = t.size if kind in SIZED_KINDS else _check_ref(t, t.type_id, count)
    head = TYPE.pack(strings(t.name), info, third)
    for ref in t.referenced_ids():
        _check_ref(t, ref, count)
    if kind == BtfKind.INT:
        return head + U32.pack((t.int_encoding & 0x0F) << 24 | (t.int_offset & 0xFF) << 16 |
                               (t.int_bits & 0xFF))
    if kind == BtfKind.ARRAY:
        return head + ARRAY.pack(t.elem_type, t.index_type, t.nelems)
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        return head + b"".join(_member(t, m.name, m.type_id, m.bit_offset, m.bitfield_size,
                                       kind_flag, strings) for m in t.members)
    if kind == BtfKind.ENUM:
        return head + b"".join(ENUM.pack(strings(e.name), _s32(t, e.value))
                               for e in t.enumerators)
    if kind == BtfKind.ENUM64:
        return head + b"".join(ENUM64.pack(strings(e.name), e.value & 0xFFFFFFFF,
                                           (e.value >> 32) & 0xFFFFFFFF)
                               for e in t.enumerators)
    if kind == BtfKind.FUNC_PROTO:
        return head + b"".join(PARAM.pack(strings(p.name), p.type_id) for p in t.params)
    if kind == BtfKind.VAR:
        return head + VAR.pack(t.linkage)
    if kind == BtfKind.DATASEC:
        return head + b"".join(VAR_SECINFO.pack(s.type_id, s.offset, s.size)
                               for s in t.secinfos)
    if kind == BtfKind.DECL_TAG:
        return head + DECL_TAG.pack(t.component_idx)
    return head


def _vlen(t: BtfType) -> int:
    if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
        return len(t.members)
    if t.kind in (BtfKind.ENUM, BtfKind.ENUM64):
        return len(t.enumerators)
    if t.kind == BtfKind.FUNC_PROTO:
        return len(t.params)
    if t.kind == BtfKind.DATASEC:
        return len(t.secinfos)
    if t.kind == BtfKind.FUNC:
        return t.linkage
    return 0


def _member(t: BtfType, name: str, type_id: int, bit_offset: int, bits: int, kind_flag: bool,
            strings: _Strings) -> bytes:
    if kind_flag:
        if not 0 <= bits <= _MAX_BITFIELD or not 0 <= bit_offset <= _MAX_BIT_OFFSET:
            raise LoaderError(f"member '{name}' of type [{t.id}] at bit {bit_offset} with "
                              f"{bits} bits does not fit a BTF member record.")
        offset = bits << 24 | bit_offset
    else:
        offset = bit_offset
    return MEMBER.pack(strings(name), type_id, offset)


def _s32(t: BtfType, value: int) -> int:
    """An ENUM value as the record's signed 32 bits (unsigned values wrap, as C stores them)."""
    if not -(1 << 31) <= value < 1 << 32:
        raise LoaderError(f"value {value} of enum type [{t.id}] does not fit 32 bits; use "
                          "ENUM64.")
    return value - (1 << 32) if value >= 1 << 31 else value


def btf_subset(btf: Btf, roots: Iterable[int]) -> tuple[bytes, dict[int, int]]:
    """The types of ``btf`` that ``roots`` reach (members, pointees, elements, parameters),
    renumbered in their original order and encoded; and old id -> new id.

    A program keeps this much of its object's BTF to resolve its CO-RE relocations again on
    another device: the types they name and everything those are built from.
    """
    keep: set[int] = set()
    todo = [root for root in roots if root]
    while todo:
        type_id = todo.pop()
        if type_id in keep or type_id == 0:
            continue
        keep.add(type_id)
        todo.extend(btf[type_id].referenced_ids())
    new_ids = {old: new for new, old in enumerate(sorted(keep), start=1)}
    new_ids[0] = 0

    def ref(old: int) -> int:
        return new_ids[old]

    records = []
    for old in sorted(keep):
        t = btf[old]
        records.append(dataclasses.replace(
            t, id=new_ids[old],
            type_id=t.type_id if t.kind in SIZED_KINDS else ref(t.type_id),
            elem_type=ref(t.elem_type) if t.kind == BtfKind.ARRAY else t.elem_type,
            index_type=ref(t.index_type) if t.kind == BtfKind.ARRAY else t.index_type,
            members=tuple(dataclasses.replace(m, type_id=ref(m.type_id)) for m in t.members),
            params=tuple(dataclasses.replace(p, type_id=ref(p.type_id)) for p in t.params),
            secinfos=tuple(dataclasses.replace(s, type_id=ref(s.type_id))
                           for s in t.secinfos)))
    return encode_btf(records), new_ids


__all__ = ["btf_subset", "encode_btf"]
