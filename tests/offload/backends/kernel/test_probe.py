"""The capability probe: helpers, map types, ISA version and program types of the host."""

from __future__ import annotations

import errno
import struct

import pytest

from offload.backends.kernel import host_capabilities, host_probe, load_program, probe_kernel
from offload.backends.kernel import probe as probe_module
from offload.caps import Capabilities
from offload.errors import ErrnoError
from offload.isa import assemble
from offload.isa.versions import program_version
from offload.uapi import MapType, ProgType

kernel = pytest.mark.usefixtures("kernel")

# Helpers every kernel with XDP test runs (4.12+) and adjust_tail (4.18) lets XDP call.
COMMON_XDP_HELPERS = {1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem",
                      3: "bpf_map_delete_elem", 23: "bpf_redirect", 44: "bpf_xdp_adjust_head",
                      51: "bpf_redirect_map", 65: "bpf_xdp_adjust_tail"}


def test_minimal_btf_layout() -> None:
    blob = probe_module.minimal_btf()
    magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = \
        struct.unpack_from("<HBBIIIII", blob)
    assert (magic, version, flags, hdr_len) == (0xEB9F, 1, 0, 24)
    assert len(blob) == hdr_len + str_off + str_len and type_off == 0 and type_len == 16
    assert blob[hdr_len + str_off:] == b"\0int\0"


def test_isa_feature_programs_need_the_version_they_claim() -> None:
    for feature, (level, text) in probe_module.ISA_FEATURES.items():
        assert program_version(assemble(text)) == level, feature


@kernel
def test_the_profile_is_named_host_kernel_and_cached() -> None:
    caps = host_capabilities()
    assert isinstance(caps, Capabilities) and caps.name == "host-kernel"
    assert host_probe() is host_probe()
    assert caps.description.startswith("the host kernel, Linux ")


@kernel
def test_xdp_arrays_hashes_and_common_helpers_are_found() -> None:
    found = host_probe()
    caps = found.capabilities
    assert ProgType.XDP in caps.prog_types
    assert {MapType.ARRAY, MapType.HASH, MapType.PERCPU_ARRAY} <= caps.map_types
    for helper_id, name in COMMON_XDP_HELPERS.items():
        assert helper_id in caps.helpers and found.helpers[helper_id] == name
    assert 4 not in caps.helpers  # bpf_probe_read: "program of this type cannot use helper"
    assert 9 not in caps.helpers  # bpf_skb_store_bytes is for socket buffers only
    assert max(caps.helpers) < found.helper_id_limit


@kernel
def test_the_isa_version_agrees_with_the_features() -> None:
    found = host_probe()
    assert found.isa_features["base"] and 1 <= found.isa_version <= 4
    for feature, ok in found.isa_features.items():
        level = probe_module.ISA_FEATURES[feature][0]
        if level <= found.isa_version:
            assert ok, feature
    if found.isa_version >= 4:
        with load_program(assemble("mov %r1, -1\nmovsx832 %r0, %r1\nmov %r0, 2\nexit")):
            pass


@kernel
def test_single_probes() -> None:
    assert probe_module.probe_helper(5) == (True, "bpf_ktime_get_ns")
    assert probe_module.probe_helper(probe_module.MAX_HELPER_ID + 7)[0] is None
    assert probe_module.probe_map_type(MapType.ARRAY) is None
    assert probe_module.probe_prog_type(ProgType.XDP) is None
    assert probe_module.probe_prog_type(ProgType.CGROUP_SOCK_ADDR) is None  # attach type set


@kernel
def test_refusals_are_reported_per_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(probe_module.MAP_PROBES, MapType.QUEUE,
                        probe_module.MapProbe(key_size=4))  # queues take no key: EINVAL
    found = probe_kernel()
    assert MapType.QUEUE not in found.map_types
    assert found.refusals["map QUEUE"].startswith("EINVAL: BPF_MAP_CREATE of map 'probe_22'")


def test_probing_without_bpf_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probe_module, "kernel_available",
                        lambda: (False, "bpf() is not usable on Linux 9.9: EPERM: ..."))
    with pytest.raises(ErrnoError) as info:
        probe_kernel()
    assert info.value.errno == errno.EPERM and "cannot probe the host kernel" in str(info.value)
