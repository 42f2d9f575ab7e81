"""The one codec of control messages: any request or response body from its ``LAYOUT``.

A message class's layout (:mod:`.layout`) is compiled once, on first use, into a list of
steps; neighbouring fixed-size integers become one precompiled ``struct.Struct`` so the
per-command path packs and unpacks them in one call. When a fused read or write fails, the
same fields are taken one at a time through :class:`.wire.Reader` and :class:`.wire.Writer`
so the error names the field at fault, exactly as a field-by-field codec would.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

from .layout import (
    Bitmap,
    Bounded,
    Bytes,
    Entries,
    Flags,
    Group,
    Int,
    Length,
    Name,
    OptionalU32,
    Records,
    Reserved,
    Text,
    Trailer,
    U32Set,
    Version,
)
from .wire import (
    MAX_BATCH_COUNT,
    MAX_KEY_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_VALUE_SIZE,
    CtrlEncodeError,
    Reader,
    Writer,
)

_FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

#: Encodes one step of ``message`` into the writer; ``lengths`` are the counts of its
#: length fields, worked out before anything is written.
Encoder = Callable[[Any, Writer, dict[str, int]], None]
#: Decodes one step into ``values``; ``lengths`` gathers the counts read so far and
#: ``state`` what later steps need (presence flags, seen record slots).
Decoder = Callable[[Reader, dict[str, Any], dict[str, int], dict[str, Any]], None]


class MessageCodec:
    """The compiled layout of one message class."""

    __slots__ = ("_in_trailer", "checks", "counts", "decoders", "encoders", "fields",
                 "request_what", "response_what")

    def __init__(self, layout: tuple[Any, ...], fields: tuple[str, ...], what: str = "") -> None:
        self.fields = fields
        self.request_what, self.response_what = f"{what} request", f"{what} response"
        self.encoders: list[Encoder] = []
        self.decoders: list[Decoder] = []
        #: (field, Length) for every length, counted before encoding when a check needs them
        self.counts: list[tuple[str, Length]] = []
        #: (field, wire name, check, trailer): refusals made before anything is written
        #: (those of a trailer's items only when it is there)
        self.checks: list[tuple[str, str, Callable[[Any], str | None], str]] = []
        self._in_trailer = ""
        items = _flattened(layout)
        lengths = {item.field: item for item in items if isinstance(item, Length)}
        self._compile_items(layout, lengths)
        if not any(isinstance(item, Records) for item in items):
            self.counts = []  # only records look at the other lengths
        covered = _covered(layout)
        missing = [f for f in fields if f not in covered]
        if missing:
            raise TypeError(f"the layout leaves out the fields {', '.join(missing)}")

    # ------------------------------------------------------------------ encoding
    def encode(self, message: Any, w: Writer) -> None:
        lengths: dict[str, int] = {}
        for field, item in self.counts:
            lengths[field] = _count(getattr(message, field), item.unit)
        for field, name, check, trailer in self.checks:
            if trailer and getattr(message, trailer) is None:
                continue
            problem = check(getattr(message, field))
            if problem is not None:
                raise CtrlEncodeError(w.what, name, problem)
        for encoder in self.encoders:
            encoder(message, w, lengths)

    def decode(self, r: Reader) -> dict[str, Any]:
        values: dict[str, Any] = {}
        lengths: dict[str, int] = {}
        state: dict[str, Any] = {}
        for decoder in self.decoders:
            decoder(r, values, lengths, state)
        return values

    # ------------------------------------------------------------------ compiling
    def _compile_items(self, layout: tuple[Any, ...], lengths: dict[str, Length]) -> None:
        run: list[Int | Length] = []
        for item in layout:
            if isinstance(item, Int) or (isinstance(item, Length) and not item.over):
                run.append(item)
                if isinstance(item, Length):
                    self._length_checks(item)
                continue
            self._flush(run)
            run = []
            if isinstance(item, Trailer):
                self._trailer(item, lengths)
            else:
                self._compile(item, lengths)
        self._flush(run)

    def _trailer(self, item: Trailer, lengths: dict[str, Length]) -> None:
        """The trailer's items, encoded and decoded only when its flag says it is there."""
        outer = self.encoders, self.decoders
        self.encoders, self.decoders = [], []
        self._in_trailer = item.present
        self._compile_items(item.items, lengths)
        self._in_trailer = ""
        encoders, decoders = self.encoders, self.decoders
        self.encoders, self.decoders = outer
        present = item.present
        names = tuple(sorted(_covered(item.items) - {present}))

        def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
            if getattr(message, present) is not None:
                for step in encoders:
                    step(message, w, counts)
                return
            defaults = type(message).__dataclass_fields__
            for name in names:  # the wire cannot carry them without the trailer
                if getattr(message, name) != defaults[name].default:
                    raise CtrlEncodeError(w.what, name, f"is given but {present} is not")

        def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
                   state: dict[str, Any]) -> None:
            if state[present]:
                for step in decoders:
                    step(r, values, counts, state)

        self.encoders.append(encode)
        self.decoders.append(decode)

    def _length_checks(self, item: Length) -> None:
        self.counts.append((item.field, item))
        if item.check is not None:
            self.checks.append((item.field, item.name, item.check, self._in_trailer))

    def _flush(self, run: list[Int | Length]) -> None:
        """One struct for neighbouring integers and lengths; lengths are checked against
        their limits after the one unpack, in wire order."""
        if not run:
            return
        names = tuple(item.field if isinstance(item, Int) else item.name for item in run)
        sizes = tuple(item.size for item in run)
        packer = struct.Struct("<" + "".join(_FORMATS[s] for s in sizes))
        pack, unpack, total = packer.pack, packer.unpack_from, packer.size
        getters = tuple(_getter(item.field) if isinstance(item, Int) else _counter(item)
                        for item in run)
        plain = all(isinstance(item, Int) for item in run)
        ints = tuple(item.field for item in run if isinstance(item, Int))
        steps = tuple((i, item) for i, item in enumerate(run) if isinstance(item, Length))
        slots = tuple((i, item.field) for i, item in enumerate(run) if isinstance(item, Int))

        def encode(message: Any, w: Writer, lengths: dict[str, int]) -> None:
            values = [get(message) for get in getters]
            try:
                w.buf += pack(*values)
            except struct.error:
                for name, size, value in zip(names, sizes, values, strict=True):
                    w.uint(size, name, value)

        def decode_ints(r: Reader, values: dict[str, Any], lengths: dict[str, int],
                        state: dict[str, Any]) -> None:
            if len(r.data) - r.pos >= total:
                values.update(zip(ints, unpack(r.data, r.pos), strict=True))
                r.pos += total
                return
            for name, size in zip(names, sizes, strict=True):
                values[name] = r.uint(size, name)

        def decode(r: Reader, values: dict[str, Any], lengths: dict[str, int],
                   state: dict[str, Any]) -> None:
            if len(r.data) - r.pos >= total:
                got = unpack(r.data, r.pos)
                r.pos += total
                for i, field in slots:
                    values[field] = got[i]
                for i, length in steps:
                    lengths[length.field] = _checked(r, length, got[i], lengths)
                return
            for part in run:  # field by field, so that the error names the first at fault
                if isinstance(part, Int):
                    values[part.field] = r.uint(part.size, part.field)
                else:
                    lengths[part.field] = _checked(r, part, r.uint(part.size, part.name),
                                                   lengths)

        self.encoders.append(encode)
        self.decoders.append(decode_ints if plain else decode)

    def _compile(self, item: Any, lengths: dict[str, Length]) -> None:
        compiler = _COMPILERS.get(type(item))
        if compiler is None:
            raise TypeError(f"{item!r} is not a control message wire type")
        if isinstance(item, Length):
            self._length_checks(item)
        if isinstance(item, Text) and item.check is not None:
            self.checks.append((item.field, item.field, item.check, self._in_trailer))
        encode, decode = compiler(item, lengths)
        self.encoders.append(encode)
        self.decoders.append(decode)


def _getter(name: str) -> Callable[[Any], Any]:
    def get(message: Any) -> Any:
        return getattr(message, name)
    return get


def _counter(item: Length) -> Callable[[Any], int]:
    field, unit = item.field, item.unit

    def count(message: Any) -> int:
        return _count(getattr(message, field), unit)
    return count


def _checked(r: Reader, item: Length, count: int, lengths: dict[str, int]) -> int:
    """A length read from the wire, refused past its limit or below its minimum."""
    bound = lengths[item.limit_of] if item.limit_of else item.limit
    if count > bound:
        raise r.error(item.name, f"{count} exceeds the limit of {bound}")
    if count < item.lo:
        raise r.error(item.name, item.too_small)
    return count


def _count(value: Any, unit: int) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    return len(value) // unit


def _flattened(layout: tuple[Any, ...]) -> list[Any]:
    """The layout's items with each trailer's in its place."""
    out: list[Any] = []
    for item in layout:
        out.extend(_flattened(item.items) if isinstance(item, Trailer) else (item,))
    return out


def _covered(layout: tuple[Any, ...]) -> set[str]:
    out: set[str] = set()
    for item in _flattened(layout):
        if isinstance(item, Flags):
            out.update(bit.field for bit in item.bits)
        elif isinstance(item, Entries):
            out.update((item.keys, item.values, item.count, item.key_size, item.value_size))
        elif hasattr(item, "field"):
            out.add(item.field)
    return out


# ------------------------------------------------------------------ one compiler per wire type
Compiled = tuple[Encoder, Decoder]


def _optional_u32(item: OptionalU32, lengths: dict[str, Length]) -> Compiled:
    field, none = item.field, item.none

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        value = getattr(message, field)
        w.u32(field, none if value is None else value)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        value = r.u32(field)
        values[field] = None if value == none else value
    return encode, decode


def _bounded(item: Bounded, lengths: dict[str, Length]) -> Compiled:
    field, lo, hi, too_small = item.field, item.lo, item.hi, item.too_small

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        value = getattr(message, field)
        if not lo <= value <= hi:
            raise CtrlEncodeError(w.what, field, f"{value} is not between {lo} and {hi}")
        w.u32(field, value)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        value = r.length(field, hi)
        if value < lo:
            raise r.error(field, too_small)
        values[field] = value
    return encode, decode


def _reserved(item: Reserved, lengths: dict[str, Length]) -> Compiled:
    name, size = item.name, item.size
    zeros = bytes(size)

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        w.raw(name, zeros)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        r.zero(name, size)
    return encode, decode


def _version(item: Version, lengths: dict[str, Length]) -> Compiled:
    name, size, version = item.name, item.size, item.value

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        w.uint(size, name, version)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        value = r.uint(size, name)
        if value != version:
            raise r.error(name, f"version {value} is not the supported {version}")
    return encode, decode


def _flags(item: Flags, lengths: dict[str, Length]) -> Compiled:
    name, size, bits = item.name, item.size, item.bits
    known = 0
    for bit in bits:
        known |= bit.mask

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        word = 0
        for bit in bits:
            value = getattr(message, bit.field)
            if (value is not None) if bit.present else value:
                word |= bit.mask
        w.uint(size, name, word)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        word = r.uint(size, name)
        if word & ~known:
            raise r.error(name, f"unknown flags {word:#x}")
        for bit in bits:
            if bit.present:
                state[bit.field] = bool(word & bit.mask)
            else:
                values[bit.field] = bool(word & bit.mask)
    return encode, decode


def _name(item: Name, lengths: dict[str, Length]) -> Compiled:
    field = item.field

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        w.name(field, getattr(message, field))

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        values[field] = r.name(field)
    return encode, decode


def _length(item: Length, lengths: dict[str, Length]) -> Compiled:
    field, name, size, limit, over = item.field, item.name, item.size, item.limit, item.over
    count_of = _counter(item)

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        count = count_of(message)
        if over and count > limit:
            raise CtrlEncodeError(w.what, name, f"{count} {over} exceed the limit of {limit}")
        w.uint(size, name, count)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        counts[field] = _checked(r, item, r.uint(size, name), counts)
    return encode, decode


def _bytes(item: Bytes, lengths: dict[str, Length]) -> Compiled:
    field, optional = item.field, item.optional
    limit = item.limit or MAX_MESSAGE_SIZE
    length = lengths[field]
    unit, length_name = length.unit, length.name

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        w.raw(field, getattr(message, field) or b"", limit)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        data = r.raw(field, counts[field] * unit)
        if optional and not state[field]:
            if data:
                raise r.error(length_name, f"a {field} is given but {optional} is not set")
            values[field] = None
            return
        values[field] = data
    return encode, decode


def _text(item: Text, lengths: dict[str, Length]) -> Compiled:
    field, valid = item.field, item.valid
    limit = item.limit or MAX_MESSAGE_SIZE

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        w.raw(field, getattr(message, field).encode(), limit)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        text = r.text(field, counts[field])
        if valid is not None:
            problem = valid(text)
            if problem is not None:
                raise r.error(field, problem)
        values[field] = text
    return encode, decode


def _records(item: Records, lengths: dict[str, Length]) -> Compiled:
    field, record, layout, size = item.field, item.record, item.layout, item.size
    check_all, check = item.check_all, item.check
    length_name = lengths[field].name

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        records = getattr(message, field)
        if check_all is not None:
            problem = check_all(records)
            if problem is not None:
                raise CtrlEncodeError(w.what, *problem)
        for index, rec in enumerate(records):
            if check is not None:
                rec, problem = check(index, rec, counts, set(), False)
                if problem is not None:
                    raise CtrlEncodeError(w.what, *problem)
            for sub in layout:
                name = f"{field}[{index}].{sub.field if isinstance(sub, Int) else sub.name}"
                if isinstance(sub, Int):
                    w.uint(sub.size, name, getattr(rec, sub.field))
                else:
                    w.raw(name, bytes(sub.size))

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        count = counts[field]
        if count * size > r.remaining:
            raise r.error(length_name, f"{count} records announced, {r.remaining} bytes left")
        seen: set[int] = set()
        out = []
        for index in range(count):
            fields: dict[str, int] = {}
            for sub in layout:
                if isinstance(sub, Int):
                    fields[sub.field] = r.uint(sub.size, f"{field}[{index}].{sub.field}")
                else:
                    r.zero(f"{field}[{index}].{sub.name}", sub.size)
            rec = record(**fields)
            if check is not None:
                rec, problem = check(index, rec, counts, seen, True)
                if problem is not None:
                    raise r.error(*problem)
            out.append(rec)
        values[field] = tuple(out)
    return encode, decode


def _u32_set(item: U32Set, lengths: dict[str, Length]) -> Compiled:
    field, element, disorder = item.field, item.element, item.disorder

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        for value in sorted(getattr(message, field)):
            w.u32(element, value)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        items = [r.u32(element) for _ in range(counts[field])]
        if items != sorted(set(items)):
            raise r.error(element, disorder)
        values[field] = frozenset(items)
    return encode, decode


def _bitmap(item: Bitmap, lengths: dict[str, Length]) -> Compiled:
    field = item.field

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        bits = 0
        for v in getattr(message, field):
            if not 0 <= v < 64:
                raise CtrlEncodeError(w.what, field, f"type {v} does not fit the 64-bit map")
            bits |= 1 << v
        w.u64(field, bits)

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        bits = r.u64(field)
        values[field] = frozenset(i for i in range(64) if bits >> i & 1)
    return encode, decode


def _group(item: Group, lengths: dict[str, Length]) -> Compiled:
    field, kind = item.field, item.type
    names = tuple(f.name for f in dataclasses.fields(kind))
    wire = tuple(f"{field}.{name}" for name in names)

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        group = getattr(message, field)
        for name, wire_name in zip(names, wire, strict=True):
            w.u32(wire_name, getattr(group, name))

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        values[field] = kind(**{name: r.u32(wire_name)
                                for name, wire_name in zip(names, wire, strict=True)})
    return encode, decode


def _entries(item: Entries, lengths: dict[str, Length]) -> Compiled:
    names = (item.count, item.key_size, item.value_size)
    key_field, value_field = item.keys, item.values

    def encode(message: Any, w: Writer, counts: dict[str, int]) -> None:
        count, key_size, value_size = (getattr(message, name) for name in names)
        keys, values = getattr(message, key_field), getattr(message, value_field)
        for name, number in zip(("count", "key_size", "value_size"),
                                (count, key_size, value_size), strict=True):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise CtrlEncodeError(w.what, name, f"must be a non-negative int, not "
                                      f"{number!r}")
        if count > MAX_BATCH_COUNT:
            raise CtrlEncodeError(w.what, "count", f"{count} entries exceed the limit of "
                                  f"{MAX_BATCH_COUNT}")
        if key_size > MAX_KEY_SIZE or value_size > MAX_VALUE_SIZE:
            raise CtrlEncodeError(w.what, "key_size", "key or value size exceeds its limit")
        if count and key_size == 0:
            raise CtrlEncodeError(w.what, "key_size", "batch entries have a key")
        if len(keys) != count * key_size or len(values) != count * value_size:
            raise CtrlEncodeError(w.what, "count", f"{count} entries of {key_size}+{value_size}"
                                  f" bytes need {count * key_size}+{count * value_size} bytes, "
                                  f"got {len(keys)}+{len(values)}")
        w.u32("count", count)
        w.u32("key_size", key_size)
        w.u32("value_size", value_size)
        w.raw("keys", bytes(keys))
        w.raw("values", bytes(values))

    def decode(r: Reader, values: dict[str, Any], counts: dict[str, int],
               state: dict[str, Any]) -> None:
        count = r.length("count", MAX_BATCH_COUNT)
        key_size = r.length("key_size", MAX_KEY_SIZE)
        value_size = r.length("value_size", MAX_VALUE_SIZE)
        if count * (key_size + value_size) > MAX_MESSAGE_SIZE:
            raise r.error("count", f"{count} entries of {key_size}+{value_size} bytes exceed "
                          f"the message limit of {MAX_MESSAGE_SIZE}")
        if count and (key_size == 0):
            raise r.error("key_size", "batch entries have a key")
        values[names[0]], values[names[1]], values[names[2]] = count, key_size, value_size
        values[key_field] = r.raw("keys", count * key_size)
        values[value_field] = r.raw("values", count * value_size)
    return encode, decode


_COMPILERS: dict[type, Callable[[Any, dict[str, Length]], Compiled]] = {
    OptionalU32: _optional_u32, Bounded: _bounded, Reserved: _reserved, Version: _version,
    Flags: _flags, Name: _name, Length: _length, Bytes: _bytes, Text: _text,
    Records: _records, U32Set: _u32_set, Bitmap: _bitmap, Group: _group, Entries: _entries,
}

_CODECS: dict[type, MessageCodec] = {}


def codec_of(cls: Any, skip: tuple[str, ...] = ()) -> MessageCodec:
    """The compiled layout of message class ``cls`` (its ``LAYOUT``), built on first use;
    ``skip`` names fields outside the body (a response's status and log)."""
    codec = _CODECS.get(cls)
    if codec is None:
        fields = tuple(f.name for f in dataclasses.fields(cls) if f.name not in skip)
        codec = _CODECS[cls] = MessageCodec(cls.LAYOUT, fields, cls.COMMAND.name)
    return codec


__all__ = ["MessageCodec", "codec_of"]
