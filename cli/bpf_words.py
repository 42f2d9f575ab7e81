"""bpftool's words on the command line: objects by ``id N``, ``name X`` or a bare id or
name, bytes as a byte list (``key 0x0a 0x00 0 2``, ``key hex 0a 00 00 02``) or hex (``--key
0a000002``), JSON as bpftool prints it (the global ``-j``/``-p``: global_options.py)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from service.errors import UsageError

from .bpf_plugin import PluginInputError, parse_hex

#: bpftool's update flags, as words after the value
UPDATE_FLAGS = {"any": 0, "noexist": 1, "exist": 2}


def print_json(data: Any, pretty: bool) -> None:
    """JSON on stdout: one line, or indented with ``-p``."""
    sys.stdout.write(json.dumps(data, indent=2 if pretty else None, default=_hex) + "\n")
    sys.stdout.flush()


def _hex(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)


def take_ref(words: list[str], what: str) -> tuple[int | str, list[str]]:
    """An object from the front of ``words``: ``id N``, ``name X``, or a bare id or name."""
    if not words:
        raise UsageError(f"name the {what}: ID, NAME, 'id ID' or 'name NAME'.")
    head = words[0]
    if head in ("id", "name"):
        if len(words) < 2:
            raise UsageError(f"'{head}' needs the {what}'s {head}.")
        value = words[1]
        if head == "id":
            return parse_id(value, what), words[2:]
        return value, words[2:]
    if head in ("pinned", "tag"):
        raise UsageError(f"a device's {what}s have no {head}: use 'id ID' or 'name NAME'.")
    return (parse_id(head, what) if head.isdigit() else head), words[1:]


def parse_id(text: str, what: str) -> int:
    if not text.isdigit() or int(text) >= 1 << 32:
        raise UsageError(f"{text!r} is not a {what} id (a number below 2^32).")
    return int(text)


def hex_bytes(text: str, what: str) -> bytes:
    try:
        return parse_hex(text, what)
    except PluginInputError as err:
        raise UsageError(f"{err}.") from None


def _byte(word: str, what: str, as_hex: bool) -> int:
    """One byte word as bpftool reads it: hex after ``hex``, else C's 0x, 0 (octal) or
    decimal."""
    text = word.lower()
    try:
        if as_hex:
            value = int(text.removeprefix("0x"), 16)
        elif text.startswith("0x"):
            value = int(text[2:], 16)
        elif len(text) > 1 and text.startswith("0"):
            value = int(text[1:], 8)
        else:
            value = int(text, 10)
    except ValueError:
        raise UsageError(f"{word!r} in the {what} is not a byte (0x0a, 10, 012, or hex after "
                         "'hex').") from None
    if not 0 <= value <= 0xFF:
        raise UsageError(f"{word!r} in the {what} is not a byte (0 to 255).")
    return value


@dataclass
class KeyValue:
    key: bytes | None = None
    value: bytes | None = None
    flags: int | None = None


def parse_key_value(words: list[str], *, key: str | None = None, value: str | None = None,
                    want_value: bool = False, flags: bool = False) -> KeyValue:
    """``key ... [value ...] [any|noexist|exist]`` from ``words``, or ``--key``/``--value``
    hex; each part given once, none left over."""
    out = KeyValue(key=hex_bytes(key, "key") if key is not None else None,
                   value=hex_bytes(value, "value") if value is not None else None)
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("key", "value"):
            if getattr(out, word) is not None:
                raise UsageError(f"the {word} is given twice.")
            if word == "value" and not want_value:
                raise UsageError("this command takes no value.")
            index += 1
            as_hex = index < len(words) and words[index] == "hex"
            index += as_hex
            data = bytearray()
            while index < len(words) and words[index] not in ("key", "value") \
                    and not (flags and words[index] in UPDATE_FLAGS):
                data.append(_byte(words[index], word, as_hex))
                index += 1
            if not data:
                raise UsageError(f"'{word}' needs its bytes: {word} 0x0a 0x00 ... or "
                                 f"--{word} HEX.")
            setattr(out, word, bytes(data))
        elif flags and word in UPDATE_FLAGS:
            if out.flags is not None:
                raise UsageError("give one of any, noexist, exist.")
            out.flags = UPDATE_FLAGS[word]
            index += 1
        else:
            raise UsageError(f"unexpected {word!r}: expected 'key'"
                             f"{', value' if want_value else ''}"
                             f"{' or any|noexist|exist' if flags else ''}.")
    if out.key is None:
        raise UsageError("give the key: key 0x0a 0x00 ... or --key HEX.")
    if want_value and out.value is None:
        raise UsageError("give the value: value 0x01 ... or --value HEX.")
    return out


def byte_list(data: bytes) -> list[str]:
    """Bytes as bpftool's JSON lists them: ``["0x0a", "0x00"]``."""
    return [f"0x{b:02x}" for b in data]
