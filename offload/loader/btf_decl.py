"""C types declared in Python, laid out as a C compiler lays them out for BPF, emitted as BTF.

A device says which types its programs can see (``struct xdp_md``, the packet headers of the
UAPI, a few enums) by declaring them with these classes, the way a header declares them in C:
members in order, bitfields by width, ``packed`` where the header says so. :func:`emit_btf`
places every member (natural alignment; bitfields from the low bit up, a new storage unit when
one would straddle its declared type, as on little-endian BPF and x86-64) and writes the
result as BTF records, so offsets are computed, never typed in.

Declarations are frozen values: two equal declarations are one BTF type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .btf import BtfEnumerator, BtfMember, BtfType
from .btf_layout import BtfKind, IntEncoding
from .errors import LoaderError

POINTER_SIZE = 8


@dataclass(frozen=True, slots=True)
class Int:
    """A C integer type: ``unsigned int`` is ``Int("unsigned int", 4)``."""

    name: str
    size: int
    signed: bool = False
    char: bool = False
    boolean: bool = False


@dataclass(frozen=True, slots=True)
class Typedef:
    name: str
    type: Decl


@dataclass(frozen=True, slots=True)
class Pointer:
    """A pointer; ``target`` None is ``void *``."""

    target: Decl | None = None


@dataclass(frozen=True, slots=True)
class Array:
    elem: Decl
    nelems: int


@dataclass(frozen=True, slots=True)
class Field:
    """A member; ``bits`` > 0 makes it a bitfield of that width; an empty name is an anonymous
    struct or union member (C11), whose members read as the enclosing type's own."""

    name: str
    type: Decl
    bits: int = 0


@dataclass(frozen=True, slots=True)
class Struct:
    """A struct (or union); an empty name is an anonymous one."""

    name: str
    fields: tuple[Field, ...]
    union: bool = False
    packed: bool = False


@dataclass(frozen=True, slots=True)
class Enum:
    """An enum: ENUM with 4 bytes, ENUM64 with 8; ``signed`` sets BTF's kind flag."""

    name: str
    values: tuple[tuple[str, int], ...]
    size: int = 4
    signed: bool = False


Decl = Int | Typedef | Pointer | Array | Struct | Enum


def struct(name: str, *fields: Field, packed: bool = False) -> Struct:
    return Struct(name, tuple(fields), packed=packed)


def union(name: str, *fields: Field) -> Struct:
    return Struct(name, tuple(fields), union=True)


def fields(type_: Decl, *names: str) -> tuple[Field, ...]:
    """Several members of one type (``__be32 saddr, daddr;``)."""
    return tuple(Field(name, type_) for name in names)


def bitfields(type_: Decl, *widths: tuple[str, int]) -> tuple[Field, ...]:
    """Consecutive bitfields of one declared type, lowest bits first."""
    return tuple(Field(name, type_, bits) for name, bits in widths)


# ------------------------------------------------------------------ layout
def size_align(decl: Decl) -> tuple[int, int]:
    """sizeof and _Alignof of a declaration."""
    if isinstance(decl, Int):
        return decl.size, decl.size
    if isinstance(decl, Typedef):
        return size_align(decl.type)
    if isinstance(decl, Pointer):
        return POINTER_SIZE, POINTER_SIZE
    if isinstance(decl, Array):
        size, align = size_align(decl.elem)
        return size * decl.nelems, align
    if isinstance(decl, Enum):
        return decl.size, decl.size
    return _layout(decl)[0:2]


def _layout(decl: Struct) -> tuple[int, int, tuple[int, ...]]:
    """Size, alignment and member bit offsets of a struct or union."""
    offsets: list[int] = []
    bit = 0
    end = 0
    align = 1
    for member in decl.fields:
        size, member_align = size_align(member.type)
        if decl.packed:
            member_align = 1
        unit = size * 8
        if member.bits:
            if not isinstance(_resolved(member.type), (Int, Enum)) or member.bits > unit:
                raise LoaderError(f"bitfield '{member.name}' of {_label(decl)} must be an "
                                  f"integer of at least {member.bits} bits.")
            start = 0 if decl.union else bit
            if not decl.packed and start % unit + member.bits > unit:
                start = -(-start // unit) * unit
            offsets.append(start)
            bit = start + member.bits
        else:
            start = 0 if decl.union else -(-bit // (member_align * 8)) * member_align * 8
            offsets.append(start)
            bit = start + unit
        end = max(end, bit)
        align = max(align, member_align)
    size = -(-end // 8)
    size = -(-size // align) * align
    return size, align, tuple(offsets)


def _resolved(decl: Decl) -> Decl:
    while isinstance(decl, Typedef):
        decl = decl.type
    return decl


def _label(decl: Struct) -> str:
    return f"{'union' if decl.union else 'struct'} {decl.name or '(anon)'}"


# ------------------------------------------------------------------ BTF
class _Emitter:
    def __init__(self) -> None:
        self.types: list[BtfType] = []
        self.ids: dict[Decl, int] = {}

    def add(self, decl: Decl | None) -> int:
        if decl is None:
            return 0
        found = self.ids.get(decl)
        if found is not None:
            return found
        record = self._record(decl)
        self.types.append(record)
        self.ids[decl] = record.id
        return record.id

    def _next(self) -> int:
        return len(self.types) + 1

    def _record(self, decl: Decl) -> BtfType:
        if isinstance(decl, Int):
            encoding = (IntEncoding.SIGNED if decl.signed else 0) | \
                (IntEncoding.CHAR if decl.char else 0) | (IntEncoding.BOOL if decl.boolean else 0)
            return BtfType(self._next(), BtfKind.INT, decl.name, size=decl.size,
                           int_encoding=int(encoding), int_bits=decl.size * 8)
        if isinstance(decl, Typedef):
            target = self.add(decl.type)
            return BtfType(self._next(), BtfKind.TYPEDEF, decl.name, type_id=target)
        if isinstance(decl, Pointer):
            target = self.add(decl.target)
            return BtfType(self._next(), BtfKind.PTR, type_id=target)
        if isinstance(decl, Array):
            elem = self.add(decl.elem)
            index = self.add(ARRAY_INDEX)
            return BtfType(self._next(), BtfKind.ARRAY, elem_type=elem, index_type=index,
                           nelems=decl.nelems)
        if isinstance(decl, Enum):
            kind = BtfKind.ENUM if decl.size <= 4 else BtfKind.ENUM64
            return BtfType(self._next(), kind, decl.name, kind_flag=decl.signed,
                           vlen=len(decl.values), size=decl.size,
                           enumerators=tuple(BtfEnumerator(n, v) for n, v in decl.values))
        size, _align, offsets = _layout(decl)
        members = tuple(BtfMember(m.name, self.add(m.type), offset, m.bits)
                        for m, offset in zip(decl.fields, offsets))
        return BtfType(self._next(), BtfKind.UNION if decl.union else BtfKind.STRUCT,
                       decl.name, kind_flag=any(m.bits for m in decl.fields),
                       vlen=len(members), size=size, members=members)


#: The index type of arrays, as compilers emit it.
ARRAY_INDEX = Int("__ARRAY_SIZE_TYPE__", 4)


def emit_btf(decls: Iterable[Decl], order: Sequence[Decl] = ()) -> list[BtfType]:
    """BTF records (ids from 1) for the declarations and everything they are built from;
    ``order`` first, so common types get the same small ids in every description."""
    emitter = _Emitter()
    for decl in (*order, *decls):
        emitter.add(decl)
    return emitter.types


__all__ = ["Array", "Decl", "Enum", "Field", "Int", "Pointer", "Struct", "Typedef",
           "bitfields", "emit_btf", "fields", "size_align", "struct", "union"]
