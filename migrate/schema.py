"""Checks on decoded records: every field's type, range and enum value, named in the error.

A record arrives from msgpack as a plain dict of untrusted values. :class:`Fields` reads it one
field at a time and refuses, with a sentence naming the record and the field, anything that is
missing, of the wrong type, out of range, not a member of its enum, or not expected at all -
so code above it only ever sees well-typed values and never raises KeyError or TypeError.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any, TypeVar, overload

from .errors import SnapshotError

E = TypeVar("E", bound=IntEnum)
T = TypeVar("T")
U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
MAX_NAME = 256  # object, device and profile names
MAX_TEXT = 1 << 16  # descriptions, source lines, file names


class SnapshotFormatError(SnapshotError):
    """Bytes that are not a well-formed snapshot of a supported format."""


class Fields:
    """Typed access to one record; :meth:`done` refuses fields nobody asked for.

    The accessors are named after the types they return, so annotations in this class (and
    in :class:`Tuple`) spell the builtin types as ``builtins.int`` and so on.
    """

    def __init__(self, record: object, where: builtins.str) -> None:
        if not isinstance(record, Mapping):
            raise SnapshotFormatError(f"{where} must be a map of fields, not "
                                      f"{_kind(record)}.")
        self.record: Mapping[object, object] = record
        self.where = where
        self._seen: set[object] = set()

    def _get(self, key: builtins.str, default: object = ...) -> object:
        self._seen.add(key)
        if key in self.record:
            return self.record[key]
        if default is ...:
            raise SnapshotFormatError(f"{self.where} lacks the field '{key}'.")
        return default

    def fail(self, key: builtins.str, message: builtins.str) -> SnapshotFormatError:
        return SnapshotFormatError(f"{self.where}: field '{key}' {message}.")

    def int(self, key: builtins.str, lo: builtins.int = 0, hi: builtins.int = U64,
            default: object = ...) -> builtins.int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(key, f"must be an integer in {lo}..{hi}, got {_show(value)}")
        return value

    def opt_int(self, key: builtins.str, lo: builtins.int = 0, hi: builtins.int = U64) -> builtins.int | None:
        """An integer, or nil (absent is an error like for any other field)."""
        if self._get(key) is None:
            return None
        return self.int(key, lo, hi)

    def bool(self, key: builtins.str, default: object = ...) -> builtins.bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_show(value)}")
        return value

    def str(self, key: builtins.str, max_len: builtins.int = MAX_NAME, default: object = ...,
            empty: builtins.bool = True) -> builtins.str:
        value = self._get(key, default)
        if not isinstance(value, str) or len(value) > max_len or (not empty and not value):
            size = f"{'1' if not empty else '0'}..{max_len} characters"
            raise self.fail(key, f"must be a string of {size}, got {_show(value)}")
        return value

    def bytes(self, key: builtins.str, max_len: builtins.int, default: object = ...) -> builtins.bytes:
        value = self._get(key, default)
        if not isinstance(value, bytes) or len(value) > max_len:
            raise self.fail(key, f"must be binary data of at most {max_len} bytes, got "
                                 f"{_show(value)}")
        return value

    def enum(self, key: builtins.str, enum: type[E], default: object = ...) -> E:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or \
                value not in enum._value2member_map_:
            names = ", ".join(f"{m.name}={m.value}" for m in enum)
            raise self.fail(key, f"must be one of {enum.__name__} ({names}), got "
                                 f"{_show(value)}")
        return enum(value)

    def list(self, key: builtins.str, max_len: builtins.int, default: object = ...) -> builtins.list[Any]:
        value = self._get(key, default)
        if not isinstance(value, list) or len(value) > max_len:
            raise self.fail(key, f"must be a list of at most {max_len} items, got "
                                 f"{_show(value)}")
        return value

    @overload
    def sub(self, key: builtins.str) -> Fields: ...

    @overload
    def sub(self, key: builtins.str, default: None) -> Fields | None: ...

    def sub(self, key: builtins.str, default: object = ...) -> Fields | None:
        """The record in field ``key``; None only when it is nil or absent and ``default`` is
        None."""
        value = self._get(key, default)
        if value is None and default is None:
            return None
        return Fields(value, f"{self.where}, field '{key}'")

    def items(self, key: builtins.str, max_len: builtins.int,
              parse: Callable[[Tuple, builtins.str], T]) -> builtins.list[T]:
        """A list of fixed-shape tuples (msgpack arrays), each parsed by ``parse``."""
        out: builtins.list[T] = []
        for i, item in enumerate(self.list(key, max_len)):
            out.append(parse(Tuple(item, f"{self.where}, {key}[{i}]"), key))
        return out

    def done(self) -> None:
        extra = [k for k in self.record if k not in self._seen]
        if extra:
            raise SnapshotFormatError(f"{self.where} has unexpected fields "
                                      f"{', '.join(_show(k) for k in extra[:8])}; it may come "
                                      f"from a newer format.")


class Tuple:
    """Typed access to a msgpack array of fixed length: ``t.int(0)``, ``t.str(1)``..."""

    def __init__(self, value: object, where: builtins.str) -> None:
        if not isinstance(value, list):
            raise SnapshotFormatError(f"{where} must be a list, not {_kind(value)}.")
        self.value = value
        self.where = where

    def length(self, *allowed: builtins.int) -> Tuple:
        if len(self.value) not in allowed:
            raise SnapshotFormatError(f"{self.where} must have "
                                      f"{' or '.join(map(str, allowed))} items, not "
                                      f"{len(self.value)}.")
        return self

    def _at(self, i: builtins.int) -> object:
        if i >= len(self.value):
            raise SnapshotFormatError(f"{self.where} lacks item {i}.")
        return self.value[i]

    def int(self, i: builtins.int, lo: builtins.int = 0, hi: builtins.int = U64) -> builtins.int:
        value = self._at(i)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise SnapshotFormatError(f"{self.where}: item {i} must be an integer in "
                                      f"{lo}..{hi}, got {_show(value)}.")
        return value

    def str(self, i: builtins.int, max_len: builtins.int = MAX_NAME,
            empty: builtins.bool = True) -> builtins.str:
        value = self._at(i)
        if not isinstance(value, str) or len(value) > max_len or (not empty and not value):
            raise SnapshotFormatError(f"{self.where}: item {i} must be a string of at most "
                                      f"{max_len} characters, got {_show(value)}.")
        return value

    def enum(self, i: builtins.int, enum: type[E]) -> E:
        value = self._at(i)
        if isinstance(value, bool) or not isinstance(value, int) or \
                value not in enum._value2member_map_:
            raise SnapshotFormatError(f"{self.where}: item {i} must be one of "
                                      f"{enum.__name__}, got {_show(value)}.")
        return enum(value)

    def list(self, i: builtins.int, max_len: builtins.int) -> builtins.list[Any]:
        value = self._at(i)
        if not isinstance(value, list) or len(value) > max_len:
            raise SnapshotFormatError(f"{self.where}: item {i} must be a list of at most "
                                      f"{max_len} items, got {_show(value)}.")
        return value


def _kind(value: object) -> str:
    return {dict: "a map", list: "a list", str: "a string", bytes: "binary data",
            int: "an integer", bool: "a boolean", float: "a float",
            type(None): "nil"}.get(type(value), type(value).__name__)


def _show(value: object) -> str:
    if isinstance(value, (int, bool)) or value is None:
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40] + ("..." if len(value) > 40 else ""))
    if isinstance(value, (bytes, list, dict)):
        return f"{_kind(value)} of length {len(value)}"
    return _kind(value)
