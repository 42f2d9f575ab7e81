"""The ELF container of a BPF object: its sections, symbols and relocations, as read.

The structures only; :mod:`offload.loader.elf_reader` reads them from a file (with
pyelftools, imported by the first read, so a process that never reads an object does not
pay for it). What the sections *mean* is decided in the modules above.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

SYM_SIZE = 24  # Elf64_Sym
REL_SIZE = 16  # Elf64_Rel
MAX_SECTIONS = 0xFF00  # below SHN_LORESERVE
UNUSED_RELOCATION_TARGETS = (".debug", ".BTF", ".eh_frame")


class RelocType(IntEnum):
    """``R_BPF_*`` relocation types (llvm/BinaryFormat/ELFRelocs/BPF.def)."""

    NONE = 0
    R_64_64 = 1  # lddw: the 64-bit immediate (maps, global data, function addresses)
    R_64_ABS64 = 2  # a 64-bit data word (e.g. .maps initialisers, DWARF)
    R_64_ABS32 = 3  # a 32-bit data word (BTF, DWARF)
    R_64_NODYLD32 = 4  # .BTF/.BTF.ext offsets, left for a static linker
    R_64_32 = 10  # call: the 32-bit immediate of a bpf-to-bpf call


class SectionFlags(IntFlag):
    WRITE = 0x1
    ALLOC = 0x2
    EXECINSTR = 0x4


SHN_UNDEF = 0
SHN_ABS = 0xFFF1
SHN_COMMON = 0xFFF2
SPECIAL_SHNDX = {"SHN_UNDEF": SHN_UNDEF, "SHN_ABS": SHN_ABS, "SHN_COMMON": SHN_COMMON}


@dataclass(frozen=True, slots=True)
class Section:
    """One section header and its bytes (empty for SHT_NOBITS, whose size is ``size``)."""

    index: int
    name: str
    type: str
    flags: int
    size: int
    link: int
    info: int
    entsize: int
    data: bytes = field(repr=False)

    @property
    def is_code(self) -> bool:
        return self.type == "SHT_PROGBITS" and bool(self.flags & SectionFlags.EXECINSTR)

    @property
    def is_nobits(self) -> bool:
        return self.type == "SHT_NOBITS"


@dataclass(frozen=True, slots=True)
class Symbol:
    index: int
    name: str
    value: int
    size: int
    type: str  # STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE, ...
    bind: str  # STB_LOCAL, STB_GLOBAL, STB_WEAK
    shndx: int  # section index, or SHN_UNDEF / SHN_ABS / SHN_COMMON


@dataclass(frozen=True, slots=True)
class Relocation:
    """A relocation at byte ``offset`` of its target section, against ``symbol``."""

    offset: int
    type: int
    symbol: Symbol


@dataclass(frozen=True, slots=True)
class ElfObject:
    sections: tuple[Section, ...]
    symbols: tuple[Symbol, ...]
    #: relocations by the index of the section they patch
    relocations: dict[int, tuple[Relocation, ...]]

    def section(self, name: str) -> Section | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None

    def symbol_name(self, symbol: Symbol) -> str:
        """The symbol's name, or its section's name for section symbols."""
        if symbol.name or symbol.type != "STT_SECTION":
            return symbol.name
        if 0 < symbol.shndx < len(self.sections):
            return self.sections[symbol.shndx].name
        return f"#{symbol.index}"

    def symbols_in(self, index: int) -> Iterator[Symbol]:
        return (sym for sym in self.symbols if sym.shndx == index)
