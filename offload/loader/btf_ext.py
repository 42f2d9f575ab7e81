"""``.BTF.ext``: per-section function and line information (Documentation/bpf/btf.rst 4.2).

In an object file every record's ``insn_off`` is a byte offset into its code section; the
linker turns them into slots of the linked program. CO-RE relocation records are counted so
the loader can refuse objects that need them rather than load them wrongly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .btf import Btf
from .btf_layout import (
    BTF_MAGIC,
    EXT_CORE,
    EXT_HEADER,
    EXT_INFO_SEC,
    FUNC_INFO,
    LINE_INFO,
    U32,
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


@dataclass(frozen=True, slots=True)
class BtfExt:
    """Records by code section name."""

    func_info: dict[str, tuple[FuncRecord, ...]]
    line_info: dict[str, tuple[LineRecord, ...]]
    core_relo_count: int = 0


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
    core_count = 0
    if hdr_len >= EXT_HEADER.size + EXT_CORE.size:
        core_off, core_len = EXT_CORE.unpack_from(data, EXT_HEADER.size)
        if core_len:
            core_count = sum(len(records) for _, records in
                             _info_blocks(body, core_off, core_len, "CO-RE relocation", btf))
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
    return BtfExt(func_info, line_info, core_count)


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
