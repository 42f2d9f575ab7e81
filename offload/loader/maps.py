"""Map definitions of an object: BTF-defined (``.maps``), legacy (``maps``) and global data.

* ``.maps`` (libbpf's BTF-defined maps): each variable of the ``.maps`` DATASEC is a struct
  whose members encode the attributes in their types: ``int (*type)[N]`` carries the number
  N, ``typeof(K) *key`` the key type, ``__array(values, struct inner)`` the inner map of a
  map of maps.
* ``maps`` (legacy): an array of ``struct bpf_map_def`` {type, key_size, value_size,
  max_entries, map_flags}, one symbol per map.
* ``.rodata``, ``.rodata.*``, ``.data``, ``.data.*``, ``.bss``: each becomes a single-entry
  ARRAY whose value is the section, named as libbpf names it for the kernel; ``.rodata`` is
  read-only for programs and frozen once written.

A map whose definition asks for what the loader does not support (an unknown map type or
attribute, static initialisers) is refused alone: it is listed in ``MapSymbols.refused`` and
refuses the programs that use it; the object's other maps and programs load.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from ..maps.spec import MapSpec, Pinning
from ..uapi import MapFlags, MapType
from .btf import Btf, BtfType
from .btf_fields import spin_lock_offset
from .btf_layout import BtfKind
from .elf import ElfObject, Section
from .errors import LoaderError

BTF_MAPS_SECTION = ".maps"
LEGACY_MAPS_SECTION = "maps"
#: struct bpf_map_def: type, key_size, value_size, max_entries, map_flags.
LEGACY_MAP_DEF = struct.Struct("<IIIII")
BPF_OBJ_NAME_LEN = 16
U32_MAX = 0xFFFFFFFF

#: Members of a BTF map definition whose value is the N of ``int (*name)[N]``. ``numa_node``
#: is read but not kept: it places host memory and means nothing on a device.
INT_MEMBERS = ("type", "max_entries", "map_flags", "numa_node", "key_size", "value_size",
               "pinning", "map_extra")


@dataclass(frozen=True, slots=True)
class MapSymbols:
    """Where the maps live in the object, to resolve relocations against them."""

    #: (section index, byte offset of the definition) -> map name, for ``.maps`` and ``maps``
    definitions: dict[tuple[int, int], str]
    #: section index -> name of the global data map holding that section
    data_sections: dict[int, str]
    #: map name -> why the map cannot be created (its programs are refused)
    refused: dict[str, str] = field(default_factory=dict)


def collect_maps(elf: ElfObject, btf: Btf | None,
                 object_name: str) -> tuple[dict[str, MapSpec], MapSymbols]:
    """Every map the object defines, in libbpf's order: ``.maps``, ``maps``, global data."""
    maps: dict[str, MapSpec] = {}
    definitions: dict[tuple[int, int], str] = {}
    data_sections: dict[int, str] = {}
    refused: dict[str, str] = {}

    def add(spec: MapSpec | str, name: str, section: Section) -> None:
        if name in maps or name in refused:
            raise LoaderError(f"map '{name}' is defined twice.", section=section.name,
                              symbol=name)
        if isinstance(spec, str):
            refused[name] = spec
        else:
            maps[name] = spec

    section = elf.section(BTF_MAPS_SECTION)
    if section is not None:
        placed = _btf_maps(elf, section, btf)
        for spec, name, offset, _size in placed:
            add(spec, name, section)
            definitions[(section.index, offset)] = name
        for name, why in _static_initialisers(elf, section, placed).items():
            maps.pop(name, None)
            refused.setdefault(name, why)
    section = elf.section(LEGACY_MAPS_SECTION)
    if section is not None:
        for spec, name, offset in _legacy_maps(elf, section):
            add(spec, name, section)
            definitions[(section.index, offset)] = name
    for section in elf.sections:
        if is_global_data(section.name) and section.size:
            spec = _global_data_map(section, object_name, btf)
            name = global_data_map_name(object_name, section.name)
            add(spec, name, section)
            data_sections[section.index] = name
    return maps, MapSymbols(definitions, data_sections, refused)


def _static_initialisers(elf: ElfObject, section: Section,
                         placed: list[tuple[MapSpec | str, str, int, int]]) -> dict[str, str]:
    """``.values = { ... }`` of a prog_array or map of maps (relocations in ``.maps``): the
    maps that have them, refused; a relocation outside every definition refuses the object."""
    refused: dict[str, str] = {}
    for reloc in elf.relocations.get(section.index, ()):
        target = elf.symbol_name(reloc.symbol)
        owner = next((name for _, name, offset, size in placed
                      if offset <= reloc.offset < offset + size), None)
        if owner is None:
            raise LoaderError(f"relocation at offset {reloc.offset} is inside no map "
                              "definition.", section=section.name, symbol=target)
        refused.setdefault(owner, f"static initialisation of map slots (.values = {{...}}, "
                                  f"here '{target}') is not supported; fill the map after "
                                  "loading.")
    return refused


def is_global_data(name: str) -> bool:
    return name in (".rodata", ".data", ".bss") or name.startswith((".rodata.", ".data."))


def global_data_map_name(object_name: str, section: str) -> str:
    """libbpf's kernel-visible name: object name prefix (up to 8 characters) + section name.

    Sections with a second dot (``.rodata.str1.1``) keep only their own name; everything is
    cut to 15 characters and characters the kernel refuses become ``_``.
    """
    suffix_len = max(7, len(section))
    if "." in section[1:]:
        prefix_len = 0
    else:
        prefix_len = max(0, min(BPF_OBJ_NAME_LEN - suffix_len - 1, len(object_name)))
    name = (object_name[:prefix_len] + section[:suffix_len])[:BPF_OBJ_NAME_LEN - 1]
    return "".join(c if c.isascii() and (c.isalnum() or c in "_.") else "_" for c in name)


def _global_data_map(section: Section, object_name: str, btf: Btf | None) -> MapSpec | str:
    """The single-entry array of a global data section; its value type is the section's
    DATASEC, where a ``struct bpf_spin_lock`` variable is the map's lock (as libbpf passes
    the DATASEC as the value type)."""
    if section.size > U32_MAX:
        raise LoaderError(f"{section.size} bytes of global data do not fit a map value.",
                          section=section.name)
    readonly = section.name.startswith(".rodata")
    # .bss starts zeroed like a new array, so it needs no contents.
    contents = () if section.is_nobits else ((bytes(4), section.data),)
    datasec = btf.datasec(section.name) if btf is not None else None
    try:
        lock = spin_lock_offset(btf, datasec.id) if btf is not None and datasec is not None \
            else None
    except LoaderError as err:
        return err.detail
    return MapSpec(
        name=global_data_map_name(object_name, section.name),
        type=MapType.ARRAY,
        key_size=4,
        value_size=section.size,
        max_entries=1,
        flags=int(MapFlags.RDONLY_PROG) if readonly else 0,
        contents=contents,
        frozen=readonly,
        spin_lock_off=lock,
    )


def _legacy_maps(elf: ElfObject, section: Section) -> list[tuple[MapSpec | str, str, int]]:
    """(spec, or why the map is refused; name; offset) of each ``struct bpf_map_def``."""
    symbols = sorted((s for s in elf.symbols_in(section.index) if s.type != "STT_SECTION"),
                     key=lambda s: s.value)
    if not symbols:
        return []
    if section.size % len(symbols):
        raise LoaderError(f"{section.size} bytes cannot hold {len(symbols)} equal map "
                          "definitions.", section=section.name)
    def_size = section.size // len(symbols)
    if def_size < LEGACY_MAP_DEF.size:
        raise LoaderError(f"map definitions of {def_size} bytes are shorter than struct "
                          f"bpf_map_def ({LEGACY_MAP_DEF.size} bytes).", section=section.name)
    result: list[tuple[MapSpec | str, str, int]] = []
    for symbol in symbols:
        offset = symbol.value
        if offset % def_size or offset + def_size > section.size:
            raise LoaderError(f"the definition at offset {offset} is not one of the "
                              f"{def_size}-byte slots of the section.", section=section.name,
                              symbol=symbol.name)
        if section.is_nobits:
            raise LoaderError("map definitions must have contents.", section=section.name)
        raw = section.data[offset:offset + def_size]
        map_type, key_size, value_size, max_entries, map_flags = LEGACY_MAP_DEF.unpack_from(raw)
        if any(raw[LEGACY_MAP_DEF.size:]):
            result.append(("the map definition sets fields beyond struct bpf_map_def, which "
                           "are not supported.", symbol.name, offset))
            continue
        try:
            kind = _map_type(map_type, section, symbol.name)
        except LoaderError as err:
            result.append((err.detail, symbol.name, offset))
            continue
        spec = MapSpec(name=symbol.name, type=kind, key_size=key_size, value_size=value_size,
                       max_entries=max_entries, flags=map_flags)
        result.append((spec, symbol.name, offset))
    return result


def _map_type(value: int, section: Section | str, name: str) -> MapType:
    try:
        return MapType(value)
    except ValueError:
        section_name = section if isinstance(section, str) else section.name
        raise LoaderError(f"unknown map type {value}.", section=section_name,
                          symbol=name) from None


def _btf_maps(elf: ElfObject, section: Section,
              btf: Btf | None) -> list[tuple[MapSpec | str, str, int, int]]:
    """(spec, or why the map is refused; name; offset; size) of each ``.maps`` variable."""
    if btf is None:
        raise LoaderError("BTF-defined maps need the .BTF section, which is missing.",
                          section=section.name)
    datasec = btf.datasec(BTF_MAPS_SECTION)
    if datasec is None:
        raise LoaderError("the BTF has no DATASEC describing the section.",
                          section=section.name)
    symbols = {s.name: s for s in elf.symbols_in(section.index) if s.type != "STT_SECTION"}
    result = []
    for info in datasec.secinfos:
        var = btf[info.type_id]
        if var.kind != BtfKind.VAR:
            raise LoaderError(f"DATASEC member [{info.type_id}] is a {var.kind.name}, not a "
                              "variable.", section=section.name)
        symbol = symbols.get(var.name)
        if symbol is None:
            raise LoaderError("the map has no ELF symbol.", section=section.name,
                              symbol=var.name)
        try:
            spec: MapSpec | str = parse_btf_map(btf, var.type_id, var.name)
        except LoaderError as err:
            spec = err.detail
        result.append((spec, var.name, symbol.value, info.size))
    return result


def parse_btf_map(btf: Btf, type_id: int, name: str, *, inner: bool = False) -> MapSpec:
    """A map spec from the struct describing a BTF-defined map."""
    definition = btf.resolve(type_id)
    if definition.kind != BtfKind.STRUCT:
        raise LoaderError(f"the map definition is a {definition.kind.name}, not a struct.",
                          section=BTF_MAPS_SECTION, symbol=name)
    values: dict[str, int] = {}
    key_type = value_type = None
    inner_spec: MapSpec | None = None
    has_values = False
    for member in definition.members:
        if member.name in INT_MEMBERS:
            values[member.name] = _int_member(btf, member.type_id, name, member.name)
        elif member.name in ("key", "value"):
            pointer = btf.resolve(member.type_id)
            if pointer.kind != BtfKind.PTR:
                raise LoaderError(f"'{member.name}' must be a pointer to the {member.name} "
                                  "type.", section=BTF_MAPS_SECTION, symbol=name)
            if member.name == "key":
                key_type = pointer.type_id
            else:
                value_type = pointer.type_id
        elif member.name == "values":
            if inner:
                raise LoaderError("an inner map cannot itself hold maps.",
                                  section=BTF_MAPS_SECTION, symbol=name)
            has_values = True
            inner_spec = _values_member(btf, member.type_id, name)
        else:
            raise LoaderError(f"unknown map attribute '{member.name}'.",
                              section=BTF_MAPS_SECTION, symbol=name)
    key_size = _size(btf, values.get("key_size"), key_type, name, "key")
    value_size = _size(btf, values.get("value_size"), value_type, name, "value")
    map_type = _map_type(values.get("type", 0), BTF_MAPS_SECTION, name)
    if has_values:
        # The kernel stores a map or program id in each slot; libbpf takes a value type or
        # size beside __array(values, ...) when it says 4 bytes (__type(value, __u32)).
        if value_size not in (0, 4):
            raise LoaderError(f"a map with 'values' holds 4-byte map or program ids; its value "
                              f"is declared with {value_size} bytes.",
                              section=BTF_MAPS_SECTION, symbol=name)
        value_size = 4
        if inner_spec is not None and not map_type.is_map_in_map:
            raise LoaderError(f"'values' holds maps but the map type is {map_type.name}.",
                              section=BTF_MAPS_SECTION, symbol=name)
    if map_type.is_map_in_map and inner_spec is None:
        raise LoaderError(f"a {map_type.name} needs the inner map described by "
                          "__array(values, ...).", section=BTF_MAPS_SECTION, symbol=name)
    if values.get("map_extra"):
        raise LoaderError("map_extra is not supported.", section=BTF_MAPS_SECTION, symbol=name)
    try:
        pinning = Pinning(values.get("pinning", 0))
    except ValueError:
        raise LoaderError(f"unknown pinning {values['pinning']}.", section=BTF_MAPS_SECTION,
                          symbol=name) from None
    lock = spin_lock_offset(btf, value_type, map_name=name) if value_type is not None else None
    return MapSpec(name=name, type=map_type, key_size=key_size, value_size=value_size,
                   max_entries=values.get("max_entries", 0), flags=values.get("map_flags", 0),
                   pinning=pinning, inner=inner_spec, spin_lock_off=lock)


def _int_member(btf: Btf, type_id: int, map_name: str, member: str) -> int:
    """N from ``int (*member)[N]``."""
    pointer = btf.resolve(type_id)
    array = btf.resolve(pointer.type_id) if pointer.kind == BtfKind.PTR else pointer
    if pointer.kind != BtfKind.PTR or array.kind != BtfKind.ARRAY:
        raise LoaderError(f"'{member}' must be declared as int (*{member})[N].",
                          section=BTF_MAPS_SECTION, symbol=map_name)
    return array.nelems


def _size(btf: Btf, explicit: int | None, type_id: int | None, map_name: str,
          what: str) -> int:
    """A key or value size from ``<what>_size`` or the ``<what>`` type; both must agree."""
    from_type = btf.size_of(type_id) if type_id is not None else None
    if explicit is not None and from_type is not None and explicit != from_type:
        raise LoaderError(f"{what}_size {explicit} disagrees with the size of the {what} "
                          f"type ({from_type}).", section=BTF_MAPS_SECTION, symbol=map_name)
    return explicit if explicit is not None else (from_type or 0)


def _values_member(btf: Btf, type_id: int, map_name: str) -> MapSpec | None:
    """The inner map template of ``__array(values, struct inner)``; None for programs."""
    array = btf.resolve(type_id)
    if array.kind != BtfKind.ARRAY or array.nelems != 0:
        raise LoaderError("'values' must be a flexible array of pointers.",
                          section=BTF_MAPS_SECTION, symbol=map_name)
    pointer = btf.resolve(array.elem_type)
    target: BtfType = btf.resolve(pointer.type_id) if pointer.kind == BtfKind.PTR else pointer
    if pointer.kind != BtfKind.PTR:
        raise LoaderError("'values' must be an array of pointers.", section=BTF_MAPS_SECTION,
                          symbol=map_name)
    if target.kind == BtfKind.FUNC_PROTO:
        return None
    if target.kind != BtfKind.STRUCT:
        raise LoaderError("'values' must point to a map definition or a program.",
                          section=BTF_MAPS_SECTION, symbol=map_name)
    return parse_btf_map(btf, pointer.type_id, f"{map_name}.inner", inner=True)
