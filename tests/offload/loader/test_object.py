"""Every fixture loads into the specs its C source describes."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.isa.disasm import slot_positions
from offload.isa.opcodes import PseudoSrc
from offload.loader import LoaderError, load_object
from offload.maps.spec import MapSpec, Pinning
from offload.program import Linkage, MapReference
from offload.uapi import MapFlags, MapType, ProgFlags, ProgType

from .fixtures import OBJECT_IDS, OBJECTS, fixture

#: program name -> section, for every fixture (the v2/v4 variants have the same programs).
PROGRAMS = {
    "xdp_pass": {"xdp_pass_all": "xdp", "xdp_drop_all": "xdp"},
    "xdp_firewall": {"xdp_firewall": "xdp"},
    "xdp_counters": {"xdp_count_protocols": "xdp.frags"},
    "xdp_lpm": {"xdp_prefix_filter": "xdp"},
    "xdp_lb": {"xdp_load_balancer": "xdp"},
    "xdp_tunnel": {"xdp_ipip_encap": "xdp", "xdp_ipip_decap": "xdp"},
    "xdp_trim": {"xdp_trim_tail": "xdp"},
    "xdp_redirect": {"xdp_redirect_by_mac": "xdp", "xdp_redirect_uplink": "xdp"},
    "xdp_tailcall": {"xdp_dispatch": "xdp", "xdp_handle_tcp": "xdp", "xdp_handle_udp": "xdp",
                     "xdp_handle_icmp": "xdp"},
    "xdp_config": {"xdp_configured_filter": "xdp"},
    "xdp_subprog": {"xdp_drop_expiring": "xdp", "xdp_classify": "xdp"},
    "xdp_ipv6_ext": {"xdp_ipv6_exthdrs": "xdp"},
    "xdp_fwd": {"xdp_router_ipv4": "xdp"},
    "xdp_tenant": {"xdp_tenant_filter": "xdp"},
    "xdp_flowmark": {"xdp_flow_mark": "xdp"},
    "xdp_port_filter": {"xdp_port_filter": "xdp"},
    "xdp_steer": {"xdp_steer": "xdp"},
}


def base_name(path: Path) -> str:
    return path.stem.removesuffix("_v2").removesuffix("_v4")


def test_fixture_set_is_complete() -> None:
    assert {base_name(path) for path in OBJECTS} == set(PROGRAMS)
    assert len(PROGRAMS) >= 10


@pytest.mark.parametrize("path", OBJECTS, ids=OBJECT_IDS)
def test_every_fixture_loads(path: Path) -> None:
    obj = load_object(path)
    assert obj.source == str(path)
    assert obj.license in ("GPL", "Dual BSD/GPL")
    assert obj.btf is not None
    assert {name: prog.section for name, prog in obj.programs.items()} == PROGRAMS[base_name(path)]
    for prog in obj.programs.values():
        assert prog.type == ProgType.XDP
        assert prog.license == obj.license
        expected_flags = ProgFlags.XDP_HAS_FRAGS if prog.section == "xdp.frags" else 0
        assert prog.flags == expected_flags
        assert prog.instructions[-1].is_exit or prog.instructions[-1].is_unconditional_jump
        assert prog.functions[0].slot == 0 and prog.functions[0].name == prog.name
        positions = dict(zip(slot_positions(prog.instructions), prog.instructions))
        for ref in prog.map_refs:
            assert ref.map_name in obj.maps
            insn = positions[ref.slot]
            assert insn.is_lddw and insn.src == ref.kind and insn.imm == 0
            assert insn.next_imm == (ref.offset if ref.kind == PseudoSrc.MAP_VALUE else 0)
        for insn in prog.instructions:
            assert insn.field_problem() is None, insn
        # Line info points at real instructions, in order, in the fixture's own source.
        slots = [info.slot for info in prog.line_info]
        assert slots == sorted(slots) and set(slots) <= set(positions)
        assert all(info.file.endswith(f"src/{base_name(path)}.c") or info.file.endswith(".h")
                   for info in prog.line_info)


def test_bytes_and_path_give_the_same_specs() -> None:
    path = fixture("xdp_config.o")
    from_path = load_object(path)
    from_bytes = load_object(path.read_bytes(), name="xdp_config")
    assert dict(from_bytes.programs) == dict(from_path.programs)
    assert dict(from_bytes.maps) == dict(from_path.maps)
    assert from_bytes.source == "xdp_config"
    anonymous = load_object(path.read_bytes())
    assert set(anonymous.maps) == {".rodata", ".data", ".bss", ".rodata.str1.1"}


def test_object_spec_is_read_only() -> None:
    obj = load_object(fixture("xdp_pass.o"))
    with pytest.raises(TypeError):
        obj.programs["x"] = obj.programs["xdp_pass_all"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        obj.license = "MIT"  # type: ignore[misc]


def test_pass_and_drop_are_two_programs_of_one_section() -> None:
    obj = load_object(fixture("xdp_pass.o"))
    assert [str(i) for i in obj.programs["xdp_pass_all"].instructions] == ["mov32 %r0, 2",
                                                                          "exit"]
    assert [str(i) for i in obj.programs["xdp_drop_all"].instructions] == ["mov32 %r0, 1",
                                                                          "exit"]
    assert obj.maps == {}
    assert obj.license == "Dual BSD/GPL"


def test_firewall_maps() -> None:
    obj = load_object(fixture("xdp_firewall.o"))
    assert dict(obj.maps) == {
        "blocked_v4": MapSpec("blocked_v4", MapType.HASH, 4, 8, 1024, pinning=Pinning.BY_NAME),
        "blocked_v6": MapSpec("blocked_v6", MapType.HASH, 16, 8, 1024),
        "verdicts": MapSpec("verdicts", MapType.PERCPU_ARRAY, 4, 8, 2),
    }
    refs = obj.programs["xdp_firewall"].map_refs
    assert {ref.map_name for ref in refs} == {"blocked_v4", "blocked_v6", "verdicts"}
    assert all(ref.kind == PseudoSrc.MAP_FD and ref.offset == 0 for ref in refs)


def test_lpm_tenant_and_tailcall_maps() -> None:
    lpm = load_object(fixture("xdp_lpm.o")).maps
    assert lpm["prefixes_v4"] == MapSpec("prefixes_v4", MapType.LPM_TRIE, 8, 4, 4096,
                                         flags=MapFlags.NO_PREALLOC)
    assert lpm["prefixes_v6"] == MapSpec("prefixes_v6", MapType.LPM_TRIE, 20, 4, 1024,
                                         flags=MapFlags.NO_PREALLOC)
    tenant = load_object(fixture("xdp_tenant.o")).maps
    inner = MapSpec("tenant_blocklists.inner", MapType.HASH, 4, 1, 512)
    assert dict(tenant) == {"tenant_blocklists": MapSpec(
        "tenant_blocklists", MapType.ARRAY_OF_MAPS, 4, 4, 16, inner=inner)}
    tail = load_object(fixture("xdp_tailcall.o")).maps
    assert tail["jump_table"] == MapSpec("jump_table", MapType.PROG_ARRAY, 4, 4, 3)
    assert tail["udp_blocked"] == MapSpec("udp_blocked", MapType.HASH, 2, 1, 128)
    redirect = load_object(fixture("xdp_redirect.o")).maps
    assert redirect["tx_ports"] == MapSpec("tx_ports", MapType.DEVMAP, 4, 4, 64)
    assert load_object(fixture("xdp_fwd.o")).maps["tx_ifaces"] == MapSpec(
        "tx_ifaces", MapType.DEVMAP_HASH, 4, 4, 32)
    assert load_object(fixture("xdp_flowmark.o")).maps["flows"] == MapSpec(
        "flows", MapType.LRU_HASH, 12, 24, 65536)


def test_global_data_maps() -> None:
    obj = load_object(fixture("xdp_config.o"))
    cfg = bytes([1, 0, 0, 0]) + (23).to_bytes(2, "little") + (1514).to_bytes(2, "little")
    rodata = cfg + b"xdp_config: drop (%s)\0"
    assert dict(obj.maps) == {
        "xdp_conf.rodata": MapSpec("xdp_conf.rodata", MapType.ARRAY, 4, len(rodata), 1,
                                   flags=MapFlags.RDONLY_PROG, contents=((bytes(4), rodata),),
                                   frozen=True),
        "xdp_conf.data": MapSpec("xdp_conf.data", MapType.ARRAY, 4, 4, 1,
                                 contents=((bytes(4), (64).to_bytes(4, "little")),)),
        "xdp_conf.bss": MapSpec("xdp_conf.bss", MapType.ARRAY, 4, 40, 1),
        ".rodata.str1.1": MapSpec(".rodata.str1.1", MapType.ARRAY, 4, 15, 1,
                                  flags=MapFlags.RDONLY_PROG,
                                  contents=((bytes(4), b"size\0icmp\0port\0"),), frozen=True),
    }
    refs = obj.programs["xdp_configured_filter"].map_refs
    value_refs = {(ref.map_name, ref.offset) for ref in refs}
    assert all(ref.kind == PseudoSrc.MAP_VALUE for ref in refs)
    # cfg at .rodata+0, the printk format right after it, the "%s" arguments in .rodata.str1.1
    assert {("xdp_conf.rodata", 0), ("xdp_conf.rodata", 8), ("xdp_conf.data", 0),
            (".rodata.str1.1", 0), (".rodata.str1.1", 5), (".rodata.str1.1", 10)} <= value_refs
    assert {name for name, _ in value_refs} == set(obj.maps)
    bss_offsets = {offset for name, offset in value_refs if name == "xdp_conf.bss"}
    assert bss_offsets == {0, 8, 16, 24, 32}

    trim = load_object(fixture("xdp_trim.o"))
    assert trim.maps["xdp_trim.rodata"].contents == ((bytes(4), (128).to_bytes(4, "little")),)
    assert trim.maps["xdp_trim.bss"].value_size == 16
    assert {(r.map_name, r.offset) for r in trim.programs["xdp_trim_tail"].map_refs} == {
        ("xdp_trim.rodata", 0), ("xdp_trim.bss", 0), ("xdp_trim.bss", 8)}


def test_subprograms_are_appended_and_calls_rewritten() -> None:
    obj = load_object(fixture("xdp_subprog.o"))
    classify = obj.programs["xdp_classify"]
    # Only what the program reaches is linked, in the order the calls reach it.
    assert [f.name for f in classify.functions] == ["xdp_classify", "parse_l2", "record"]
    expiring = obj.programs["xdp_drop_expiring"]
    assert [f.name for f in expiring.functions] == ["xdp_drop_expiring", "parse_l2", "record",
                                                    "parse_l3_ttl"]
    # BTF func_info: `record` is global (verified once, on its own), the others static
    assert [f.linkage for f in expiring.functions] == [Linkage.GLOBAL, Linkage.STATIC,
                                                       Linkage.GLOBAL, Linkage.STATIC]
    for prog in (classify, expiring):
        starts = {f.slot for f in prog.functions}
        calls = [(slot, insn) for slot, insn in zip(slot_positions(prog.instructions),
                                                    prog.instructions) if insn.is_local_call]
        assert calls
        assert all(slot + 1 + insn.imm in starts for slot, insn in calls)
        # Each function is whole: it ends with exit right before the next one starts.
        positions = dict(zip(slot_positions(prog.instructions), prog.instructions))
        for f in prog.functions[1:]:
            assert positions[f.slot - 1].is_exit
    record = next(f.slot for f in classify.functions if f.name == "record")
    assert classify.map_refs == (MapReference(record + 3, "classes"),)


def test_line_info_carries_source_text() -> None:
    prog = load_object(fixture("xdp_trim.o")).programs["xdp_trim_tail"]
    first = prog.line_info[0]
    assert first.slot == 0 and first.file == "./src/xdp_trim.c"
    texts = {info.text.strip() for info in prog.line_info}
    assert "if (bpf_xdp_adjust_tail(ctx, -(int)excess))" in texts
    assert all(info.line > 0 for info in prog.line_info)
    # Subprogram lines move with the subprogram.
    classify = load_object(fixture("xdp_subprog.o")).programs["xdp_classify"]
    record = next(f.slot for f in classify.functions if f.name == "record")
    assert any(info.slot == record and "record" in info.text for info in classify.line_info)


def test_isa_variants_differ_only_in_code() -> None:
    for name in ("xdp_firewall", "xdp_lb", "xdp_ipv6_ext"):
        v3, v4 = load_object(fixture(f"{name}.o")), load_object(fixture(f"{name}_v4.o"))
        assert dict(v3.maps) == dict(v4.maps)
        assert set(v3.programs) == set(v4.programs)
        assert any(a.instructions != b.instructions
                   for a, b in zip(v3.programs.values(), v4.programs.values()))
    v2 = load_object(fixture("xdp_counters_v2.o")).programs["xdp_count_protocols"]
    # -mcpu=v2 has no 32-bit jumps
    assert not any(insn.opcode & 0x07 == 0x06 for insn in v2.instructions)


def test_missing_file_is_a_loader_error(tmp_path: Path) -> None:
    with pytest.raises(LoaderError, match="cannot read"):
        load_object(tmp_path / "absent.o")
