"""BTF written by the encoder and read back by the parser; the device BTF built from the
Python declarations: its layouts, its per-profile enums and descriptions, and (where the
host has one) agreement with the running kernel's BTF."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from offload.caps import Capabilities, load_profile
from offload.caps.profiles import ProfileError, capabilities_from_mapping
from offload.loader import BtfKind, LoaderError, parse_btf
from offload.loader.btf import Btf, BtfType
from offload.loader.btf_decl import Array, Field, Int, Typedef, bitfields, emit_btf, struct, union
from offload.loader.btf_encode import btf_subset, encode_btf
from offload.loader.device_btf import DESCRIPTIONS, device_btf
from offload.uapi import MapType

from .test_btf import every_kind

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def test_every_kind_survives_encoding_and_parsing():
    w, _ = every_kind()
    parsed = parse_btf(w.blob())
    again = parse_btf(encode_btf(parsed.types))
    assert again.types == parsed.types
    assert encode_btf(again.types) == encode_btf(parsed.types)  # one string per name


def test_the_encoder_refuses_what_btf_cannot_hold():
    u32 = BtfType(1, BtfKind.INT, "u32", size=4, int_bits=32)
    with pytest.raises(LoaderError, match=r"refers to type \[7\]"):
        encode_btf([u32, BtfType(2, BtfKind.PTR, type_id=7)])
    with pytest.raises(LoaderError, match="numbered 1, 2"):
        encode_btf([dataclasses.replace(u32, id=3)])
    with pytest.raises(LoaderError, match="does not fit 32 bits"):
        encode_btf([BtfType(1, BtfKind.ENUM, "e", size=4, enumerators=(
            dataclasses.replace(parse_btf(every_kind()[0].blob()).find("colour").enumerators[0],
                                value=1 << 33),))])


def device_types(caps: Capabilities) -> Btf:
    return device_btf(caps).btf


def layout(btf: Btf, name: str) -> list[tuple[str, int, int, int]]:
    """(member, bit offset, bitfield bits, size) of a struct, anonymous members flattened."""
    t = btf.find(name, BtfKind.STRUCT)
    assert t is not None, name
    return list(_flatten(btf, t, 0))


def _flatten(btf: Btf, t: BtfType, base: int):
    for m in t.members:
        inner = btf.resolve(m.type_id)
        if not m.name and inner.kind in (BtfKind.STRUCT, BtfKind.UNION):
            yield from _flatten(btf, inner, base + m.bit_offset)
        else:
            yield m.name, base + m.bit_offset, m.bitfield_size, btf.size_of(m.type_id)


def test_device_btf_lays_out_the_uapi_headers():
    btf = device_types(load_profile("full"))
    sizes = {name: btf.size_of(btf.find(name, BtfKind.STRUCT).id) for name in (
        "xdp_md", "ethhdr", "vlan_hdr", "vlan_ethhdr", "iphdr", "ipv6hdr", "in6_addr",
        "tcphdr", "udphdr", "icmphdr", "icmp6hdr", "arphdr", "bpf_fib_lookup")}
    assert sizes == {"xdp_md": 24, "ethhdr": 14, "vlan_hdr": 4, "vlan_ethhdr": 18,
                     "iphdr": 20, "ipv6hdr": 40, "in6_addr": 16, "tcphdr": 20, "udphdr": 8,
                     "icmphdr": 8, "icmp6hdr": 8, "arphdr": 8, "bpf_fib_lookup": 64}
    assert [m[:2] for m in layout(btf, "xdp_md")] == [
        ("data", 0), ("data_end", 32), ("data_meta", 64), ("ingress_ifindex", 96),
        ("rx_queue_index", 128), ("egress_ifindex", 160)]
    ip = {m[0]: m[1:3] for m in layout(btf, "iphdr")}
    assert (ip["ihl"], ip["version"], ip["protocol"], ip["daddr"]) == \
        ((0, 4), (4, 4), (72, 0), (128, 0))
    tcp = {m[0]: m[1:3] for m in layout(btf, "tcphdr")}
    assert (tcp["ae"], tcp["doff"], tcp["syn"], tcp["cwr"], tcp["window"]) == \
        ((96, 1), (100, 4), (105, 1), (111, 1), (112, 0))
    fib = {m[0]: m[1] // 8 for m in layout(btf, "bpf_fib_lookup")}
    assert (fib["mtu_result"], fib["ifindex"], fib["ipv6_dst"], fib["tbid"], fib["dmac"]) == \
        (6, 8, 32, 48, 58)
    action = btf.find("xdp_action")
    assert [(e.name, e.value) for e in action.enumerators] == [
        ("XDP_ABORTED", 0), ("XDP_DROP", 1), ("XDP_PASS", 2), ("XDP_TX", 3),
        ("XDP_REDIRECT", 4)]


def test_the_linux_4_19_description_lacks_what_came_later_at_the_same_offsets():
    old, new = device_types(load_profile("legacy-nic")), device_types(load_profile("full"))
    assert [m[0] for m in layout(old, "xdp_md")][-1] == "rx_queue_index"
    assert {m[0] for m in layout(new, "bpf_fib_lookup")} - \
        {m[0] for m in layout(old, "bpf_fib_lookup")} == {"mtu_result", "tbid", "mark"}
    for name in ("iphdr", "ipv6hdr", "tcphdr", "bpf_fib_lookup", "vlan_ethhdr"):
        shared = {m[0]: m[1:] for m in layout(old, name)}
        for member, *where in layout(new, name):
            if member in shared and member not in ("res1",):
                assert tuple(where) == shared[member], (name, member)


def test_the_device_enums_say_what_the_profile_offers():
    full, smartnic = load_profile("full"), load_profile("smartnic")
    helpers = {e.name: e.value for e in device_types(full).find("bpf_func_id").enumerators}
    assert helpers["BPF_FUNC_fib_lookup"] == 69 and helpers["BPF_FUNC_unspec"] == 0
    smart = {e.name for e in device_types(smartnic).find("bpf_func_id").enumerators}
    assert "BPF_FUNC_fib_lookup" not in smart and "BPF_FUNC_map_lookup_elem" in smart
    maps = {e.name for e in device_types(smartnic).find("bpf_map_type").enumerators}
    assert maps == {"BPF_MAP_TYPE_UNSPEC"} | {f"BPF_MAP_TYPE_{t.name}"
                                              for t in smartnic.map_types}
    assert device_btf(full).digest != device_btf(smartnic).digest
    assert device_btf(full) == device_btf(dataclasses.replace(full, name="copy"))


def test_device_btf_is_deterministic_and_reads_back_as_written():
    for description in DESCRIPTIONS:
        caps = Capabilities("x", helpers=frozenset({1, 2}), map_types=frozenset(
            {MapType.ARRAY}), btf=description)
        built = device_btf(caps)
        assert encode_btf(built.btf.types) == built.data
        assert str(built) == f"{description} {built.digest[:12]}"


def test_profiles_name_known_descriptions_only():
    with pytest.raises(ProfileError, match="'btf' must name a device BTF description "
                                           r"\(uapi, uapi-4\.19\), not 'linux-2\.6'"):
        capabilities_from_mapping({"name": "x", "btf": "linux-2.6"})
    assert capabilities_from_mapping({"name": "x"}).btf == "uapi"
    assert load_profile("legacy-nic").btf == "uapi-4.19"


def test_declarations_follow_c_layout_rules():
    u8, u16, u32 = Int("u8", 1), Int("u16", 2), Int("u32", 4)
    types = emit_btf([
        struct("straddle", *bitfields(u8, ("a", 5), ("b", 5))),  # b moves to the next byte
        struct("aligned", Field("c", u8), Field("w", u32), Field("h", u16)),
        struct("packed", Field("c", u8), Field("w", u32), packed=True),
        union("either", Field("c", u8), Field("w", Array(u16, 3))),
        Typedef("word", u32)])
    btf = parse_btf(encode_btf(types))

    def shape(name):
        t = btf.find(name)
        return t.size, [(m.name, m.bit_offset, m.bitfield_size) for m in t.members]

    assert shape("straddle") == (2, [("a", 0, 5), ("b", 8, 5)])
    assert shape("aligned") == (12, [("c", 0, 0), ("w", 32, 0), ("h", 64, 0)])
    assert shape("packed") == (5, [("c", 0, 0), ("w", 8, 0)])
    assert shape("either") == (6, [("c", 0, 0), ("w", 0, 0)])
    assert btf.find("straddle").kind_flag and not btf.find("aligned").kind_flag
    with pytest.raises(LoaderError, match="bitfield 'x' of struct bad must be an integer"):
        emit_btf([struct("bad", Field("x", Array(u8, 2), 3))])


def test_a_subset_keeps_what_its_roots_reach_renumbered():
    btf = device_types(load_profile("full"))
    data, ids = btf_subset(btf, [btf.find("tcphdr").id])
    sub = parse_btf(data)
    assert layout(sub, "tcphdr") == layout(btf, "tcphdr")
    assert sub.find("iphdr") is None and len(sub.types) < 12
    assert sub[ids[btf.find("tcphdr").id]].name == "tcphdr"


@pytest.mark.skipif(not VMLINUX.exists(), reason="the host kernel publishes no BTF "
                                                 "(/sys/kernel/btf/vmlinux)")
def test_current_description_matches_the_running_kernel():
    """Every header struct the device describes has the kernel's members at the kernel's
    offsets (a kernel older than 6.0 would lack the addrs groups; this one has them)."""
    kernel = parse_btf(VMLINUX.read_bytes())
    ours = device_types(load_profile("full"))
    for t in ours.types:
        if t.kind != BtfKind.STRUCT or not t.name:
            continue
        theirs = kernel.find(t.name, BtfKind.STRUCT)
        assert theirs is not None, t.name
        assert kernel.size_of(theirs.id) == ours.size_of(t.id), t.name
        assert layout(kernel, t.name) == layout(ours, t.name), t.name
    for name in ("xdp_action",):
        mine = [(e.name, e.value) for e in ours.find(name).enumerators]
        assert mine == [(e.name, e.value) for e in kernel.find(name).enumerators]
