"""``load_object``: a clang-built BPF ELF object to an :class:`ObjectSpec`.

The steps follow libbpf so users bring the objects they already load with it: read the ELF
(:mod:`.elf`), parse ``.BTF`` and ``.BTF.ext``, collect maps and global data (:mod:`.maps`),
resolve the code relocations (:mod:`.relocations`) and link each program with its
subprograms (:mod:`.linker`). The result is plain specs, the same on every device.

CO-RE relocations are resolved against a device's BTF (:mod:`.core`), as libbpf resolves them
against the running kernel's: ``target_btf`` names the device (by default the ``full``
profile's); each program keeps what its relocations were resolved against
(``ProgramSpec.core``). Programs are refused one by one, never the object for one program's
sake: a program whose code needs what the device does not offer (a CO-RE relocation its BTF
cannot answer, an extern or kfunc, an instruction it cannot decode, a map it cannot create)
or whose section names no program type is listed in ``ObjectSpec.refused`` with the reason,
and the others load. As with libbpf
between ``bpf_object__open`` and ``bpf_object__load``, the caller may set program types
(``bpf_program__set_type``, bpftool's ``type xdp``) and map sizes
(``bpf_map__set_max_entries``) first: ``prog_type``, ``prog_types`` and ``map_sizes``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from ..caps.profiles import load_profile
from ..maps.spec import MapSpec
from ..program import FuncInfo, ProgramSpec
from ..uapi import MapType, ProgFlags, ProgType
from .btf import Btf, parse_btf
from .btf_ext import BtfExt, parse_btf_ext
from .btf_funcs import with_prototypes
from .core import CoreBinding, CoreError, relocate
from .device_btf import DeviceBtf, device_btf
from .elf import ElfObject
from .errors import LoaderError, LoadOptionError, ProgramRefusal, RefusalKind
from .linker import SUBPROGRAM_SECTION, Function, LinkedProgram, link_program, section_functions
from .maps import collect_maps
from .relocations import SLOT, resolve_fixups
from .sections import expected_attach_type, parse_prog_type, program_type

LICENSE_SECTION = "license"
#: ``OUTER.inner`` in map sizes names the inner map template of map-in-map OUTER
INNER_SUFFIX = ".inner"
U32_MAX = 0xFFFFFFFF
#: Map types created without a number of entries from the object: local storage (the
#: kernel wants 0) and perf event arrays (libbpf sizes them by the number of CPUs).
SIZED_WITHOUT_ENTRIES = frozenset({
    MapType.PERF_EVENT_ARRAY, MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE,
    MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE})

TypeName = ProgType | str
Typed = tuple[ProgType, int]


def _empty() -> Mapping:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """What the caller sets between opening an object and loading it."""

    entry_sections: Mapping[str, ProgType] = field(default_factory=_empty)
    #: every program's type (bpftool's ``type xdp``), whatever its section says
    prog_type: Typed | None = None
    #: per program name: its type (bpf_program__set_type); wins over ``prog_type``
    prog_types: Mapping[str, Typed] = field(default_factory=_empty)
    #: per map name (``OUTER.inner`` for a map-in-map's template): max_entries
    map_sizes: Mapping[str, int] = field(default_factory=_empty)
    #: the device BTF CO-RE relocations are resolved against (None: the ``full`` profile's)
    target_btf: DeviceBtf | None = None

    @classmethod
    def make(cls, entry_sections: Mapping[str, ProgType] | None = None,
             prog_type: TypeName | None = None,
             prog_types: Mapping[str, TypeName] | None = None,
             map_sizes: Mapping[str, int] | None = None,
             target_btf: DeviceBtf | None = None) -> LoadOptions:
        sizes = dict(map_sizes or {})
        for name, size in sizes.items():
            if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= U32_MAX:
                raise LoadOptionError(f"the size of map '{name}' must be a number of entries "
                                      f"from 1 to {U32_MAX}, not {size!r}.")
        return cls(MappingProxyType(dict(entry_sections or {})),
                   None if prog_type is None else _typed(prog_type),
                   MappingProxyType({name: _typed(kind)
                                     for name, kind in (prog_types or {}).items()}),
                   MappingProxyType(sizes), target_btf)

    def merged(self, other: LoadOptions) -> LoadOptions:
        """These options with ``other``'s set on top."""
        return LoadOptions(self.entry_sections,
                           other.prog_type if other.prog_type is not None else self.prog_type,
                           MappingProxyType({**self.prog_types, **other.prog_types}),
                           MappingProxyType({**self.map_sizes, **other.map_sizes}),
                           other.target_btf if other.target_btf is not None
                           else self.target_btf)


def _typed(kind: TypeName) -> Typed:
    if isinstance(kind, ProgType):
        return kind, int(ProgFlags.NONE)
    if isinstance(kind, str):
        return parse_prog_type(kind)
    raise LoadOptionError(f"a program type is a name or a ProgType, not {kind!r}.")


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """Everything an object file defines: programs by name, maps by name, license, BTF.

    ``programs`` holds the programs that can be loaded; ``refused`` the others, with why.
    ``sections`` names the section of every program, loadable or not, in the object's order.
    ``refused_maps`` says why a map cannot be created (it is not in ``maps``; the programs
    using it are refused).
    """

    programs: Mapping[str, ProgramSpec]
    maps: Mapping[str, MapSpec]
    license: str
    btf: Btf | None
    source: str
    refused: Mapping[str, ProgramRefusal] = field(default_factory=_empty)
    refused_maps: Mapping[str, str] = field(default_factory=_empty)
    sections: Mapping[str, str] = field(default_factory=_empty)
    name: str = ""
    options: LoadOptions = field(default_factory=LoadOptions, repr=False)
    image: bytes = field(default=b"", repr=False, compare=False)

    def configured(self, *, prog_type: TypeName | None = None,
                   prog_types: Mapping[str, TypeName] | None = None,
                   map_sizes: Mapping[str, int] | None = None,
                   target_btf: DeviceBtf | None = None) -> ObjectSpec:
        """The object loaded again with these program types and map sizes set on top of its
        own (libbpf's set_type / set_max_entries between open and load), its CO-RE
        relocations resolved against ``target_btf`` if given (another device's)."""
        options = self.options.merged(LoadOptions.make(None, prog_type, prog_types,
                                                       map_sizes, target_btf))
        if not self.image:
            raise LoadOptionError("this object was not loaded from an ELF image; its "
                                  "programs' types and maps' sizes cannot be set again.")
        return _parse(self.image, self.name, self.source, options)


def load_object(source: str | os.PathLike[str] | bytes | bytearray | memoryview,
                name: str | None = None, *,
                entry_sections: Mapping[str, ProgType] | None = None,
                prog_type: TypeName | None = None,
                prog_types: Mapping[str, TypeName] | None = None,
                map_sizes: Mapping[str, int] | None = None,
                target_btf: DeviceBtf | None = None) -> ObjectSpec:
    """Load an object from a path or from its bytes.

    ``name`` is the object name global data maps are prefixed with (libbpf uses the file
    name up to its first dot); it defaults to that of the path, and to nothing for bytes.
    ``entry_sections`` names extra sections whose functions are programs of the given type,
    as libbpf_register_prog_handler() does (the conformance runner puts ``main`` in ``.text``).
    ``prog_type`` sets every program's type, ``prog_types`` single programs' (by name; a
    ProgType or a name such as ``xdp`` or ``xdp.frags``), ``map_sizes`` maps' max_entries.
    ``target_btf`` is the device BTF CO-RE relocations are resolved against
    (``offload.loader.device_btf.device_btf(caps)``; the ``full`` profile's by default).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return parse_object(bytes(source), name or "", entry_sections=entry_sections,
                            prog_type=prog_type, prog_types=prog_types, map_sizes=map_sizes,
                            target_btf=target_btf)
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(f"cannot read {path}: {exc.strerror or exc}.") from exc
    return parse_object(data, name if name is not None else path.name.split(".")[0],
                        source=str(path), entry_sections=entry_sections, prog_type=prog_type,
                        prog_types=prog_types, map_sizes=map_sizes, target_btf=target_btf)


def parse_object(data: bytes, name: str, *, source: str | None = None,
                 entry_sections: Mapping[str, ProgType] | None = None,
                 prog_type: TypeName | None = None,
                 prog_types: Mapping[str, TypeName] | None = None,
                 map_sizes: Mapping[str, int] | None = None,
                 target_btf: DeviceBtf | None = None) -> ObjectSpec:
    """The pure core of :func:`load_object`."""
    options = LoadOptions.make(entry_sections, prog_type, prog_types, map_sizes, target_btf)
    return _parse(bytes(data), name, source if source is not None else name, options)


def _parse(data: bytes, name: str, source: str, options: LoadOptions) -> ObjectSpec:
    from .elf_reader import read_elf  # pyelftools loads with the first object read

    elf = read_elf(data)
    btf = _btf(elf)
    ext = _btf_ext(elf, btf)
    found, map_symbols = collect_maps(elf, btf, name)
    maps, refused_maps = _sized(found, map_symbols.refused, options.map_sizes,
                                frozenset(map_symbols.data_sections.values()))
    license_text = _license(elf)

    functions: dict[tuple[int, int], Function] = {}
    entries: list[tuple[Function, Typed | None]] = []
    fixups = {}
    for section in elf.sections:
        if not section.is_code or section.size == 0:
            continue
        if section.name in options.entry_sections:
            entry: Typed | None = (options.entry_sections[section.name], 0)
        elif section.name != SUBPROGRAM_SECTION:
            entry = program_type(section.name)
        else:
            entry = None
        is_entry = section.name != SUBPROGRAM_SECTION or entry is not None
        section_funcs = section_functions(elf, section)
        if is_entry and not section_funcs:
            raise LoaderError("the section holds code but no function symbol.",
                              section=section.name)
        for function in section_funcs:
            functions[(section.index, function.start)] = function
            if is_entry:
                entries.append((function, entry))
        fixups[section.index] = resolve_fixups(elf, section, map_symbols)

    sections: dict[str, str] = {}
    for function, _ in entries:
        if function.name in sections:
            raise LoaderError("two programs have the same name.",
                              section=function.section.name, symbol=function.name)
        sections[function.name] = function.section.name
    unknown = sorted(set(options.prog_types) - set(sections))
    if unknown:
        raise LoadOptionError(f"no program named {', '.join(repr(n) for n in unknown)}; the "
                              f"object's programs: {', '.join(sections) or 'none'}.")

    programs: dict[str, ProgramSpec] = {}
    refused: dict[str, ProgramRefusal] = {}
    lines = ext.line_info if ext is not None else {}
    for function, from_section in entries:
        program, section_name = function.name, function.section.name
        try:
            linked = link_program(function, functions, fixups, lines)
        except LoaderError as err:
            if err.kind is None:  # the object itself is malformed
                raise
            refused[program] = ProgramRefusal(program, section_name, err.kind,
                                              _reason(err, program), err.symbol)
            continue
        typed = _type_of(program, section_name, from_section, options)
        linked, core, refusal = _relocate_core(program, section_name, linked, ext, btf,
                                               options)
        refusal = refusal or _map_refusal(program, section_name, linked, refused_maps)
        if refusal is None:
            if typed is not None:
                programs[program] = ProgramSpec(
                    name=program, type=typed[0], instructions=linked.instructions,
                    license=license_text, section=section_name, flags=typed[1],
                    map_refs=linked.map_refs, line_info=linked.line_info,
                    functions=_functions(linked, ext, btf), core=core,
                    expected_attach_type=expected_attach_type(section_name))
                continue
            refusal = _type_refusal(program, section_name)
        used = tuple(dict.fromkeys(ref.map_name for ref in linked.map_refs))
        refused[program] = dataclasses.replace(refusal, maps=used)
    return ObjectSpec(MappingProxyType(programs), MappingProxyType(maps), license_text, btf,
                      source, MappingProxyType(refused), MappingProxyType(refused_maps),
                      MappingProxyType(sections), name, options, data)


def _functions(linked: LinkedProgram, ext: BtfExt | None,
               btf: Btf | None) -> tuple[FuncInfo, ...]:
    """The program's functions with their BTF linkage and prototypes, when it has them."""
    if ext is None or btf is None:
        return linked.functions
    starts = [(f.section.name, f.start) for f in linked.placed]
    return with_prototypes(linked.functions, starts, ext.func_info, btf)


def _reason(err: LoaderError, program: str) -> str:
    """A link failure in the program's words, saying where when that is not the program."""
    if err.symbol is None or err.symbol == program or \
            err.kind in (RefusalKind.EXTERN, RefusalKind.INSTRUCTION):
        return err.detail  # these name what they are about
    where = "in function" if err.kind == RefusalKind.LINK else "symbol"
    return f"{err.detail.rstrip('.')} ({where} '{err.symbol}', section '{err.section}')."


def _type_of(program: str, section: str, from_section: Typed | None,
             options: LoadOptions) -> Typed | None:
    """The type a program is loaded as: set for it, set for every program, or its section's.
    A program in ``xdp.frags`` keeps BPF_F_XDP_HAS_FRAGS when set to XDP, as libbpf keeps the
    section's flags."""
    chosen = options.prog_types.get(program, options.prog_type)
    if chosen is None:
        return from_section
    kind, flags = chosen
    if from_section is not None and kind == ProgType.XDP == from_section[0]:
        flags |= from_section[1]
    return kind, flags


def _type_refusal(program: str, section: str) -> ProgramRefusal:
    return ProgramRefusal(
        program, section, RefusalKind.SECTION,
        f"missing program type: section '{section}' names none (libbpf knows 'xdp', "
        f"'xdp.frags', 'tc', ...); set it as bpf_program__set_type does: --type "
        f"{program}=xdp (prog_types), or --type xdp for every program (prog_type).")


def _relocate_core(program: str, section: str, linked: LinkedProgram, ext: BtfExt | None,
                   btf: Btf | None, options: LoadOptions,
                   ) -> tuple[LinkedProgram, CoreBinding | None, ProgramRefusal | None]:
    """The program with the CO-RE relocations of every function it reaches resolved against
    the target device's BTF, and its binding; or the refusal naming what cannot be."""
    if ext is None or btf is None or not ext.core_relos:
        return linked, None, None
    found = []
    names = {}
    for function, info in zip(linked.placed, linked.functions):
        for record in ext.core_relos.get(function.section.name, ()):
            offset = record.insn_off - function.start
            if 0 <= offset < function.size:
                slot = info.slot + offset // SLOT.size
                found.append((slot, record))
                names[slot] = function.name
    if not found:
        return linked, None, None
    target = options.target_btf or default_target_btf()
    try:
        insns, binding = relocate(linked.instructions, found, btf, target,
                                  lambda slot: f"insn {slot} in '{names[slot]}'")
    except CoreError as err:
        symbol = names.get(err.slot) if err.slot is not None else None
        return linked, None, ProgramRefusal(program, section, RefusalKind.CO_RE, err.detail,
                                            symbol)
    return dataclasses.replace(linked, instructions=insns), binding, None


@lru_cache(maxsize=1)
def default_target_btf() -> DeviceBtf:
    """The BTF of the ``full`` profile, the built-in backend's."""
    return device_btf(load_profile("full"))


def _map_refusal(program: str, section: str, linked: LinkedProgram,
                 refused_maps: Mapping[str, str]) -> ProgramRefusal | None:
    for ref in linked.map_refs:
        why = refused_maps.get(ref.map_name)
        if why is not None:
            return ProgramRefusal(program, section, RefusalKind.MAP,
                                  f"uses map '{ref.map_name}', which cannot be created: {why}",
                                  ref.map_name)
    return None


def _sized(maps: dict[str, MapSpec], refused: Mapping[str, str], sizes: Mapping[str, int],
           global_data: frozenset[str]) -> tuple[dict[str, MapSpec], dict[str, str]]:
    """The maps with the sizes asked for; those still without entries move to ``refused``."""
    result = dict(maps)
    for name, size in sizes.items():
        outer = result.get(name.removesuffix(INNER_SUFFIX))
        if name.endswith(INNER_SUFFIX) and outer is not None and outer.inner is not None:
            result[outer.name] = dataclasses.replace(
                outer, inner=dataclasses.replace(outer.inner, max_entries=size))
            continue
        if name in refused:
            continue  # refused for another reason: a size changes nothing
        spec = result.get(name)
        if spec is None:
            known = ", ".join(list(result) + list(refused)) or "none"
            raise LoadOptionError(f"no map named '{name}' to size; the object's maps: "
                                  f"{known}.")
        if name in global_data:
            raise LoadOptionError(f"map '{name}' holds global data, a single value; it cannot "
                                  "be sized.")
        result[name] = dataclasses.replace(spec, max_entries=size)
    refused = dict(refused)
    for name, spec in list(result.items()):
        unsized = [s for s in (spec, spec.inner) if s is not None and s.max_entries == 0
                   and s.type not in SIZED_WITHOUT_ENTRIES]
        if unsized:
            what = "it is" if unsized[0] is spec else "its inner map is"
            option = name if unsized[0] is spec else f"{name}{INNER_SUFFIX}"
            refused[name] = (f"{what} declared with max_entries 0, to be sized before load "
                             f"(bpf_map__set_max_entries): give the size, --map-size "
                             f"{option}=N (map_sizes).")
            del result[name]
    return result, refused


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
    return parse_btf_ext(section.data, btf)


def _license(elf: ElfObject) -> str:
    section = elf.section(LICENSE_SECTION)
    if section is None:
        return ""
    return section.data.split(b"\0", 1)[0].decode("ascii", errors="replace")
