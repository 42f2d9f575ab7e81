"""``.BTF.ext``: per-section function and line information (Documentation/bpf/btf.rst 4.2).

In an object file every record's ``insn_off`` is a byte offset into its code section; the
linker turns them into slots of the linked program. CO-RE relocation records are kept by
section; :mod:`offload.loader.core` resolves those of each program's functions against the
device's BTF.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..uapi import CoreReloKind
from .btf import Btf, BtfType
from .btf_layout import (
    BTF_MAGIC,
    EXT_CORE,
    EXT_HEADER,
    EXT_INFO_SEC,
    FUNC_INFO,
    LINE_INFO,
    U32,
    BtfKind,
)
from .errors import LoaderError

SECTION = ".BTF.ext"


@dataclass(frozen=True, slots=True)
class FuncRecord:
    """A function starting at byte ``insn_off`` of its section, typed by BTF FUNC ``type_id``."""

    insn_off: int
    type_id: int


@dataclass(frozen=True, slots=True)
class LineRecord:
    """The source position of the instruction at byte ``insn_off`` of its section."""

    insn_off: int
    file: str
    line: int
    column: int
    text: str


#: struct bpf_core_relo: insn_off, type_id, access_str_off, kind.
CORE_RELO = struct.Struct("<IIII")


@dataclass(frozen=True, slots=True)
class CoreRecord:
    """A CO-RE relocation of the instruction at byte ``insn_off`` of its section.

    ``access`` is the access string (``0:1:2``: an index into the root pointer, then member or
    element indices); ``kind`` an int when the kind is newer than :class:`CoreReloKind`.
    """

    insn_off: int
    type_id: int
    access: str
    kind: CoreReloKind | int

    def describe(self, btf: Btf) -> str:
        """``field_byte_offset of struct task_struct.tgid`` - what the record relocates."""
        kind = self.kind.name.lower() if isinstance(self.kind, CoreReloKind) else \
            f"kind {self.kind}"
        return f"{kind} of {access_path(btf, self.type_id, self.access, self.kind)}"


@dataclass(frozen=True, slots=True)
class BtfExt:
    """Records by code section name."""

    func_info: dict[str, tuple[FuncRecord, ...]]
    line_info: dict[str, tuple[LineRecord, ...]]
    core_relos: dict[str, tuple[CoreRecord, ...]] | None = None

    @property
    def core_relo_count(self) -> int:
        return sum(len(records) for records in (self.core_relos or {}).values())


def parse_btf_ext(data: bytes, btf: Btf) -> BtfExt:
    """Parse ``.BTF.ext``; strings (section names, file names, lines) come from ``btf``."""
    if len(data) < EXT_HEADER.size:
        raise LoaderError(f"{len(data)} bytes is too short for the header.", section=SECTION)
    magic, version, _flags, hdr_len, func_off, func_len, line_off, line_len = \
        EXT_HEADER.unpack_from(data)
    if magic != BTF_MAGIC:
        raise LoaderError(f"bad magic {magic:#06x} (expected {BTF_MAGIC:#06x}).",
                          section=SECTION)
    if version != 1:
        raise LoaderError(f"unsupported version {version}.", section=SECTION)
    if hdr_len < EXT_HEADER.size or hdr_len > len(data):
        raise LoaderError(f"header length {hdr_len} is invalid.", section=SECTION)
    body = data[hdr_len:]
    core_relos: dict[str, tuple[CoreRecord, ...]] = {}
    if hdr_len >= EXT_HEADER.size + EXT_CORE.size:
        core_off, core_len = EXT_CORE.unpack_from(data, EXT_HEADER.size)
        for name, records in _info_blocks(body, core_off, core_len, "CO-RE relocation", btf,
                                          CORE_RELO.size):
            core_relos[name] = core_relos.get(name, ()) + tuple(
                _core_record(raw, btf) for raw in records)
    func_info = {
        name: tuple(FuncRecord(*FUNC_INFO.unpack_from(raw)) for raw in records)
        for name, records in _info_blocks(body, func_off, func_len, "func_info", btf,
                                          FUNC_INFO.size)
    }
    line_info = {}
    for name, records in _info_blocks(body, line_off, line_len, "line_info", btf,
                                      LINE_INFO.size):
        lines = []
        for raw in records:
            insn_off, file_off, text_off, line_col = LINE_INFO.unpack_from(raw)
            lines.append(LineRecord(insn_off, btf.string(file_off), line_col >> 10,
                                    line_col & 0x3FF, btf.string(text_off)))
        line_info[name] = tuple(lines)
    return BtfExt(func_info, line_info, core_relos)


def _core_record(raw: bytes, btf: Btf) -> CoreRecord:
    insn_off, type_id, access_off, kind = CORE_RELO.unpack_from(raw)
    try:
        kind = CoreReloKind(kind)
    except ValueError:
        pass  # a kind from a newer compiler: still a CO-RE record, still refused
    return CoreRecord(insn_off, type_id, btf.string(access_off), kind)


def access_path(btf: Btf, type_id: int, access: str, kind: CoreReloKind | int) -> str:
    """The C spelling of what a CO-RE access string reaches: ``struct task_struct.tgid``,
    ``enum E::VALUE`` or the type alone; the raw string where BTF does not say more."""
    try:
        return _access_path(btf, type_id, access, kind)
    except LoaderError:  # a type id out of range or a modifier loop: say what is known
        return f"type [{type_id}] (access {access})"


def _access_path(btf: Btf, type_id: int, access: str, kind: CoreReloKind | int) -> str:
    name = _type_name(btf[type_id])
    try:
        indices = [int(part) for part in access.split(":")] if access else []
    except ValueError:
        return f"{name} (access {access!r})"
    if kind in (CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE):
        resolved = btf.resolve(type_id)
        if indices and 0 <= indices[0] < len(resolved.enumerators):
            return f"{name}::{resolved.enumerators[indices[0]].name}"
        return f"{name} (access {access})"
    if not isinstance(kind, CoreReloKind) or kind >= CoreReloKind.TYPE_ID_LOCAL or \
            len(indices) < 2:
        return name if not indices or indices == [0] else f"{name}[{indices[0]}]"
    path = name if indices[0] == 0 else f"{name}[{indices[0]}]"
    current = btf.resolve(type_id)
    for index in indices[1:]:
        if current.kind in (BtfKind.STRUCT, BtfKind.UNION) and \
                0 <= index < len(current.members):
            member = current.members[index]
            path += f".{member.name}" if member.name else f".<anon {index}>"
            current = btf.resolve(member.type_id)
        elif current.kind == BtfKind.ARRAY:
            path += f"[{index}]"
            current = btf.resolve(current.elem_type)
        else:
            return f"{path} (access {access})"
    return path


def _type_name(btf_type: BtfType) -> str:
    prefix = {BtfKind.STRUCT: "struct ", BtfKind.UNION: "union ", BtfKind.ENUM: "enum ",
              BtfKind.ENUM64: "enum ", BtfKind.FWD: "struct "}.get(btf_type.kind, "")
    return f"{prefix}{btf_type.name or '(anon)'}"


def _info_blocks(body: bytes, offset: int, length: int, what: str, btf: Btf,
                 min_record: int = 4) -> list[tuple[str, list[bytes]]]:
    """The ``btf_ext_info_sec`` blocks of one info area: (section name, raw records)."""
    if length == 0:
        return []
    if offset + length > len(body) or length < U32.size:
        raise LoaderError(f"{what} area ({offset}+{length}) runs past the end of the data.",
                          section=SECTION)
    area = body[offset:offset + length]
    (record_size,) = U32.unpack_from(area)
    if record_size < min_record or record_size % 4:
        raise LoaderError(f"{what} record size {record_size} is invalid.", section=SECTION)
    blocks = []
    pos = U32.size
    while pos < len(area):
        if pos + EXT_INFO_SEC.size > len(area):
            raise LoaderError(f"{what} block header at {pos} is truncated.", section=SECTION)
        name_off, count = EXT_INFO_SEC.unpack_from(area, pos)
        pos += EXT_INFO_SEC.size
        name = btf.string(name_off)
        if count == 0 or pos + count * record_size > len(area):
            raise LoaderError(f"{what} block of section '{name}' has an invalid record count "
                              f"{count}.", section=SECTION)
        blocks.append((name, [area[pos + i * record_size:pos + (i + 1) * record_size]
                              for i in range(count)]))
        pos += count * record_size
    return blocks
