"""BTF, the BPF Type Format: types and strings of the ``.BTF`` section, and type sizes.

A clang object carries BTF describing its maps, functions and global variables; the loader
reads map definitions out of it (libbpf's ``.maps`` convention) and sizes of keys and values.
Records are parsed eagerly and every reference is checked, so a :class:`Btf` in hand is
consistent: each type id it names exists. Layouts are in :mod:`offload.loader.btf_layout`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict

from .btf_layout import (
    ARRAY,
    BTF_MAGIC,
    BTF_VERSION,
    DECL_TAG,
    ENUM,
    ENUM64,
    HEADER,
    MAX_RESOLVE_DEPTH,
    MEMBER,
    PARAM,
    TYPE,
    U32,
    VAR,
    VAR_SECINFO,
    BtfKind,
    trailing_size,
)
from .errors import LoaderError

SECTION = ".BTF"
POINTER_SIZE = 8

#: Kinds whose third header word is a size.
SIZED_KINDS = frozenset({BtfKind.INT, BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM,
                         BtfKind.ENUM64, BtfKind.DATASEC, BtfKind.FLOAT})
#: Kinds that only qualify or rename the type they refer to.
MODIFIER_KINDS = frozenset({BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST,
                            BtfKind.RESTRICT, BtfKind.TYPE_TAG})


@dataclass(frozen=True, slots=True)
class BtfMember:
    """A member of a STRUCT or UNION; ``bitfield_size`` is 0 for whole members."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(frozen=True, slots=True)
class BtfEnumerator:
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class BtfParam:
    name: str
    type_id: int


@dataclass(frozen=True, slots=True)
class BtfVarSecinfo:
    """A variable placed in a DATASEC at ``offset`` with ``size`` bytes."""

    type_id: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class BtfType:
    """One type record. Fields not used by ``kind`` keep their defaults.

    ``size`` is set for sized kinds, ``type_id`` for kinds that refer to another type
    (pointers, modifiers, FUNC, VAR, DECL_TAG, and the return type of FUNC_PROTO).
    """

    id: int
    kind: BtfKind
    name: str = ""
    kind_flag: bool = False
    vlen: int = 0
    size: int = 0
    type_id: int = 0
    int_encoding: int = 0
    int_offset: int = 0
    int_bits: int = 0
    elem_type: int = 0
    index_type: int = 0
    nelems: int = 0
    members: tuple[BtfMember, ...] = ()
    enumerators: tuple[BtfEnumerator, ...] = ()
    params: tuple[BtfParam, ...] = ()
    secinfos: tuple[BtfVarSecinfo, ...] = ()
    linkage: int = 0
    component_idx: int = -1

    def referenced_ids(self) -> Iterator[int]:
        """Every type id this record refers to (void, id 0, included)."""
        if self.kind in MODIFIER_KINDS or self.kind in (BtfKind.PTR, BtfKind.FUNC, BtfKind.VAR,
                                                        BtfKind.DECL_TAG, BtfKind.FUNC_PROTO):
            yield self.type_id
        if self.kind == BtfKind.ARRAY:
            yield self.elem_type
            yield self.index_type
        for member in self.members:
            yield member.type_id
        for param in self.params:
            yield param.type_id
        for info in self.secinfos:
            yield info.type_id


VOID = BtfType(0, BtfKind.UNKN, "void")


@dataclass(frozen=True, slots=True)
class Btf:
    """The parsed ``.BTF`` section: ``types[0]`` is void, ids index the tuple."""

    types: tuple[BtfType, ...]
    strings: bytes = field(repr=False)

    def __getitem__(self, type_id: int) -> BtfType:
        if not 0 <= type_id < len(self.types):
            raise LoaderError(f"type id {type_id} does not exist (the BTF has "
                              f"{len(self.types) - 1} types).", section=SECTION)
        return self.types[type_id]

    def string(self, offset: int) -> str:
        return read_string(self.strings, offset, SECTION)

    def find(self, name: str, kind: BtfKind | None = None) -> BtfType | None:
        """The first type called ``name`` (of ``kind``, if given)."""
        for btf_type in self.types:
            if btf_type.name == name and (kind is None or btf_type.kind == kind):
                return btf_type
        return None

    def resolve(self, type_id: int) -> BtfType:
        """The type behind typedefs and qualifiers (const, volatile, restrict, type tags)."""
        btf_type = self[type_id]
        for _ in range(MAX_RESOLVE_DEPTH):
            if btf_type.kind not in MODIFIER_KINDS:
                return btf_type
            btf_type = self[btf_type.type_id]
        raise LoaderError(f"type [{type_id}] is a chain of more than {MAX_RESOLVE_DEPTH} "
                          "typedefs or modifiers (loop?).", section=SECTION)

    def size_of(self, type_id: int) -> int:
        """Size in bytes of a type, as sizeof() in C; types without a size are an error."""
        return self._size_of(type_id, 0)

    def _size_of(self, type_id: int, depth: int) -> int:
        if depth > MAX_RESOLVE_DEPTH:
            raise LoaderError(f"type [{type_id}] nests more than {MAX_RESOLVE_DEPTH} levels "
                              "deep (loop?).", section=SECTION)
        btf_type = self[type_id]
        kind = btf_type.kind
        if kind in SIZED_KINDS:
            return btf_type.size
        if kind == BtfKind.PTR:
            return POINTER_SIZE
        if kind in MODIFIER_KINDS or kind == BtfKind.VAR:
            return self._size_of(btf_type.type_id, depth + 1)
        if kind == BtfKind.ARRAY:
            size = btf_type.nelems * self._size_of(btf_type.elem_type, depth + 1)
            if size > 0xFFFFFFFF:
                raise LoaderError(f"array type [{type_id}] is larger than 4 GiB.",
                                  section=SECTION)
            return size
        what = "void" if type_id == 0 else f"{kind.name} type [{type_id}] '{btf_type.name}'"
        raise LoaderError(f"{what} has no size.", section=SECTION)

    def datasec(self, name: str) -> BtfType | None:
        return self.find(name, BtfKind.DATASEC)


def read_string(strings: bytes, offset: int, section: str) -> str:
    """The NUL-terminated string at ``offset`` of a string section."""
    if not 0 <= offset < len(strings):
        raise LoaderError(f"string offset {offset} is outside the string section "
                          f"({len(strings)} bytes).", section=section)
    end = strings.find(b"\0", offset)
    if end < 0:
        raise LoaderError(f"string at offset {offset} is not NUL-terminated.", section=section)
    return strings[offset:end].decode("utf-8", errors="replace")


def parse_btf(data: bytes) -> Btf:
    """Parse a ``.BTF`` section (little-endian, version 1)."""
    if len(data) < HEADER.size:
        raise LoaderError(f"{len(data)} bytes is too short for the {HEADER.size}-byte header.",
                          section=SECTION)
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
        HEADER.unpack_from(data)
    if magic == 0x9FEB:
        raise LoaderError("big-endian BTF is not supported.", section=SECTION)
    if magic != BTF_MAGIC:
        raise LoaderError(f"bad magic {magic:#06x} (expected {BTF_MAGIC:#06x}).",
                          section=SECTION)
    if version != BTF_VERSION:
        raise LoaderError(f"unsupported BTF version {version}.", section=SECTION)
    if hdr_len < HEADER.size or hdr_len > len(data):
        raise LoaderError(f"header length {hdr_len} is invalid.", section=SECTION)
    if any(data[HEADER.size:hdr_len]):
        raise LoaderError("unknown header fields are set.", section=SECTION)
    body = data[hdr_len:]
    for what, offset, length in (("type", type_off, type_len), ("string", str_off, str_len)):
        if offset + length > len(body):
            raise LoaderError(f"{what} section ({offset}+{length}) runs past the end of the "
                              f"data ({len(body)} bytes).", section=SECTION)
    if type_off % 4:
        raise LoaderError(f"type section offset {type_off} is not 4-byte aligned.",
                          section=SECTION)
    if type_off < str_off < type_off + type_len or str_off < type_off < str_off + str_len:
        raise LoaderError("type and string sections overlap.", section=SECTION)
    strings = bytes(body[str_off:str_off + str_len])
    if not strings or strings[0] != 0 or strings[-1] != 0:
        raise LoaderError("string section must start and end with a NUL byte.", section=SECTION)
    types = _parse_types(bytes(body[type_off:type_off + type_len]), strings)
    for btf_type in types:
        for ref in btf_type.referenced_ids():
            if ref >= len(types):
                raise LoaderError(f"{btf_type.kind.name} type [{btf_type.id}] refers to type "
                                  f"[{ref}], which does not exist.", section=SECTION)
    return Btf(types, strings)


def _parse_types(data: bytes, strings: bytes) -> tuple[BtfType, ...]:
    types: list[BtfType] = [VOID]
    pos = 0
    while pos < len(data):
        type_id = len(types)
        if pos + TYPE.size > len(data):
            raise LoaderError(f"type [{type_id}] is truncated.", section=SECTION)
        name_off, info, size_or_type = TYPE.unpack_from(data, pos)
        pos += TYPE.size
        raw_kind = (info >> 24) & 0x1F
        if info & 0x60FF0000:
            raise LoaderError(f"type [{type_id}] sets reserved info bits.", section=SECTION)
        try:
            kind = BtfKind(raw_kind)
        except ValueError:
            raise LoaderError(f"type [{type_id}] has unknown kind {raw_kind}.",
                              section=SECTION) from None
        if kind == BtfKind.UNKN:
            raise LoaderError(f"type [{type_id}] has kind UNKN.", section=SECTION)
        vlen = info & 0xFFFF
        extra = trailing_size(kind, vlen)
        if pos + extra > len(data):
            raise LoaderError(f"{kind.name} type [{type_id}] runs past the type section.",
                              section=SECTION)
        name = read_string(strings, name_off, SECTION)
        types.append(_decode_type(type_id, kind, name, bool(info >> 31), vlen, size_or_type,
                                  data, pos, strings))
        pos += extra
    return tuple(types)


class _CommonFields(TypedDict):
    """The header fields every record has, passed to :class:`BtfType` by keyword."""

    id: int
    kind: BtfKind
    name: str
    kind_flag: bool
    vlen: int
    size: NotRequired[int]
    type_id: NotRequired[int]


def _decode_type(type_id: int, kind: BtfKind, name: str, kind_flag: bool, vlen: int,
                 size_or_type: int, data: bytes, pos: int, strings: bytes) -> BtfType:
    """The kind-specific part of one record; ``pos`` is where its trailing data starts."""
    base: _CommonFields = {"id": type_id, "kind": kind, "name": name, "kind_flag": kind_flag, "vlen": vlen}
    if kind in SIZED_KINDS:
        base["size"] = size_or_type
    else:
        base["type_id"] = size_or_type
    if kind == BtfKind.INT:
        (word,) = U32.unpack_from(data, pos)
        return BtfType(**base, int_encoding=(word >> 24) & 0x0F, int_offset=(word >> 16) & 0xFF,
                       int_bits=word & 0xFF)
    if kind == BtfKind.ARRAY:
        elem, index, nelems = ARRAY.unpack_from(data, pos)
        return BtfType(**base, elem_type=elem, index_type=index, nelems=nelems)
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        members = []
        for i in range(vlen):
            m_name, m_type, offset = MEMBER.unpack_from(data, pos + i * MEMBER.size)
            if kind_flag:
                members.append(BtfMember(read_string(strings, m_name, SECTION), m_type,
                                         offset & 0xFFFFFF, offset >> 24))
            else:
                members.append(BtfMember(read_string(strings, m_name, SECTION), m_type, offset))
        return BtfType(**base, members=tuple(members))
    if kind == BtfKind.ENUM:
        values = [ENUM.unpack_from(data, pos + i * ENUM.size) for i in range(vlen)]
        return BtfType(**base, enumerators=tuple(
            BtfEnumerator(read_string(strings, n, SECTION), v) for n, v in values))
    if kind == BtfKind.ENUM64:
        values = [ENUM64.unpack_from(data, pos + i * ENUM64.size) for i in range(vlen)]
        return BtfType(**base, enumerators=tuple(
            BtfEnumerator(read_string(strings, n, SECTION), lo | hi << 32)
            for n, lo, hi in values))
    if kind == BtfKind.FUNC_PROTO:
        params = [PARAM.unpack_from(data, pos + i * PARAM.size) for i in range(vlen)]
        return BtfType(**base, params=tuple(
            BtfParam(read_string(strings, n, SECTION), t) for n, t in params))
    if kind == BtfKind.VAR:
        (linkage,) = VAR.unpack_from(data, pos)
        return BtfType(**base, linkage=linkage)
    if kind == BtfKind.DATASEC:
        infos = [VAR_SECINFO.unpack_from(data, pos + i * VAR_SECINFO.size) for i in range(vlen)]
        return BtfType(**base, secinfos=tuple(BtfVarSecinfo(*info) for info in infos))
    if kind == BtfKind.DECL_TAG:
        (component,) = DECL_TAG.unpack_from(data, pos)
        return BtfType(**base, component_idx=component)
    if kind == BtfKind.FUNC:
        return BtfType(**base, linkage=vlen)
    return BtfType(**base)


__all__ = ["Btf", "BtfEnumerator", "BtfMember", "BtfParam", "BtfType", "BtfVarSecinfo",
           "parse_btf", "read_string"]
