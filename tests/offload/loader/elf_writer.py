"""A minimal writer of relocatable 64-bit little-endian BPF ELF objects, for tests.

Just enough of the ELF format (System V gABI) to build objects clang would not emit: legacy
``maps`` sections, hand-placed relocations, broken symbols. Section 1 is a shared string
table for section and symbol names; the symbol table comes last.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
SHDR = struct.Struct("<IIQQQQIIQQ")
SYM = struct.Struct("<IBBHQQ")
REL = struct.Struct("<QQ")

SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS, SHT_REL = 1, 2, 3, 8, 9
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
STB_LOCAL, STB_GLOBAL = 0, 1
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
EM_BPF = 247
R_BPF_64_64, R_BPF_64_ABS64, R_BPF_64_32 = 1, 2, 10


@dataclass
class Sec:
    name: str
    data: bytes = b""
    type: int = SHT_PROGBITS
    flags: int = SHF_ALLOC
    size: int | None = None  # for SHT_NOBITS


@dataclass
class Sym:
    name: str
    section: str | None  # None: undefined
    value: int = 0
    size: int = 0
    type: int = STT_NOTYPE
    bind: int = STB_GLOBAL


@dataclass
class Rel:
    offset: int
    symbol: str  # a Sym name, or "§name" for the section symbol of a section
    type: int = R_BPF_64_64


@dataclass
class ElfBuilder:
    sections: list[Sec] = field(default_factory=list)
    symbols: list[Sym] = field(default_factory=list)
    relocations: dict[str, list[Rel]] = field(default_factory=dict)

    def code(self, name: str, data: bytes) -> None:
        self.sections.append(Sec(name, data, flags=SHF_ALLOC | SHF_EXECINSTR))

    def build(self) -> bytes:
        names = bytearray(b"\0")

        def string(text: str) -> int:
            offset = len(names)
            names.extend(text.encode() + b"\0")
            return offset

        order = ["", ".strtab"] + [s.name for s in self.sections]
        index = {name: i for i, name in enumerate(order)}
        rel_sections = [(target, rels) for target, rels in self.relocations.items()]
        symtab_index = len(order) + len(rel_sections)
        # Section symbols first (local), then the named ones, locals before globals.
        symbols: list[tuple[int, int, int, int, int, int]] = [(0, 0, 0, 0, 0, 0)]
        sym_index: dict[str, int] = {}
        for sec in self.sections:
            sym_index["§" + sec.name] = len(symbols)
            symbols.append((0, STB_LOCAL << 4 | STT_SECTION, 0, index[sec.name], 0, 0))
        ordered = sorted(self.symbols, key=lambda s: s.bind != STB_LOCAL)
        first_global = len(symbols) + sum(1 for s in ordered if s.bind == STB_LOCAL)
        for sym in ordered:
            sym_index[sym.name] = len(symbols)
            shndx = index[sym.section] if sym.section is not None else 0
            symbols.append((string(sym.name), sym.bind << 4 | sym.type, 0, shndx, sym.value,
                            sym.size))
        headers: list[tuple[int, int, int, bytes, int, int, int, int]] = []
        for sec in self.sections:
            headers.append((string(sec.name), sec.type, sec.flags, sec.data,
                            sec.size if sec.size is not None else len(sec.data), 0, 0, 0))
        for target, rels in rel_sections:
            data = b"".join(REL.pack(r.offset, sym_index[r.symbol] << 32 | r.type) for r in rels)
            headers.append((string(".rel" + target), SHT_REL, 0, data, len(data), symtab_index,
                            index[target], REL.size))
        symtab = b"".join(SYM.pack(*s) for s in symbols)
        headers.append((string(".symtab"), SHT_SYMTAB, 0, symtab, len(symtab), 1, first_global,
                        SYM.size))
        strtab_name = string(".strtab")
        all_headers = [(strtab_name, SHT_STRTAB, 0, bytes(names), len(names), 0, 0, 0)] + headers

        body = bytearray(EHDR.size)
        placed = []
        for name_off, sh_type, flags, data, size, link, info, entsize in all_headers:
            while len(body) % 8:
                body.append(0)
            offset = len(body)
            if sh_type != SHT_NOBITS:
                body.extend(data)
            placed.append(SHDR.pack(name_off, sh_type, flags, 0, offset, size, link, info, 8,
                                    entsize))
        while len(body) % 8:
            body.append(0)
        shoff = len(body)
        body.extend(bytes(SHDR.size))
        for header in placed:
            body.extend(header)
        ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
        body[:EHDR.size] = EHDR.pack(ident, 1, EM_BPF, 1, 0, 0, shoff, 0, EHDR.size, 0, 0,
                                     SHDR.size, len(placed) + 1, 1)
        return bytes(body)
