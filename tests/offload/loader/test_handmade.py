"""Objects built by hand: legacy ``maps``, relocations clang rarely emits, and refusals."""

from __future__ import annotations

import struct

import pytest

from offload.isa import assemble, encode
from offload.isa.disasm import slot_positions
from offload.isa.opcodes import CallSrc, PseudoSrc
from offload.loader import LoaderError, ProgramRefusal, RefusalKind, parse_object
from offload.maps.spec import MapSpec
from offload.program import FuncInfo, MapReference
from offload.uapi import MapType, ProgFlags, ProgType

from .elf_writer import (
    R_BPF_64_32,
    R_BPF_64_ABS64,
    SHF_ALLOC,
    SHF_WRITE,
    SHT_NOBITS,
    STB_LOCAL,
    STT_FUNC,
    STT_OBJECT,
    ElfBuilder,
    Rel,
    Sec,
    Sym,
)

MAP_DEF = struct.Struct("<IIIII")


def code(text: str) -> bytes:
    return encode(assemble(text))


def legacy_object() -> ElfBuilder:
    """An XDP program in ``xdp/legacy`` using two legacy maps, .data and a .text subprogram.

    The .text subprogram ``helper`` calls ``leaf`` without a relocation (a call inside one
    section) and takes the address of ``leaf`` with an ``lddw`` relocated against .text.
    """
    elf = ElfBuilder()
    main = code("""
        lddw %r1, 0
        lddw %r2, 0
        lddw %r3, 8
        call local -1
        exit
    """)
    text = code("""
        mov %r0, 0
        lddw %r4, 0
        call local leaf
        exit
    leaf:
        mov %r0, 2
        exit
    """)
    elf.code("xdp/legacy", main)
    elf.code(".text", text)
    maps = MAP_DEF.pack(MapType.HASH, 4, 8, 16, 0) + MAP_DEF.pack(MapType.ARRAY, 4, 4, 2, 0)
    elf.sections.append(Sec("maps", maps, flags=SHF_ALLOC | SHF_WRITE))
    elf.sections.append(Sec(".data", struct.pack("<QQ", 7, 9), flags=SHF_ALLOC | SHF_WRITE))
    elf.sections.append(Sec("license", b"GPL\0"))
    elf.symbols += [
        Sym("prog", "xdp/legacy", 0, len(main), STT_FUNC),
        Sym("helper", ".text", 0, 40, STT_FUNC, STB_LOCAL),
        Sym("leaf", ".text", 40, 16, STT_FUNC, STB_LOCAL),
        Sym("counts", "maps", 0, 20, STT_OBJECT),
        Sym("table", "maps", 20, 20, STT_OBJECT),
    ]
    elf.relocations["xdp/legacy"] = [
        Rel(0, "counts"), Rel(16, "table"), Rel(32, "§.data"), Rel(48, "§.text", R_BPF_64_32)]
    elf.relocations[".text"] = [Rel(8, "§.text")]
    # the lddw at .text+8 takes the address of leaf: .text + 40
    text_bytes = bytearray(text)
    struct.pack_into("<i", text_bytes, 12, 40)
    elf.sections[1].data = bytes(text_bytes)
    return elf


def test_legacy_maps_global_data_and_subprograms() -> None:
    obj = parse_object(legacy_object().build(), "legacy")
    assert obj.btf is None and obj.license == "GPL"
    assert dict(obj.maps) == {
        "counts": MapSpec("counts", MapType.HASH, 4, 8, 16),
        "table": MapSpec("table", MapType.ARRAY, 4, 4, 2),
        "legacy.data": MapSpec("legacy.data", MapType.ARRAY, 4, 16, 1,
                               contents=((bytes(4), struct.pack("<QQ", 7, 9)),)),
    }
    prog = obj.programs["prog"]
    assert prog.type == ProgType.XDP and prog.section == "xdp/legacy"
    assert prog.flags == ProgFlags.NONE
    assert prog.functions == (FuncInfo(0, "prog"), FuncInfo(8, "helper"), FuncInfo(13, "leaf"))
    assert prog.map_refs == (
        MapReference(0, "counts"), MapReference(2, "table"),
        MapReference(4, "legacy.data", PseudoSrc.MAP_VALUE, 8))
    insns = dict(zip(slot_positions(prog.instructions), prog.instructions))
    assert (insns[4].src, insns[4].imm, insns[4].next_imm) == (PseudoSrc.MAP_VALUE, 0, 8)
    assert insns[6].is_local_call and 6 + 1 + insns[6].imm == 8
    # lddw of leaf's address: a PSEUDO_FUNC relative to the slot after the lddw
    assert insns[9].src == PseudoSrc.FUNC and 9 + 1 + insns[9].imm == 13
    # the call inside .text had no relocation and still reaches leaf
    assert insns[11].is_local_call and 11 + 1 + insns[11].imm == 13


def test_section_prefixes_give_program_types() -> None:
    for section, prog_type, flags in (("xdp.frags/cpumap", ProgType.XDP, ProgFlags.XDP_HAS_FRAGS),
                                      ("tc", ProgType.SCHED_CLS, 0),
                                      ("classifier/ingress", ProgType.SCHED_CLS, 0),
                                      ("socket", ProgType.SOCKET_FILTER, 0),
                                      ("kprobe/do_unlinkat", ProgType.KPROBE, 0),
                                      ("tracepoint/syscalls/sys_enter_open",
                                       ProgType.TRACEPOINT, 0)):
        elf = ElfBuilder()
        elf.code(section, code("mov %r0, 0\nexit"))
        elf.symbols.append(Sym("p", section, 0, 16, STT_FUNC))
        prog = parse_object(elf.build(), "t").programs["p"]
        assert (prog.type, prog.flags) == (prog_type, flags), section


def test_devmap_and_cpumap_sections_give_the_attach_type() -> None:
    """A program a map entry runs is loaded for that map, as libbpf sets it from the section:
    only a devmap's program may read ``egress_ifindex``."""
    for section, attach in (("xdp/devmap", 33), ("xdp.frags/devmap", 33), ("xdp/cpumap", 35),
                            ("xdp.frags/cpumap", 35), ("xdp", 0), ("xdp/devmapx", 0)):
        elf = ElfBuilder()
        elf.code(section, code("mov %r0, 0\nexit"))
        elf.symbols.append(Sym("p", section, 0, 16, STT_FUNC))
        prog = parse_object(elf.build(), "t").programs["p"]
        assert prog.expected_attach_type == attach, section


def refusal(elf: ElfBuilder) -> LoaderError:
    """The object refused whole (its container is broken)."""
    with pytest.raises(LoaderError) as info:
        parse_object(elf.build(), "bad")
    return info.value


def program_refusal(elf: ElfBuilder, program: str = "prog") -> ProgramRefusal:
    """The object loads; ``program`` alone is refused, and says why."""
    obj = parse_object(elf.build(), "bad")
    assert program not in obj.programs and set(obj.refused) == {program}
    refused = obj.refused[program]
    assert (refused.program, refused.section) == (program, obj.sections[program])
    return refused


def with_plain_program(elf: ElfBuilder) -> ElfBuilder:
    """``elf`` plus a program in its own section that needs nothing: it must still load."""
    elf.code("xdp/plain", code("mov %r0, 2\nexit"))
    elf.symbols.append(Sym("plain", "xdp/plain", 0, 16, STT_FUNC))
    return elf


def test_unknown_program_section_refuses_its_programs_only() -> None:
    elf = with_plain_program(ElfBuilder())
    elf.code("mystery", code("mov %r0, 0\nexit"))
    elf.symbols.append(Sym("p", "mystery", 0, 16, STT_FUNC))
    refused = program_refusal(elf, "p")
    assert refused.kind == RefusalKind.SECTION and refused.section == "mystery"
    assert "missing program type" in refused.reason and "--type p=xdp" in refused.reason
    assert list(parse_object(elf.build(), "t").programs) == ["plain"]


def test_unsupported_relocation_names_section_and_symbol() -> None:
    elf = with_plain_program(legacy_object())
    elf.relocations["xdp/legacy"][0] = Rel(0, "counts", R_BPF_64_ABS64)
    refused = program_refusal(elf)
    assert (refused.kind, refused.symbol) == (RefusalKind.RELOCATION, "counts")
    assert "R_BPF_64_ABS64" in refused.reason and "symbol 'counts'" in refused.reason


def test_extern_symbol_refuses_the_program() -> None:
    elf = with_plain_program(legacy_object())
    elf.symbols.append(Sym("CONFIG_HZ", None))
    elf.relocations["xdp/legacy"][0] = Rel(0, "CONFIG_HZ")
    refused = program_refusal(elf)
    assert (refused.kind, refused.symbol) == (RefusalKind.EXTERN, "CONFIG_HZ")
    assert "extern 'CONFIG_HZ' (__ksym or __kconfig)" in refused.reason


def test_kfunc_call_refuses_the_program() -> None:
    elf = with_plain_program(ElfBuilder())
    elf.code("xdp", code("call 0\nexit"))
    data = bytearray(elf.sections[-1].data)
    data[1] = CallSrc.KFUNC << 4
    elf.sections[-1].data = bytes(data)
    elf.symbols += [Sym("prog", "xdp", 0, 16, STT_FUNC), Sym("bpf_rcu_read_lock", None)]
    elf.relocations["xdp"] = [Rel(0, "bpf_rcu_read_lock", R_BPF_64_32)]
    refused = program_refusal(elf)
    assert refused.kind == RefusalKind.EXTERN and "kfunc" in refused.reason
    assert "'bpf_rcu_read_lock'" in refused.reason


def test_relocation_against_unknown_section_is_refused() -> None:
    elf = with_plain_program(legacy_object())
    elf.sections.append(Sec(".struct_ops", bytes(16)))
    elf.symbols.append(Sym("ops", ".struct_ops", 0, 16, STT_OBJECT))
    elf.relocations["xdp/legacy"][0] = Rel(0, "ops")
    refused = program_refusal(elf)
    assert refused.symbol == "ops" and "'.struct_ops' is not supported" in refused.reason


def test_relocation_on_the_wrong_instruction_is_refused() -> None:
    elf = legacy_object()
    elf.relocations["xdp/legacy"][3] = Rel(48, "counts")  # R_BPF_64_64 on the call
    assert "not on an lddw" in program_refusal(elf).reason
    elf = legacy_object()
    elf.relocations["xdp/legacy"][0] = Rel(0, "§.text", R_BPF_64_32)  # call reloc on lddw
    assert "not on a bpf-to-bpf call" in program_refusal(elf).reason
    elf = legacy_object()
    elf.relocations["xdp/legacy"].append(Rel(0, "table"))  # a second one on the same lddw
    assert "two relocations" in program_refusal(elf).reason
    elf = legacy_object()  # not on an instruction at all: the object is broken
    elf.relocations["xdp/legacy"][0] = Rel(4, "counts")
    assert "not an instruction" in str(refusal(elf))


def test_call_into_the_middle_of_a_function_is_refused() -> None:
    elf = legacy_object()
    data = bytearray(elf.sections[0].data)
    struct.pack_into("<i", data, 52, 0)  # call .text + 8: inside helper
    elf.sections[0].data = bytes(data)
    refused = program_refusal(elf)
    assert refused.kind == RefusalKind.LINK and refused.symbol == "prog"
    assert "not the start of a function" in refused.reason


def test_global_data_offset_out_of_range_is_refused() -> None:
    elf = legacy_object()
    data = bytearray(elf.sections[0].data)
    struct.pack_into("<i", data, 36, 16)  # .data + 16, past its 16 bytes
    elf.sections[0].data = bytes(data)
    assert "outside global data" in program_refusal(elf).reason


def test_legacy_map_definitions_must_be_whole() -> None:
    elf = legacy_object()
    elf.sections[2].data += bytes(4)  # 44 bytes for two maps
    assert refusal(elf).section == "maps"


def test_unknown_map_type_refuses_the_map_and_its_programs() -> None:
    elf = with_plain_program(legacy_object())
    elf.sections[2].data = MAP_DEF.pack(99, 4, 4, 1, 0) + MAP_DEF.pack(2, 4, 4, 1, 0)
    obj = parse_object(elf.build(), "bad")
    assert "counts" not in obj.maps and "table" in obj.maps
    assert "unknown map type 99" in obj.refused_maps["counts"]
    refused = program_refusal(elf)
    assert (refused.kind, refused.symbol) == (RefusalKind.MAP, "counts")
    assert "uses map 'counts', which cannot be created: unknown map type 99" in refused.reason


def test_bss_becomes_an_empty_array() -> None:
    elf = legacy_object()
    elf.sections.append(Sec(".bss", type=SHT_NOBITS, flags=SHF_ALLOC | SHF_WRITE, size=24))
    elf.relocations["xdp/legacy"][2] = Rel(32, "§.bss")
    obj = parse_object(elf.build(), "a_long_object_name")
    assert obj.maps["a_long_o.bss"] == MapSpec("a_long_o.bss", MapType.ARRAY, 4, 24, 1)
    assert obj.programs["prog"].map_refs[2] == MapReference(
        4, "a_long_o.bss", PseudoSrc.MAP_VALUE, 8)


def test_code_without_function_symbols_is_refused() -> None:
    elf = ElfBuilder()
    elf.code("xdp", code("mov %r0, 0\nexit"))
    assert "no function symbol" in str(refusal(elf))


def test_undecodable_code_refuses_the_programs_that_reach_it() -> None:
    elf = with_plain_program(ElfBuilder())
    elf.code("xdp", bytes.fromhex("ff00000000000000") + code("exit"))
    elf.symbols.append(Sym("broken", "xdp", 0, 16, STT_FUNC))
    refused = program_refusal(elf, "broken")
    assert (refused.kind, refused.section) == (RefusalKind.INSTRUCTION, "xdp")
    assert "cannot decode function 'broken': unknown opcode 0xff" in refused.reason


def test_undecodable_subprogram_refuses_only_its_callers() -> None:
    """An undefined opcode (0xed: JCOND with a register source) in a .text subprogram: the
    program calling it is refused, the program in the same section that does not call it
    loads."""
    elf = ElfBuilder()
    elf.code("xdp", code("call local 1\nexit\nmov %r0, 2\nexit"))
    elf.code(".text", bytes.fromhex("ed00000000000000") + code("mov %r0, 0\nexit"))
    elf.symbols += [Sym("caller", "xdp", 0, 16, STT_FUNC), Sym("plain", "xdp", 16, 16, STT_FUNC),
                    Sym("loop", ".text", 0, 24, STT_FUNC)]
    elf.relocations["xdp"] = [Rel(0, "loop", R_BPF_64_32)]
    data = bytearray(elf.sections[0].data)
    struct.pack_into("<i", data, 4, -1)  # a call to a global symbol: imm -1, the symbol itself
    elf.sections[0].data = bytes(data)
    refused = program_refusal(elf, "caller")
    assert refused.kind == RefusalKind.INSTRUCTION
    assert "cannot decode function 'loop': unknown opcode 0xed" in refused.reason
    assert list(parse_object(elf.build(), "t").programs) == ["plain"]
