"""BTF-defined maps in a handmade object: references, static initialisers, a CO-RE refusal."""

from __future__ import annotations

import struct

import pytest

from offload.loader import BtfKind, LoaderError, RefusalKind, parse_object
from offload.maps.spec import MapSpec
from offload.program import MapReference
from offload.uapi import MapType

from .btf_writer import BtfWriter
from .elf_writer import R_BPF_64_ABS64, STT_FUNC, STT_OBJECT, ElfBuilder, Rel, Sec, Sym
from .test_handmade import code, with_plain_program


def btf_map_object(core_relocations: int = 0) -> ElfBuilder:
    w = BtfWriter()
    u32 = w.int_("unsigned int", 4)
    index = w.int_("__ARRAY_SIZE_TYPE__", 4)
    members = [("type", w.ptr(w.array(u32, index, MapType.ARRAY)), 0),
               ("max_entries", w.ptr(w.array(u32, index, 8)), 64),
               ("key", w.ptr(u32), 128), ("value", w.ptr(u32), 192)]
    definition = w.struct("", 32, members)
    var = w.add(BtfKind.VAR, "counters", 0, definition, struct.pack("<I", 1))
    w.add(BtfKind.DATASEC, ".maps", 1, 0, struct.pack("<III", var, 0, 32))
    section_name = w.name("xdp")
    elf = ElfBuilder()
    elf.code("xdp", code("lddw %r1, 0\nmov %r0, 2\nexit"))
    elf.sections.append(Sec(".maps", bytes(32)))
    elf.sections.append(Sec(".BTF", w.blob(), flags=0))
    if core_relocations:
        records = struct.pack("<IIII", 0, u32, w.name("0"), 0) * core_relocations
        area = struct.pack("<I", 16) + struct.pack("<II", section_name,
                                                   core_relocations) + records
        header = struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, 0, 0, 0, 0, len(area))
        elf.sections[-1] = Sec(".BTF", w.blob(), flags=0)  # strings grew: rebuild
        elf.sections.append(Sec(".BTF.ext", header + area, flags=0))
    elf.symbols += [Sym("prog", "xdp", 0, 32, STT_FUNC), Sym("counters", ".maps", 0, 32,
                                                             STT_OBJECT)]
    elf.relocations["xdp"] = [Rel(0, "counters")]
    return elf


def test_btf_defined_map_is_referenced_by_name() -> None:
    obj = parse_object(btf_map_object().build(), "t")
    assert dict(obj.maps) == {"counters": MapSpec("counters", MapType.ARRAY, 4, 4, 8)}
    assert obj.programs["prog"].map_refs == (MapReference(0, "counters"),)


def test_reference_through_the_section_symbol() -> None:
    elf = btf_map_object()
    elf.relocations["xdp"] = [Rel(0, "§.maps")]
    assert parse_object(elf.build(), "t").programs["prog"].map_refs == (
        MapReference(0, "counters"),)


def test_static_initialisers_refuse_the_map_and_its_programs() -> None:
    elf = with_plain_program(btf_map_object())
    elf.relocations[".maps"] = [Rel(24, "prog", R_BPF_64_ABS64)]
    obj = parse_object(elf.build(), "t")
    assert "counters" not in obj.maps and list(obj.programs) == ["plain"]
    assert "static initialisation" in obj.refused_maps["counters"]
    assert "'prog'" in obj.refused_maps["counters"]
    refused = obj.refused["prog"]
    assert (refused.kind, refused.symbol) == (RefusalKind.MAP, "counters")
    elf.relocations[".maps"] = [Rel(40, "prog", R_BPF_64_ABS64)]  # past every definition
    with pytest.raises(LoaderError, match="inside no map definition") as info:
        parse_object(elf.build(), "t")
    assert info.value.section == ".maps"


def test_co_re_relocations_the_device_cannot_apply_refuse_the_programs_holding_them() -> None:
    # a field offset asked of the lddw of a map: nothing CO-RE can patch
    obj = parse_object(with_plain_program(btf_map_object(core_relocations=2)).build(), "t")
    assert list(obj.programs) == ["plain"] and "counters" in obj.maps
    refused = obj.refused["prog"]
    assert (refused.kind, refused.section, refused.symbol) == (RefusalKind.CO_RE, "xdp", "prog")
    assert refused.reason.startswith("needs 2 CO-RE relocations the device cannot resolve")
    assert "first, at insn 0 in 'prog': field_byte_offset of unsigned int is on an " \
        "instruction (opcode 0x18)" in refused.reason


def test_btf_maps_need_btf() -> None:
    elf = btf_map_object()
    del elf.sections[2]
    with pytest.raises(LoaderError, match="need the .BTF section") as info:
        parse_object(elf.build(), "t")
    assert info.value.section == ".maps"
