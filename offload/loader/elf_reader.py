"""Reading a BPF object's ELF container: sections, symbols and relocations, checked.

pyelftools parses the structures; this module checks every size and offset against the
file before pyelftools walks a table, so corrupted input cannot make it loop over billions
of entries or read past the end, and turns anything it raises into a :class:`LoaderError`
naming the section being read. The structures it fills are :mod:`offload.loader.elf`'s.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from .elf import (
    MAX_SECTIONS,
    REL_SIZE,
    SPECIAL_SHNDX,
    SYM_SIZE,
    UNUSED_RELOCATION_TARGETS,
    ElfObject,
    Relocation,
    Section,
    Symbol,
)
from .errors import LoaderError


@contextmanager
def _reading(what: str, section: str | None = None) -> Iterator[None]:
    """Turn whatever the parser raises on corrupted input into one LoaderError."""
    try:
        yield
    except LoaderError:
        raise
    except (ELFError, ValueError, IndexError, KeyError, TypeError, AttributeError,
            OverflowError, UnicodeDecodeError, AssertionError, ArithmeticError,
            LookupError, EOFError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        raise LoaderError(f"malformed ELF while reading {what}: {detail}.",
                          section=section) from exc
    except Exception as exc:  # construct's own errors derive directly from Exception
        raise LoaderError(f"malformed ELF while reading {what}: {type(exc).__name__}: {exc}.",
                          section=section) from exc


def read_elf(data: bytes) -> ElfObject:
    """Read a relocatable, 64-bit, little-endian BPF object."""
    data = bytes(data)
    with _reading("the ELF header"):
        elf = ELFFile(io.BytesIO(data))
        header = elf.header
        if elf.elfclass != 64 or not elf.little_endian:
            raise LoaderError("only 64-bit little-endian BPF objects are supported "
                              f"(got ELFCLASS{elf.elfclass}, "
                              f"{'little' if elf.little_endian else 'big'}-endian).")
        if header["e_machine"] != "EM_BPF":
            raise LoaderError(f"not a BPF object: e_machine is {header['e_machine']}.")
        if header["e_type"] != "ET_REL":
            raise LoaderError(f"not a relocatable object: e_type is {header['e_type']}.")
        count = elf.num_sections()
        if header["e_shentsize"] != 64 or count > MAX_SECTIONS or \
                header["e_shoff"] + count * 64 > len(data):
            raise LoaderError(f"the section header table ({count} entries at "
                              f"{header['e_shoff']}) does not fit in the file.")
    sections = tuple(_read_section(elf, index, len(data)) for index in range(count))
    symbols = _read_symbols(elf, sections)
    relocations = _read_relocations(elf, sections, symbols)
    return ElfObject(sections, symbols, relocations)


def _read_section(elf: ELFFile, index: int, file_size: int) -> Section:
    with _reading(f"section header {index}"):
        raw = elf.get_section(index)
        head = raw.header
        name = raw.name if index else ""
    with _reading("the section", name or f"#{index}"):
        sh_type = head["sh_type"]
        if isinstance(sh_type, int):
            sh_type = f"SHT_{sh_type:#x}"
        size = head["sh_size"]
        if sh_type in ("SHT_NOBITS", "SHT_NULL"):
            data = b""
        else:
            if head["sh_offset"] + size > file_size:
                raise LoaderError(f"{size} bytes at offset {head['sh_offset']} run past the end "
                                  f"of the file ({file_size} bytes).", section=name)
            data = raw.data()
            if len(data) != size:
                raise LoaderError(f"only {len(data)} of {size} bytes could be read.",
                                  section=name)
        return Section(index, name, sh_type, head["sh_flags"], size, head["sh_link"],
                       head["sh_info"], head["sh_entsize"], bytes(data))


def _read_symbols(elf: ELFFile, sections: tuple[Section, ...]) -> tuple[Symbol, ...]:
    tables = [s for s in sections if s.type == "SHT_SYMTAB"]
    if not tables:
        raise LoaderError("the object has no symbol table (.symtab).")
    if len(tables) > 1:
        raise LoaderError("the object has more than one symbol table.")
    table = tables[0]
    if table.entsize != SYM_SIZE or table.size % SYM_SIZE:
        raise LoaderError(f"entry size {table.entsize} or size {table.size} does not match "
                          f"{SYM_SIZE}-byte symbols.", section=table.name)
    if not 0 < table.link < len(sections) or sections[table.link].type != "SHT_STRTAB":
        raise LoaderError(f"the linked string table (section {table.link}) is not a string "
                          "table.", section=table.name)
    symbols = []
    with _reading("the symbol table", table.name):
        raw_table = elf.get_section(table.index)
        if not isinstance(raw_table, SymbolTableSection):
            raise LoaderError("the symbol table could not be read as one.", section=table.name)
        for index in range(table.size // SYM_SIZE):
            raw = raw_table.get_symbol(index)
            entry = raw.entry
            shndx = entry["st_shndx"]
            if isinstance(shndx, str):
                if shndx not in SPECIAL_SHNDX:
                    raise LoaderError(f"symbol {index} has unsupported section index {shndx}.",
                                      section=table.name)
                shndx = SPECIAL_SHNDX[shndx]
            elif shndx >= len(sections):
                raise LoaderError(f"symbol {index} ('{raw.name}') refers to section {shndx}, "
                                  "which does not exist.", section=table.name)
            symbols.append(Symbol(index, raw.name, entry["st_value"], entry["st_size"],
                                  str(entry["st_info"]["type"]), str(entry["st_info"]["bind"]),
                                  shndx))
    return tuple(symbols)


def _read_relocations(elf: ELFFile, sections: tuple[Section, ...],
                      symbols: tuple[Symbol, ...]) -> dict[int, tuple[Relocation, ...]]:
    relocations: dict[int, tuple[Relocation, ...]] = {}
    for section in sections:
        if section.type == "SHT_RELA":
            raise LoaderError("RELA relocations are not used by BPF objects and are not "
                              "supported.", section=section.name)
        if section.type != "SHT_REL":
            continue
        if section.entsize != REL_SIZE or section.size % REL_SIZE:
            raise LoaderError(f"entry size {section.entsize} or size {section.size} does not "
                              f"match {REL_SIZE}-byte relocations.", section=section.name)
        if not 0 < section.info < len(sections):
            raise LoaderError(f"relocations apply to section {section.info}, which does not "
                              "exist.", section=section.name)
        if sections[section.info].name.startswith(UNUSED_RELOCATION_TARGETS):
            continue  # debug info and BTF offsets are for static linkers, not for loading
        if section.info in relocations:
            raise LoaderError("a second relocation section for the same target.",
                              section=section.name)
        entries = []
        with _reading("relocations", section.name):
            raw_section = elf.get_section(section.index)
            if not isinstance(raw_section, RelocationSection):
                raise LoaderError("the relocation section could not be read as one.",
                                  section=section.name)
            for index in range(section.size // REL_SIZE):
                entry = raw_section.get_relocation(index).entry
                sym_index = entry["r_info_sym"]
                if sym_index >= len(symbols):
                    raise LoaderError(f"relocation {index} refers to symbol {sym_index}, which "
                                      "does not exist.", section=section.name)
                entries.append(Relocation(entry["r_offset"], entry["r_info_type"],
                                          symbols[sym_index]))
        relocations[section.info] = tuple(entries)
    return relocations
