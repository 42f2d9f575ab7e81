"""Real objects built like libbpf users build them: programs refused one by one, program
types and map sizes set before load, map-in-map declared with a value type.

The objects are in fixtures/xdp/libbpf (sources in fixtures/src/libbpf); libbpf loads every
one of them on Linux 6.18 with the types and sizes used here (test_kernel.py checks the
programs this loader produces against the kernel's verifier).
"""

from __future__ import annotations

import struct

import pytest

from offload.loader import (
    BtfKind,
    LoadOptionError,
    RefusalKind,
    load_object,
    parse_object,
)
from offload.loader.sections import parse_prog_type
from offload.uapi import MapType, ProgFlags, ProgType

from .btf_writer import BtfWriter
from .elf_writer import STT_FUNC, STT_OBJECT, ElfBuilder, Rel, Sec, Sym
from .fixtures import fixture, libbpf_fixture
from .test_handmade import code


def test_co_re_in_a_tracing_program_does_not_block_the_xdp_one() -> None:
    obj = load_object(libbpf_fixture("xdp_traced"))
    assert list(obj.sections) == ["xdp_count_ipv4", "trace_nanosleep", "trace_getpid"]
    assert obj.programs["xdp_count_ipv4"].type == ProgType.XDP
    # the XDP program reaches its own .text subprogram, not the one holding the CO-RE read
    assert [f.name for f in obj.programs["xdp_count_ipv4"].functions] == \
        ["xdp_count_ipv4", "count_frame"]
    assert obj.programs["trace_getpid"].type == ProgType.TRACEPOINT  # the device decides
    refused = obj.refused["trace_nanosleep"]
    assert (refused.kind, refused.section, refused.symbol) == \
        (RefusalKind.CO_RE, "kprobe/do_nanosleep", "task_tgid")
    assert refused.reason.startswith("needs 1 CO-RE relocation the device cannot resolve "
                                     "(device BTF uapi ")
    assert refused.reason.endswith("first, at insn 25 in 'task_tgid': field_byte_offset of "
                                   "struct task_struct.tgid cannot be resolved: the device's "
                                   "BTF has no struct task_struct.")
    assert str(refused).startswith("program 'trace_nanosleep' (section 'kprobe/do_nanosleep'): ")
    assert set(obj.maps) == {"frame_counts", "sleepers"} and not obj.refused_maps


def test_current_isa_and_kfuncs_refuse_their_programs_only() -> None:
    obj = load_object(libbpf_fixture("xdp_current_isa"))
    assert list(obj.programs) == ["xdp_scan_ff", "xdp_ttl_guard"]  # may_goto decodes
    assert list(obj.refused) == ["xdp_peek_dynptr"]
    peek = obj.refused["xdp_peek_dynptr"]
    assert (peek.kind, peek.symbol) == (RefusalKind.EXTERN, "bpf_dynptr_from_xdp")
    assert "kfunc" in peek.reason


def test_custom_sections_need_a_type() -> None:
    path = libbpf_fixture("xdp_custom_sections")
    obj = load_object(path)
    assert list(obj.programs) == ["xdp_standard"]
    assert {name: r.kind for name, r in obj.refused.items()} == {
        "xdp_custom": RefusalKind.SECTION, "xdp_old_style": RefusalKind.SECTION}
    assert "section 'xdp_custom_name' names none" in obj.refused["xdp_custom"].reason

    every = load_object(path, prog_type="xdp")
    assert not every.refused
    assert {p.type for p in every.programs.values()} == {ProgType.XDP}

    one = load_object(path, prog_types={"xdp_custom": ProgType.XDP})
    assert set(one.programs) == {"xdp_custom", "xdp_standard"} and set(one.refused) == \
        {"xdp_old_style"}
    # a program's own type wins over the object's; types given by name take section names
    mixed = load_object(path, prog_type="xdp", prog_types={"xdp_old_style": "xdp.frags",
                                                           "xdp_standard": "tc"})
    assert mixed.programs["xdp_old_style"].flags == ProgFlags.XDP_HAS_FRAGS
    assert mixed.programs["xdp_standard"].type == ProgType.SCHED_CLS
    assert mixed.programs["xdp_custom"].flags == 0


def test_type_options_are_checked() -> None:
    path = libbpf_fixture("xdp_custom_sections")
    with pytest.raises(LoadOptionError, match="no program named 'nope'.*xdp_custom"):
        load_object(path, prog_types={"nope": "xdp"})
    with pytest.raises(LoadOptionError, match="'xdpp' names no program type"):
        load_object(path, prog_type="xdpp")
    with pytest.raises(LoadOptionError, match="names no program type"):
        parse_prog_type("unspec")
    assert parse_prog_type("sched_cls") == (ProgType.SCHED_CLS, 0)
    assert parse_prog_type("XDP") == (ProgType.XDP, 0)


def test_frags_sections_keep_their_flag_when_typed_xdp() -> None:
    obj = load_object(fixture("xdp_counters.o"), prog_type="xdp")
    assert obj.programs["xdp_count_protocols"].flags == ProgFlags.XDP_HAS_FRAGS


def test_maps_sized_before_load() -> None:
    path = libbpf_fixture("xdp_sized_maps")
    obj = load_object(path)
    assert list(obj.programs) == ["xdp_port_hits"] and "allowed_ports" not in obj.maps
    assert "max_entries 0" in obj.refused_maps["allowed_ports"]
    refused = obj.refused["xdp_port_filter"]
    assert (refused.kind, refused.symbol) == (RefusalKind.MAP, "allowed_ports")
    assert "--map-size allowed_ports=N" in refused.reason

    sized = load_object(path, map_sizes={"allowed_ports": 128})
    assert not sized.refused and sized.maps["allowed_ports"].max_entries == 128
    assert obj.configured(map_sizes={"allowed_ports": 128}) == sized
    # a map sized in the object can be resized too, as bpf_map__set_max_entries allows
    resized = sized.configured(map_sizes={"port_hits": 32})
    assert (resized.maps["port_hits"].max_entries, resized.maps["allowed_ports"].max_entries) \
        == (32, 128)


@pytest.mark.parametrize(("sizes", "message"), [
    ({"allowed_ports": 0}, "from 1 to 4294967295"),
    ({"allowed_ports": -1}, "from 1 to 4294967295"),
    ({"allowed_ports": 1 << 32}, "from 1 to 4294967295"),
    ({"allowed_ports": True}, "from 1 to 4294967295"),
    ({"allowed_ports": "8"}, "from 1 to 4294967295"),
    ({"nope": 8}, "no map named 'nope' to size; the object's maps: allowed_ports, port_hits"),
])
def test_map_size_options_are_checked(sizes: dict, message: str) -> None:
    with pytest.raises(LoadOptionError, match=message):
        load_object(libbpf_fixture("xdp_sized_maps"), map_sizes=sizes)


def test_global_data_cannot_be_sized() -> None:
    with pytest.raises(LoadOptionError, match="global data"):
        load_object(fixture("xdp_trim.o"), map_sizes={"xdp_trim.rodata": 4})


def test_inner_map_templates_are_sized_by_outer_name() -> None:
    obj = load_object(libbpf_fixture("xdp_flow_cache"), map_sizes={"flow_caches.inner": 99})
    assert obj.maps["flow_caches"].inner.max_entries == 99
    assert obj.maps["flow_caches"].max_entries == 128


def test_map_in_map_with_a_value_type_beside_values() -> None:
    """__type(value, __u32) beside __array(values, ...), as a production load balancer
    declares its per-CPU LRU tables: libbpf takes the value as the 4-byte id slot."""
    obj = load_object(libbpf_fixture("xdp_flow_cache"))
    assert list(obj.programs) == ["xdp_flow_cache"] and not obj.refused
    caches, sessions = obj.maps["flow_caches"], obj.maps["vip_sessions"]
    assert (caches.type, caches.key_size, caches.value_size, caches.max_entries) == \
        (MapType.ARRAY_OF_MAPS, 4, 4, 128)
    assert (caches.inner.type, caches.inner.key_size, caches.inner.value_size,
            caches.inner.max_entries) == (MapType.LRU_HASH, 16, 16, 4096)
    assert (sessions.type, sessions.key_size, sessions.value_size) == \
        (MapType.HASH_OF_MAPS, 4, 4)
    assert (sessions.inner.type, sessions.inner.key_size, sessions.inner.value_size) == \
        (MapType.HASH, 2, 1)


def map_in_map_object(value_bytes: int) -> ElfBuilder:
    """An ARRAY_OF_MAPS whose value type is ``value_bytes`` wide, beside __array(values)."""
    w = BtfWriter()
    u32 = w.int_("unsigned int", 4)
    value = u32 if value_bytes == 4 else w.int_("unsigned long long", value_bytes)
    index = w.int_("__ARRAY_SIZE_TYPE__", 4)

    def number(n: int) -> int:
        return w.ptr(w.array(u32, index, n))

    inner = w.struct("", 32, [("type", number(MapType.HASH), 0),
                              ("max_entries", number(4), 64),
                              ("key", w.ptr(u32), 128), ("value", w.ptr(u32), 192)])
    values = w.array(w.ptr(inner), index, 0)
    outer = w.struct("", 32, [("type", number(MapType.ARRAY_OF_MAPS), 0),
                              ("max_entries", number(2), 64), ("key", w.ptr(u32), 128),
                              ("value", w.ptr(value), 192), ("values", values, 256)])
    var = w.add(BtfKind.VAR, "tables", 0, outer, struct.pack("<I", 1))
    w.add(BtfKind.DATASEC, ".maps", 1, 0, struct.pack("<III", var, 0, 32))
    elf = ElfBuilder()
    elf.code("xdp", code("lddw %r1, 0\nmov %r0, 2\nexit"))
    elf.code("xdp/other", code("mov %r0, 2\nexit"))
    elf.sections += [Sec(".maps", bytes(32)), Sec(".BTF", w.blob(), flags=0)]
    elf.symbols += [Sym("prog", "xdp", 0, 32, STT_FUNC), Sym("other", "xdp/other", 0, 16,
                                                           STT_FUNC),
                    Sym("tables", ".maps", 0, 32, STT_OBJECT)]
    elf.relocations["xdp"] = [Rel(0, "tables")]
    return elf


def test_map_in_map_value_must_be_four_bytes() -> None:
    accepted = parse_object(map_in_map_object(4).build(), "t")
    assert accepted.maps["tables"].value_size == 4 and set(accepted.programs) == \
        {"prog", "other"}
    refused = parse_object(map_in_map_object(8).build(), "t")
    assert "its value is declared with 8 bytes" in refused.refused_maps["tables"]
    assert list(refused.programs) == ["other"]
    assert refused.refused["prog"].kind == RefusalKind.MAP
