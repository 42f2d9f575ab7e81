"""The wire types a control message's ``LAYOUT`` is made of.

Every request and response class lists its body once, in wire order, as a tuple of these
items (docs/virtio-offload.md draws the same layouts); :mod:`.codec` encodes and decodes any
message from it. An item names the dataclass field it carries and, where the two differ, the
name the wire and its errors use (``key_len`` for the length of ``key``). Integers are
unsigned little-endian (virtio 1.2, 1.4); lengths are checked against their hard limits
(:mod:`.wire`) before anything is read or allocated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Checks one record: (index, record, lengths by field, seen, decoding) -> (record, refusal).
RecordCheck = Callable[[int, Any, dict[str, int], set[int], bool],
                       tuple[Any, tuple[str, str] | None]]


@dataclass(frozen=True, slots=True)
class Int:
    """An unsigned integer field of ``size`` bytes."""

    field: str
    size: int


def u8(field: str) -> Int:
    return Int(field, 1)


def u16(field: str) -> Int:
    return Int(field, 2)


def u32(field: str) -> Int:
    return Int(field, 4)


def u64(field: str) -> Int:
    return Int(field, 8)


@dataclass(frozen=True, slots=True)
class OptionalU32:
    """A u32 field that may be None, which the wire spells ``none``."""

    field: str
    none: int


@dataclass(frozen=True, slots=True)
class Bounded:
    """A u32 field that must lie in ``lo..hi`` (a count a command asks for)."""

    field: str
    lo: int
    hi: int
    too_small: str  # the decode error below ``lo``


@dataclass(frozen=True, slots=True)
class Reserved:
    """Bytes that are zero on the wire, so that they can gain a meaning later."""

    name: str
    size: int


@dataclass(frozen=True, slots=True)
class Version:
    """A version number the decoder must know (the layout after it depends on it)."""

    name: str
    size: int
    value: int


@dataclass(frozen=True, slots=True)
class Bit:
    """One flag bit: a bool field, or (``present``) whether an optional field is given."""

    mask: int
    field: str
    present: str = ""  # the flag's name, for a bit that says an optional field is present


@dataclass(frozen=True, slots=True)
class Flags:
    """A flags word made of ``bits``; unknown bits are refused."""

    name: str
    size: int
    bits: tuple[Bit, ...]


@dataclass(frozen=True, slots=True)
class Name:
    """A BPF object name: at most 15 characters of [A-Za-z0-9_.], NUL-padded to 16 bytes."""

    field: str


@dataclass(frozen=True, slots=True)
class Length:
    """The length of a later ``Bytes``/``Text``/``Records``/``U32Set`` field, in ``unit``s.

    ``limit`` bounds it, or ``limit_of`` (the value of an earlier length); ``lo`` and
    ``too_small`` refuse a short one. To encode, ``check`` refuses a value before anything is
    written (returns the message, or None), and ``over`` (what is counted) refuses a count
    past ``limit`` where the length is written.
    """

    field: str
    name: str
    size: int = 4
    limit: int = 0
    limit_of: str = ""
    unit: int = 1
    lo: int = 0
    too_small: str = ""
    check: Callable[[Any], str | None] | None = None
    over: str = ""


@dataclass(frozen=True, slots=True)
class Bytes:
    """The bytes of ``field``, as many as its ``Length`` said; at most ``limit`` to encode.

    ``optional`` is the ``Bit`` flag that says the field is present (None when absent).
    """

    field: str
    limit: int = 0
    optional: str = ""


@dataclass(frozen=True, slots=True)
class Text:
    """UTF-8 text of ``field``, as many bytes as its ``Length`` said.

    ``limit`` bounds the encoded bytes where they are written; ``check`` refuses a value
    before anything is written, ``valid`` a decoded one (each returns the message, or None).
    """

    field: str
    limit: int = 0
    check: Callable[[str], str | None] | None = None
    valid: Callable[[str], str | None] | None = None


@dataclass(frozen=True, slots=True)
class Records:
    """``field``'s tuple of records, each of ``record`` laid out as ``layout``.

    ``check_all`` refuses the whole tuple before any record is written; ``check`` refuses
    one record and returns it normalised: it gets the record's index, the record, the
    counts of the message's lengths by field, the slots already seen (decoding) and whether
    it is decoding. Refusals are (wire name, message).
    """

    field: str
    record: type
    layout: tuple[Int | Reserved, ...]
    size: int
    check_all: Callable[[tuple[Any, ...]], tuple[str, str] | None] | None = None
    check: RecordCheck | None = None


@dataclass(frozen=True, slots=True)
class U32Set:
    """A set of u32s written once each in ascending order (``element`` names them;
    ``disorder`` is the decode error for a list that is not)."""

    field: str
    element: str
    disorder: str


@dataclass(frozen=True, slots=True)
class Bitmap:
    """A set of numbers below 64 as one u64 with bit ``n`` set for ``n``."""

    field: str


@dataclass(frozen=True, slots=True)
class Group:
    """A dataclass of u32 fields, each on the wire as ``field.name``."""

    field: str
    type: type


@dataclass(frozen=True, slots=True)
class Entries:
    """Batch entries in columns: count, key and value size, then every key, then every value.

    The message carries them as they travel: ``count``, ``key_size`` and ``value_size`` ints
    and one ``keys`` and one ``values`` blob, so a batch of thousands of entries is encoded
    and decoded with a few slices and no per-entry objects. The sizes and the count are
    bounded so the whole batch fits one message before anything is read.
    """

    keys: str
    values: str
    count: str = "count"
    key_size: str = "key_size"
    value_size: str = "value_size"


@dataclass(frozen=True, slots=True)
class Trailer:
    """Items on the wire only when the ``Bit`` flag for ``present`` is set (``present`` is
    not None): a part added to a message later, so that a message without it keeps the
    bytes it always had. The trailer comes last; its items name their fields as any other."""

    present: str
    items: tuple[Any, ...]


def blob(field: str, limit: int) -> tuple[Length, Bytes]:
    """A u32 length named ``<field>_len`` followed by the bytes, at most ``limit``."""
    return Length(field, f"{field}_len", limit=limit), Bytes(field, limit)


Item = (Int | OptionalU32 | Bounded | Reserved | Version | Flags | Name | Length | Bytes | Text
        | Records | U32Set | Bitmap | Group | Entries | Trailer)
