"""``load_object``: a clang-built BPF ELF object to an :class:`ObjectSpec`.

The steps follow libbpf so users bring the objects they already load with it: read the ELF
(:mod:`.elf`), parse ``.BTF`` and ``.BTF.ext``, collect maps and global data (:mod:`.maps`),
resolve the code relocations (:mod:`.relocations`) and link each program with its
subprograms (:mod:`.linker`). The result is plain specs, the same on every device.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..maps.spec import MapSpec
from ..program import ProgramSpec, ProgType
from .btf import Btf, parse_btf
from .btf_ext import BtfExt, parse_btf_ext
from .elf import ElfObject, read_elf
from .errors import LoaderError
from .linker import SUBPROGRAM_SECTION, Function, link_program, section_functions
from .maps import collect_maps
from .relocations import resolve_fixups
from .sections import program_type

LICENSE_SECTION = "license"


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """Everything an object file defines: programs by name, maps by name, license, BTF."""

    programs: Mapping[str, ProgramSpec]
    maps: Mapping[str, MapSpec]
    license: str
    btf: Btf | None
    source: str


def load_object(source: str | os.PathLike[str] | bytes | bytearray | memoryview,
                name: str | None = None, *,
                entry_sections: Mapping[str, ProgType] | None = None) -> ObjectSpec:
    """Load an object from a path or from its bytes.

    ``name`` is the object name global data maps are prefixed with (libbpf uses the file
    name up to its first dot); it defaults to that of the path, and to nothing for bytes.
    ``entry_sections`` names extra sections whose functions are programs of the given type,
    as libbpf_register_prog_handler() does (the conformance runner puts ``main`` in ``.text``).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_object(bytes(source), name or "", entry_sections=entry_sections)
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"cannot read {path}: {exc.strerror or exc}.") from exc
    return parse_object(data, name if name is not None else path.name.split(".")[0],
                        source=str(path), entry_sections=entry_sections)


def parse_object(data: bytes, name: str, *, source: str | None = None,
                 entry_sections: Mapping[str, ProgType] | None = None) -> ObjectSpec:
    """The pure core of :func:`load_object`."""
    extra = dict(entry_sections or {})
    elf = read_elf(data)
    btf = _btf(elf)
    ext = _btf_ext(elf, btf)
    maps, map_symbols = collect_maps(elf, btf, name)
    _refuse_static_initialisers(elf)
    license_text = _license(elf)

    functions: dict[tuple[int, int], Function] = {}
    entries: list[tuple[Function, object]] = []
    fixups = {}
    for section in elf.sections:
        if not section.is_code or section.size == 0:
            continue
        kind = None
        if section.name in extra:
            kind = (extra[section.name], 0)
        elif section.name != SUBPROGRAM_SECTION:
            kind = program_type(section.name)
            if kind is None:
                raise LoaderError("the section holds code but its name does not name a "
                                  "program type (e.g. 'xdp', 'tc', 'socket').",
                                  section=section.name)
        section_funcs = section_functions(elf, section)
        if kind is not None and not section_funcs:
            raise LoaderError("the section holds code but no function symbol.",
                              section=section.name)
        for function in section_funcs:
            functions[(section.index, function.start)] = function
            if kind is not None:
                entries.append((function, kind))
        fixups[section.index] = resolve_fixups(elf, section, map_symbols)

    programs: dict[str, ProgramSpec] = {}
    lines = ext.line_info if ext is not None else {}
    for function, (prog_type, flags) in entries:
        if function.name in programs:
            raise LoaderError("two programs have the same name.",
                              section=function.section.name, symbol=function.name)
        linked = link_program(function, functions, fixups, lines)
        programs[function.name] = ProgramSpec(
            name=function.name, type=prog_type, instructions=linked.instructions,
            license=license_text, section=function.section.name, flags=flags,
            map_refs=linked.map_refs, line_info=linked.line_info, functions=linked.functions)
    return ObjectSpec(MappingProxyType(programs), MappingProxyType(maps), license_text, btf,
                      source if source is not None else name)


def _btf(elf: ElfObject) -> Btf | None:
    section = elf.section(".BTF")
    return parse_btf(section.data) if section is not None else None


def _btf_ext(elf: ElfObject, btf: Btf | None) -> BtfExt | None:
    section = elf.section(".BTF.ext")
    if section is None:
        return None
    if btf is None:
        raise LoaderError("line and function info need the .BTF section, which is missing.",
                          section=section.name)
    ext = parse_btf_ext(section.data, btf)
    if ext.core_relo_count:
        raise LoaderError(f"the object needs {ext.core_relo_count} CO-RE relocations, which "
                          "are not supported (build without BPF_CORE_READ / "
                          "preserve_access_index).", section=section.name)
    return ext


def _license(elf: ElfObject) -> str:
    section = elf.section(LICENSE_SECTION)
    if section is None:
        return ""
    return section.data.split(b"\0", 1)[0].decode("ascii", errors="replace")


def _refuse_static_initialisers(elf: ElfObject) -> None:
    """``.values = { ... }`` of a prog_array or map of maps: relocations in ``.maps``."""
    section = elf.section(".maps")
    if section is None or not elf.relocations.get(section.index):
        return
    reloc = elf.relocations[section.index][0]
    raise LoaderError("static initialisation of map slots (.values = {...}) is not "
                      "supported; fill the map after loading.", section=section.name,
                      symbol=elf.symbol_name(reloc.symbol))
