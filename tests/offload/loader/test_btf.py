"""BTF parsing: every kind, type sizes, and malformed sections."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.loader import BtfKind, LoaderError, load_object, parse_btf
from offload.loader.btf_ext import parse_btf_ext
from offload.loader.elf_reader import read_elf
from offload.loader.maps import parse_btf_map
from offload.maps.spec import MapSpec, Pinning
from offload.uapi import MapType

from .btf_writer import BtfWriter
from .fixtures import fixture


def every_kind() -> tuple[BtfWriter, dict[str, int]]:
    w = BtfWriter()
    ids: dict[str, int] = {}
    ids["u32"] = w.int_("unsigned int", 4)
    ids["s64"] = w.int_("long", 8, signed=True)
    ids["char"] = w.int_("char", 1, signed=True)
    ids["ptr"] = w.ptr(ids["u32"])
    ids["array"] = w.array(ids["s64"], ids["u32"], 3)
    ids["struct"] = w.struct("pair", 16, [("a", ids["u32"], 0), ("b", ids["s64"], 64)])
    ids["union"] = w.struct("either", 8, [("a", ids["u32"], 0), ("b", ids["s64"], 0)],
                            union=True)
    ids["bitfields"] = w.add(BtfKind.STRUCT, "flags", 2, 4,
                             struct.pack("<III", w.name("x"), ids["u32"], 3 << 24 | 0)
                             + struct.pack("<III", w.name("y"), ids["u32"], 5 << 24 | 3),
                             kind_flag=True)
    ids["enum"] = w.add(BtfKind.ENUM, "colour", 2, 4,
                        struct.pack("<Ii", w.name("RED"), 0) + struct.pack("<Ii", w.name("BLUE"),
                                                                           -1))
    ids["enum64"] = w.add(BtfKind.ENUM64, "big", 1, 8,
                          struct.pack("<III", w.name("HUGE"), 1, 2))
    ids["fwd"] = w.add(BtfKind.FWD, "opaque")
    ids["typedef"] = w.add(BtfKind.TYPEDEF, "__u32", size_or_type=ids["u32"])
    ids["volatile"] = w.add(BtfKind.VOLATILE, size_or_type=ids["typedef"])
    ids["const"] = w.add(BtfKind.CONST, size_or_type=ids["volatile"])
    ids["restrict"] = w.add(BtfKind.RESTRICT, size_or_type=ids["ptr"])
    ids["proto"] = w.add(BtfKind.FUNC_PROTO, "", 2, ids["u32"],
                         struct.pack("<II", w.name("ctx"), ids["ptr"])
                         + struct.pack("<II", 0, ids["s64"]))
    ids["func"] = w.add(BtfKind.FUNC, "main", 1, ids["proto"])
    ids["var"] = w.add(BtfKind.VAR, "counter", 0, ids["const"], struct.pack("<I", 1))
    ids["datasec"] = w.add(BtfKind.DATASEC, ".data", 1, 4, struct.pack("<III", ids["var"], 0, 4))
    ids["float"] = w.add(BtfKind.FLOAT, "double", 0, 8)
    ids["decl_tag"] = w.add(BtfKind.DECL_TAG, "user", 0, ids["struct"], struct.pack("<i", 1))
    ids["type_tag"] = w.add(BtfKind.TYPE_TAG, "percpu", 0, ids["u32"])
    ids["tagged_ptr"] = w.ptr(ids["type_tag"])
    return w, ids


def test_every_kind_parses_with_its_fields() -> None:
    w, ids = every_kind()
    btf = parse_btf(w.blob())
    assert len(btf.types) == len(ids) + 1
    assert {btf[i].kind.name for i in ids.values()} == {k.name for k in BtfKind} - {"UNKN"}
    assert btf[ids["s64"]].int_encoding == 1 and btf[ids["s64"]].int_bits == 64
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in btf[ids["bitfields"]].members] == [
        ("x", 0, 3), ("y", 3, 5)]
    assert [(e.name, e.value) for e in btf[ids["enum"]].enumerators] == [("RED", 0), ("BLUE", -1)]
    assert btf[ids["enum64"]].enumerators[0].value == 2 << 32 | 1
    assert [(p.name, p.type_id) for p in btf[ids["proto"]].params] == [
        ("ctx", ids["ptr"]), ("", ids["s64"])]
    assert btf[ids["func"]].linkage == 1 and btf[ids["var"]].linkage == 1
    assert btf[ids["datasec"]].secinfos[0].type_id == ids["var"]
    assert btf[ids["decl_tag"]].component_idx == 1
    assert btf.find("pair", BtfKind.STRUCT) == btf[ids["struct"]]
    assert btf.resolve(ids["const"]) == btf[ids["u32"]]


@pytest.mark.parametrize(("name", "size"), [
    ("u32", 4), ("s64", 8), ("char", 1), ("ptr", 8), ("array", 24), ("struct", 16),
    ("union", 8), ("bitfields", 4), ("enum", 4), ("enum64", 8), ("typedef", 4),
    ("volatile", 4), ("const", 4), ("restrict", 8), ("var", 4), ("datasec", 4), ("float", 8),
    ("type_tag", 4), ("tagged_ptr", 8)])
def test_type_sizes(name: str, size: int) -> None:
    w, ids = every_kind()
    assert parse_btf(w.blob()).size_of(ids[name]) == size


@pytest.mark.parametrize("name", ["fwd", "proto", "func", "decl_tag"])
def test_types_without_a_size(name: str) -> None:
    w, ids = every_kind()
    with pytest.raises(LoaderError, match="has no size"):
        parse_btf(w.blob()).size_of(ids[name])
    with pytest.raises(LoaderError, match="void has no size"):
        parse_btf(w.blob()).size_of(0)


def test_typedef_loops_are_caught() -> None:
    w = BtfWriter()
    w.add(BtfKind.TYPEDEF, "a", size_or_type=2)
    w.add(BtfKind.TYPEDEF, "b", size_or_type=1)
    btf = parse_btf(w.blob())
    with pytest.raises(LoaderError, match="loop"):
        btf.size_of(1)
    with pytest.raises(LoaderError, match="loop"):
        btf.resolve(1)


def test_fixture_sizes_match_the_c_types() -> None:
    btf = load_object(fixture("xdp_lb.o")).btf
    assert btf is not None
    sizes = {name: btf.size_of(btf.find(name).id) for name in  # type: ignore[union-attr]
             ("vip_key", "service", "backend", "xdp_md", "__be32", "__u16")}
    assert sizes == {"vip_key": 8, "service": 8, "backend": 12, "xdp_md": 24, "__be32": 4,
                     "__u16": 2}
    flows = load_object(fixture("xdp_flowmark.o")).btf
    assert flows is not None
    flow = flows.find("flow", BtfKind.STRUCT)
    assert flow is not None and flows.size_of(flow.id) == 24
    assert [(m.name, m.bit_offset) for m in flow.members] == [
        ("packets", 0), ("first_seen_ns", 64), ("mark", 128), ("pad", 160)]


def test_btf_map_definitions() -> None:
    w = BtfWriter()
    u32 = w.int_("unsigned int", 4)
    index = w.int_("__ARRAY_SIZE_TYPE__", 4)

    def number(n: int) -> int:
        return w.ptr(w.array(u32, index, n))

    key = w.struct("key", 12, [("a", u32, 0)])
    members = [("type", number(MapType.HASH), 0), ("key", w.ptr(key), 64),
               ("value_size", number(40), 128), ("max_entries", number(100), 192),
               ("map_flags", number(1), 256), ("pinning", number(1), 320),
               ("numa_node", number(0), 384)]
    definition = w.struct("", 56, members)
    conflicting = w.struct("", 16, [("key", w.ptr(key), 0), ("key_size", number(4), 64)])
    unknown = w.struct("", 8, [("colour", number(1), 0)])
    btf = parse_btf(w.blob())
    assert parse_btf_map(btf, definition, "m") == MapSpec("m", MapType.HASH, 12, 40, 100, 1,
                                                          Pinning.BY_NAME)
    with pytest.raises(LoaderError, match="key_size 4 disagrees"):
        parse_btf_map(btf, conflicting, "m")
    with pytest.raises(LoaderError, match="unknown map attribute 'colour'") as info:
        parse_btf_map(btf, unknown, "m")
    assert (info.value.section, info.value.symbol) == (".maps", "m")


@pytest.mark.parametrize(("patch", "message"), [
    (lambda b: b[:10], "too short"),
    (lambda b: b"\xeb\x9f" + b[2:], "big-endian"),
    (lambda b: b"\x00\x00" + b[2:], "bad magic"),
    (lambda b: b[:2] + b"\x02" + b[3:], "version"),
    (lambda b: b[:20] + struct.pack("<I", 10**6) + b[24:], "runs past"),
])
def test_malformed_headers(patch, message: str) -> None:
    w, _ = every_kind()
    with pytest.raises(LoaderError, match=message):
        parse_btf(patch(w.blob()))


def test_dangling_type_reference() -> None:
    w = BtfWriter()
    w.ptr(7)
    with pytest.raises(LoaderError, match=r"refers to type \[7\], which does not exist"):
        parse_btf(w.blob())


def test_unknown_kind() -> None:
    w = BtfWriter()
    w.types.append(struct.pack("<III", 0, 25 << 24, 0))
    with pytest.raises(LoaderError, match="unknown kind 25"):
        parse_btf(w.blob())


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_corrupted_btf_gives_loader_errors(data: st.DataObject) -> None:
    blob = bytearray(read_elf(fixture("xdp_tailcall.o").read_bytes()).section(".BTF").data)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(blob) - 1))
        blob[position] ^= 1 << data.draw(st.integers(0, 7))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        btf = parse_btf(bytes(blob[:cut]))
    except LoaderError:
        return
    for btf_type in btf.types[1:]:
        try:
            btf.size_of(btf_type.id)
        except LoaderError:
            pass


def test_btf_ext_line_and_func_info() -> None:
    elf = read_elf(fixture("xdp_subprog.o").read_bytes())
    btf = parse_btf(elf.section(".BTF").data)
    ext = parse_btf_ext(elf.section(".BTF.ext").data, btf)
    assert set(ext.func_info) == {".text", "xdp"}
    assert [btf[r.type_id].name for r in ext.func_info[".text"]] == [
        "record", "parse_l2", "parse_l3_ttl"]
    assert ext.core_relo_count == 0
    assert all(r.file == "./src/xdp_subprog.c" for r in ext.line_info["xdp"])
