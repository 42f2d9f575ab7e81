"""The CO-RE fixture (fixtures/src/libbpf/xdp_core.c) on devices of every profile, and the
host kernel as the judge: libbpf resolves the same object against the kernel's BTF, and the
relocated instructions and what the programs compute must agree."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import struct
from collections.abc import Iterator

import pytest

from offload.backends.kernel import KernelMap, kernel_available, load_program_spec
from offload.caps import load_profile
from offload.device import build_device
from offload.isa.codec import decode
from offload.isa.disasm import slot_positions
from offload.loader import ObjectSpec, RefusalKind, load_object
from offload.loader.core import describe_relocation
from offload.loader.device_btf import device_btf
from offload.uapi import CoreReloKind, XdpAction
from service.frames import ether, ipv4, tcp, udp, v4_frame

from .fixtures import libbpf_fixture

PATH = libbpf_fixture("xdp_core")
PROFILES = ("full", "smartnic", "legacy-nic")
#: the answers slots of xdp_core.c, in order
SLOTS = ("egress_exists", "future_exists", "mtu_result_exists", "vlan_exists", "ipv6_size",
         "ctx_matches", "wide_matches", "fib_lookup_exists", "load_bytes_exists",
         "redirect_value", "iphdr_target_id", "iphdr_local_id", "payload_len_size",
         "window_offset", "daddr_offset")
#: what each device answers; the kernel answers as full does
SAME = {"future_exists": 0, "vlan_exists": 1, "ipv6_size": 40, "ctx_matches": 1,
        "wide_matches": 0, "redirect_value": 4, "iphdr_target_id": 1, "payload_len_size": 2,
        "window_offset": 14, "daddr_offset": 16}
ANSWERS = {
    "full": {**SAME, "egress_exists": 1, "mtu_result_exists": 1, "fib_lookup_exists": 1,
             "load_bytes_exists": 1},
    "smartnic": {**SAME, "egress_exists": 1, "mtu_result_exists": 1, "fib_lookup_exists": 0,
                 "load_bytes_exists": 0},
    # Linux 4.19's xdp_md lacks egress_ifindex: the local one no longer matches it
    "legacy-nic": {**SAME, "egress_exists": 0, "mtu_result_exists": 0, "fib_lookup_exists": 0,
                   "load_bytes_exists": 0, "ctx_matches": 0},
}


def for_device(profile: str) -> ObjectSpec:
    return load_object(PATH, target_btf=device_btf(load_profile(profile)))


def frame_v6(hop_limit: int, next_header: int = 17) -> bytes:
    header = struct.pack("!IHBB16s16s", 6 << 28, 8, next_header, hop_limit, bytes(16),
                         bytes(15) + b"\x01")
    return ether(header + udp(1, 2), 0x86DD)


def vlan(frame: bytes) -> bytes:
    return frame[:12] + struct.pack("!HH", 0x8100, 7) + frame[12:]


def test_the_fixture_holds_every_relocation_kind():
    obj = for_device("full")
    kinds = {r.kind for spec in obj.programs.values() for r in spec.core.relocations}
    assert kinds == set(CoreReloKind)


def test_programs_the_device_btf_cannot_serve_are_refused_alone_naming_type_and_field():
    full = for_device("full")
    assert set(full.programs) == {"xdp_core_parse", "xdp_core_bitfields", "xdp_core_queries",
                                  "xdp_core_flavors", "xdp_core_egress"}
    vxlan = full.refused["xdp_core_vxlan"]
    assert (vxlan.kind, vxlan.symbol) == (RefusalKind.CO_RE, "xdp_core_vxlan")
    assert "field_byte_offset of struct vxlanhdr.vx_vni cannot be resolved: the device's BTF " \
        "has no struct vxlanhdr" in vxlan.reason
    legacy = for_device("legacy-nic")
    assert set(legacy.refused) == {"xdp_core_vxlan", "xdp_core_egress"}
    egress = legacy.refused["xdp_core_egress"].reason
    assert egress.startswith("needs 1 CO-RE relocation the device cannot resolve (device BTF "
                             "uapi-4.19 ")
    assert "field_byte_offset of struct xdp_md.egress_ifindex cannot be resolved: struct " \
        "xdp_md has no field 'egress_ifindex'" in egress


def test_an_object_resolved_again_for_another_device():
    legacy = device_btf(load_profile("legacy-nic"))
    again = for_device("full").configured(target_btf=legacy)
    assert set(again.refused) == {"xdp_core_vxlan", "xdp_core_egress"}
    assert again.programs["xdp_core_parse"].core.digest == legacy.digest
    assert load_object(PATH).programs["xdp_core_parse"] == for_device("full").programs[
        "xdp_core_parse"]  # the default is the full profile's BTF


def test_each_program_records_the_device_btf_it_was_resolved_against():
    for profile in PROFILES:
        target = device_btf(load_profile(profile))
        for spec in for_device(profile).programs.values():
            assert (spec.core.target, spec.core.digest) == (target.name, target.digest)


@contextlib.contextmanager
def loaded(profile: str, program: str) -> Iterator:
    pair = build_device("dut", load_profile(profile), seed=1)
    objects = pair.driver.load_object(for_device(profile), programs=[program])
    pair.driver.xdp_attach(objects.programs[program])
    yield pair, objects.maps


def cells(pair, handle: int, count: int) -> list[int]:
    return [struct.unpack("<Q", pair.driver.map_lookup_elem(handle, struct.pack("<I", i)))[0]
            for i in range(count)]


@pytest.mark.parametrize("profile", PROFILES)
def test_a_profile_with_other_types_answers_the_queries_differently(profile):
    with loaded(profile, "xdp_core_queries") as (pair, maps):
        assert pair.device.receive(v4_frame("10.0.0.1", "10.0.0.2", tcp(1, 2))) == \
            XdpAction.PASS
        found = dict(zip(SLOTS, cells(pair, maps["answers"], len(SLOTS))))
    local_id = for_device(profile).btf.find("iphdr").id
    assert found == {**ANSWERS[profile], "iphdr_local_id": local_id}


FRAMES = [  # frame, verdict of xdp_core_parse
    (v4_frame("10.0.0.1", "10.0.0.2", tcp(1000, 80, flags=0x02)), XdpAction.PASS),
    (v4_frame("10.0.0.1", "10.0.0.2", tcp(1000, 23, flags=0x02)), XdpAction.DROP),
    (v4_frame("10.0.0.1", "10.0.0.2", tcp(1000, 23, flags=0x12)), XdpAction.PASS),  # SYN-ACK
    (vlan(v4_frame("10.0.0.1", "10.0.0.2", tcp(1000, 23, flags=0x02))), XdpAction.DROP),
    (ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5, 6), ttl=1)), XdpAction.DROP),
    (ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(5, 6), ttl=2)), XdpAction.PASS),
    (frame_v6(hop_limit=1), XdpAction.DROP),
    (frame_v6(hop_limit=9, next_header=58), XdpAction.PASS),
]


def test_headers_read_at_the_device_offsets_decide_the_verdicts():
    with loaded("full", "xdp_core_parse") as (pair, maps):
        assert [pair.device.receive(frame) for frame, _ in FRAMES] == [v for _, v in FRAMES]
        counts = cells(pair, maps["seen"], 256)
    assert {proto: n for proto, n in enumerate(counts) if n} == {6: 4, 17: 1, 58: 1}


def test_bitfields_read_with_byte_size_shifts_and_signedness():
    frame = v4_frame("10.0.0.1", "10.0.0.2", tcp(1, 2, flags=0x12))  # SYN-ACK, doff 5
    with loaded("full", "xdp_core_bitfields") as (pair, maps):
        assert pair.device.receive(frame) == XdpAction.PASS
        assert cells(pair, maps["fields"], 5) == [5, 4, 5, 1, 1]  # ihl, version, doff, syn, ack


def test_flavors_are_the_device_types_under_another_name():
    with loaded("full", "xdp_core_flavors") as (pair, _):
        assert pair.device.receive(ether(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2), ttl=0))) \
            == XdpAction.DROP
        assert pair.device.receive(ether(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2), ttl=3))) \
            == XdpAction.PASS


# ------------------------------------------------------------------ the kernel as the judge
AVAILABLE, REASON = kernel_available()
kernel = pytest.mark.skipif(not AVAILABLE, reason=f"the host kernel's bpf() is not usable: "
                                                  f"{REASON}")


class Libbpf:
    """The libbpf calls this judge needs, through ctypes."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)
        vp, cp, c_int = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        for name, result, args in (
                ("bpf_object__open_file", vp, [cp, vp]), ("bpf_object__load", c_int, [vp]),
                ("bpf_object__close", None, [vp]),
                ("bpf_object__next_program", vp, [vp, vp]),
                ("bpf_object__find_program_by_name", vp, [vp, cp]),
                ("bpf_object__find_map_by_name", vp, [vp, cp]),
                ("bpf_program__name", cp, [vp]),
                ("bpf_program__set_autoload", c_int, [vp, ctypes.c_bool]),
                ("bpf_program__insns", vp, [vp]), ("bpf_program__insn_cnt", ctypes.c_size_t, [vp]),
                ("bpf_program__fd", c_int, [vp]), ("bpf_map__fd", c_int, [vp]),
                ("bpf_map_lookup_elem", c_int, [c_int, vp, vp])):
            func = getattr(lib, name)
            func.restype, func.argtypes = result, args
        self.lib = lib


@pytest.fixture(scope="module")
def libbpf_object():
    """The fixture opened and loaded by libbpf, every program (the kernel has vxlanhdr)."""
    try:
        libbpf = Libbpf()
    except OSError as exc:
        pytest.skip(f"libbpf is not installed: {exc}")
    lib = libbpf.lib
    obj = lib.bpf_object__open_file(str(PATH).encode(), None)
    if not obj:
        pytest.skip(f"libbpf cannot open {PATH}")
    try:
        code = lib.bpf_object__load(obj)
        if code:
            pytest.fail(f"libbpf and the kernel refuse {PATH.name}: error {code}")
        yield libbpf, obj
    finally:
        lib.bpf_object__close(obj)


@kernel
def test_libbpf_relocates_every_instruction_as_the_device_does(libbpf_object):
    libbpf, obj = libbpf_object
    lib = libbpf.lib
    compared = expected = 0
    for name, spec in for_device("full").programs.items():
        prog = lib.bpf_object__find_program_by_name(obj, name.encode())
        raw = ctypes.string_at(lib.bpf_program__insns(prog), 8 * lib.bpf_program__insn_cnt(prog))
        theirs = list(decode(raw))
        theirs_at = dict(zip(slot_positions(theirs), theirs))
        ours_at = dict(zip(slot_positions(spec.instructions), spec.instructions))
        for relocation in spec.core.relocations:
            expected += 1
            if relocation.kind == CoreReloKind.TYPE_ID_TARGET:
                continue  # an id in the kernel's BTF, another in the device's
            assert ours_at[relocation.slot] == theirs_at[relocation.slot], \
                (name, describe_relocation(spec.core, relocation))
            compared += 1
    assert compared == expected - 1 and compared > 70


@kernel
def test_the_kernel_computes_the_answers_the_full_device_does(libbpf_object):
    from offload.backends.kernel.programs import KernelProgram
    from offload.backends.kernel.xdp_run import run_xdp
    from offload.uapi import ProgType

    libbpf, obj = libbpf_object
    lib = libbpf.lib
    prog = lib.bpf_object__find_program_by_name(obj, b"xdp_core_queries")
    program = KernelProgram(os.dup(lib.bpf_program__fd(prog)), "xdp_core_queries",
                            ProgType.XDP, ())
    with program:
        result = run_xdp(program, v4_frame("10.0.0.1", "10.0.0.2", tcp(1, 2)))
    assert result.action == XdpAction.PASS
    answers_fd = lib.bpf_map__fd(lib.bpf_object__find_map_by_name(obj, b"answers"))
    found = {}
    for index, slot in enumerate(SLOTS):
        key, value = ctypes.c_uint32(index), ctypes.c_uint64()
        assert lib.bpf_map_lookup_elem(answers_fd, ctypes.byref(key), ctypes.byref(value)) == 0
        found[slot] = value.value
    local_id = for_device("full").btf.find("iphdr").id
    assert found == {**ANSWERS["full"], "iphdr_local_id": local_id}


@kernel
def test_the_kernel_verifier_accepts_the_device_relocated_programs():
    obj = for_device("full")
    maps = {name: KernelMap.create(spec) for name, spec in obj.maps.items()}
    try:
        for name, spec in obj.programs.items():
            if name == "xdp_core_egress":
                continue  # egress_ifindex: devmap programs only, an attach type not kept
            load_program_spec(spec, maps).close()
    finally:
        for live in maps.values():
            live.close()
