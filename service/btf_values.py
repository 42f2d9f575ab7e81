"""Map keys and values decoded with the object's BTF, as ``bpftool map dump`` shows them in
its ``formatted`` field: integers as numbers, structs and unions as objects by member name,
arrays as lists (char arrays as text), enums by enumerator name, global data by variable.

The device holds no BTF (maps travel as sizes over the control queue); the daemon keeps the
BTF of each object it loaded, so only maps loaded from an object with BTF are formatted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from offload.errors import OffloadError
from offload.loader.btf import Btf
from offload.loader.btf_layout import BtfKind, IntEncoding

MAPS_SECTION = ".maps"
MAX_DEPTH = 32  # nesting followed at most (BTF from a file may loop)


@dataclass(frozen=True, slots=True)
class MapTypes:
    """A map's key and value types in its object's BTF (0 where the map has none)."""

    btf: Btf
    key: int
    value: int

    def format(self, key: bytes, value: bytes) -> dict[str, Any]:
        return {"key": self._one(self.key, key), "value": self._one(self.value, value)}

    def _one(self, type_id: int, data: bytes) -> Any:
        if not type_id:
            return data.hex()
        try:
            return format_value(self.btf, type_id, data)
        except OffloadError:  # a type the BTF cannot answer: the bytes as they are
            return data.hex()


def map_types(btf: Btf | None, name: str) -> MapTypes | None:
    """Where the object's BTF describes map ``name``: a BTF-defined map's ``key``/``value``
    pointers, or a global data section's DATASEC; None otherwise."""
    if btf is None:
        return None
    datasec = btf.datasec(MAPS_SECTION)
    for info in datasec.secinfos if datasec is not None else ():
        var = btf[info.type_id]
        if var.name != name:
            continue
        definition = btf.resolve(var.type_id)
        found = {member.name: btf.resolve(member.type_id).type_id
                 for member in definition.members if member.name in ("key", "value")}
        if found:
            return MapTypes(btf, found.get("key", 0), found.get("value", 0))
    section = name.rsplit(".", 1)
    if len(section) == 2:  # OBJECT.rodata, OBJECT.bss, OBJECT.data: the section's DATASEC
        found_sec = btf.datasec("." + section[1])
        if found_sec is not None:
            return MapTypes(btf, 0, found_sec.id)
    return None


def format_value(btf: Btf, type_id: int, data: bytes, depth: int = 0) -> Any:
    """``data`` read as type ``type_id``; bytes the types do not describe as hex."""
    if depth > MAX_DEPTH:
        return data.hex()
    kind_type = btf.resolve(type_id)
    kind = kind_type.kind
    if kind == BtfKind.INT:
        return _int(kind_type.int_encoding, kind_type.int_offset, kind_type.int_bits, data)
    if kind in (BtfKind.ENUM, BtfKind.ENUM64):
        number = int.from_bytes(data[:kind_type.size], "little", signed=kind_type.kind_flag)
        for enumerator in kind_type.enumerators:
            if enumerator.value == number:
                return enumerator.name
        return number
    if kind == BtfKind.PTR:
        return int.from_bytes(data[:8], "little")
    if kind in (BtfKind.STRUCT, BtfKind.UNION):
        out: dict[str, Any] = {}
        for member in kind_type.members:
            start = member.bit_offset // 8
            if member.bitfield_size:
                whole = int.from_bytes(data[start:start + 8].ljust(8, b"\0"), "little")
                out[member.name] = (whole >> (member.bit_offset % 8)) & \
                    ((1 << member.bitfield_size) - 1)
                continue
            size = _size(btf, member.type_id)
            out[member.name or f"@{start}"] = format_value(
                btf, member.type_id, data[start:start + size], depth + 1)
        return out
    if kind == BtfKind.ARRAY:
        elem = btf.resolve(kind_type.elem_type)
        size = _size(btf, kind_type.elem_type)
        if elem.kind == BtfKind.INT and size == 1 and elem.int_encoding & IntEncoding.CHAR:
            return data[:kind_type.nelems].split(b"\0", 1)[0].decode("utf-8", "replace")
        if not size:
            return data.hex()
        return [format_value(btf, kind_type.elem_type, data[i * size:(i + 1) * size],
                             depth + 1) for i in range(kind_type.nelems)]
    if kind == BtfKind.DATASEC:
        variables: dict[str, Any] = {}
        for info in kind_type.secinfos:
            var = btf[info.type_id]
            variables[var.name] = format_value(btf, var.type_id,
                                               data[info.offset:info.offset + info.size],
                                               depth + 1)
        return variables
    if kind == BtfKind.VAR:
        return format_value(btf, kind_type.type_id, data, depth + 1)
    return data.hex()


def _int(encoding: int, offset: int, bits: int, data: bytes) -> int | bool:
    number = int.from_bytes(data, "little")
    number = (number >> offset) & ((1 << bits) - 1) if bits else number
    if encoding & IntEncoding.BOOL:
        return bool(number)
    if encoding & IntEncoding.SIGNED and bits and number >> (bits - 1):
        number -= 1 << bits
    return number


def _size(btf: Btf, type_id: int) -> int:
    try:
        return btf.size_of(type_id)
    except OffloadError:  # a type without a size reads as nothing
        return 0
