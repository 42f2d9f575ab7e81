"""A peer's msgpack map in, a typed parameters dataclass out; result dataclasses back to msgpack.

One validator for every method of the control socket: a method declares its parameters as a
frozen dataclass (service/methods.py) and :func:`parse_params` checks a request against it -
the params array holds one map (or nothing), every key is a declared field, every required
field is there, every value has the declared type (msgpack bin is ``bytes``, str is ``str``;
a bool is not an int) and every int lies in the range its field declares. The first fault is
refused with :class:`~service.errors.InvalidRequest` naming the field, so a hostile peer gets
an answer and the daemon a value it can trust. ``None`` for an optional field means "not
given", as clients send it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin

from .errors import InvalidRequest

T = TypeVar("T")

U32 = (1 << 32) - 1
U63 = (1 << 63) - 1
U64 = (1 << 64) - 1


def ranged(low: int, high: int, *, default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    """A field whose int values must lie in ``low..high`` (both included)."""
    return dataclasses.field(default=default, metadata={"range": (low, high), "doc": doc})


def items(most: int, *, default: Any = dataclasses.MISSING, doc: str = "") -> Any:
    """A list field of at most ``most`` elements."""
    return dataclasses.field(default=default, metadata={"items": most, "doc": doc})


def documented(doc: str, *, default: Any = dataclasses.MISSING) -> Any:
    return dataclasses.field(default=default, metadata={"doc": doc})


_HINTS: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotations of a dataclass (its module's names, postponed annotations),
    once per class."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def parse_params(cls: type[T], raw: Any, method: str) -> T:
    """The parameters of ``method`` from a request's params array, as ``cls``."""
    params = (raw[0] if raw else {}) if isinstance(raw, list | tuple) and len(raw) <= 1 else None
    if not isinstance(params, dict):
        raise InvalidRequest(f"the parameters of {method!r} must be an array holding one map of "
                             f"named parameters, not {_kind(raw)}.")
    return _dataclass(cls, params, method, "")


def _dataclass(cls: type[T], params: Mapping[Any, Any], method: str, prefix: str) -> T:
    hints = field_types(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in params:
        if not isinstance(key, str):
            raise InvalidRequest(f"parameter names of {method!r} must be strings, not "
                                 f"{_kind(key)}.", field=prefix.rstrip(".") or None)
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise InvalidRequest(f"{method!r} has no parameter {prefix + key!r}; its "
                                 f"parameters: {known}.", field=prefix + key)
    values: dict[str, Any] = {}
    for name, f in fields.items():
        value = params.get(name)
        if value is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidRequest(f"the parameter {prefix + name!r} of {method!r} is "
                                     "missing.", field=prefix + name)
            continue
        values[name] = _value(hints[name], value, f.metadata, method, prefix + name)
    return cls(**values)


def _value(kind: Any, value: Any, meta: Mapping[str, Any], method: str, name: str) -> Any:
    """``value`` checked against the type ``kind`` (the field's annotation)."""
    origin = get_origin(kind)
    if origin is Union or origin is types.UnionType:
        options = [k for k in get_args(kind) if k is not type(None)]
        for option in options:
            if _matches(option, value):
                return _value(option, value, meta, method, name)
        raise _wrong(kind, value, method, name)
    if kind is Any:
        return value
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise _wrong(kind, value, method, name)
        return _dataclass(kind, value, method, name + ".")  # type: ignore[arg-type]
    if origin is list:
        if not isinstance(value, list):
            raise _wrong(kind, value, method, name)
        most = meta.get("items")
        if most is not None and len(value) > most:
            raise InvalidRequest(f"the parameter {name!r} of {method!r} holds {len(value)} "
                                 f"items; at most {most} are taken.", field=name)
        (element,) = get_args(kind)
        return [_value(element, v, {}, method, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _wrong(kind, value, method, name)
        key_kind, value_kind = get_args(kind)
        out = {}
        for key, item in value.items():
            if not _matches(key_kind, key):
                raise InvalidRequest(f"the keys of the parameter {name!r} of {method!r} must be "
                                     f"{_name(key_kind)}, not {_kind(key)}.", field=name)
            out[key] = _value(value_kind, item, meta, method, f"{name}.{key}")
        return out
    if not _matches(kind, value):
        raise _wrong(kind, value, method, name)
    if kind is int and "range" in meta:
        low, high = meta["range"]
        if not low <= value <= high:
            raise InvalidRequest(f"the parameter {name!r} of {method!r} must be {low} to {high}, "
                                 f"not {value}.", field=name)
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise InvalidRequest(f"the parameter {name!r} of {method!r} must be a finite "
                                 "number.", field=name)
    return value


def _matches(kind: Any, value: Any) -> bool:
    """Whether ``value`` has the shape of ``kind`` at the top (elements are checked later)."""
    origin = get_origin(kind)
    if kind is Any:
        return True
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list)
    if origin is dict or dataclasses.is_dataclass(kind):
        return isinstance(value, dict)
    return isinstance(value, kind)


def _wrong(kind: Any, value: Any, method: str, name: str) -> InvalidRequest:
    return InvalidRequest(f"the parameter {name!r} of {method!r} must be {_name(kind)}, not "
                          f"{_kind(value)}.", field=name)


def _name(kind: Any, nil: bool = False) -> str:
    """A type as the control socket's documentation names it (``nil``: say when None is a
    value, as in results; a parameter's None means "not given")."""
    origin = get_origin(kind)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_name(k, nil) for k in get_args(kind)
                           if nil or k is not type(None))
    if origin is list or origin is tuple:
        elements = {_name(k, nil) for k in get_args(kind) if k is not Ellipsis}
        return f"[{' or '.join(sorted(elements))}]"
    if origin is dict:
        key, value = get_args(kind)
        return f"{{{_name(key, nil)}: {_name(value, nil)}}}"
    if dataclasses.is_dataclass(kind):
        return "{" + ", ".join(f.name for f in dataclasses.fields(kind)) + "}"
    return {bytes: "bin", str: "str", int: "int", float: "float", bool: "bool",
            type(None): "nil"}.get(kind, "any")


def type_name(kind: Any, *, nil: bool = False) -> str:
    return _name(kind, nil)


def _kind(value: Any) -> str:
    """What a peer sent, in msgpack's words."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def to_wire(value: Any) -> Any:
    """A result dataclass (or what it holds) as msgpack-ready values: maps by field name."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    return value
