"""The guest driver resolves an object's CO-RE relocations against the device it loads into
(its reported helpers, map and program types), as libbpf resolves them against the running
kernel, not against the full profile's BTF."""

from __future__ import annotations

import struct
from pathlib import Path

from offload.caps import load_profile
from offload.device import build_device
from offload.driver.objects import device_target_btf
from offload.loader import load_object
from offload.loader.device_btf import device_btf
from offload.uapi import XdpAction
from service.frames import tcp, v4_frame

CORE = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf" / "xdp_core.o"
FIB_LOOKUP_EXISTS = 7  # the answers slot of bpf_core_enum_value_exists(..., BPF_FUNC_fib_lookup)


def _answer(pair, maps, slot: int) -> int:
    value = pair.driver.map_lookup_elem(maps["answers"], struct.pack("<I", slot))
    return struct.unpack("<Q", value)[0]


def _run_queries(profile: str, source) -> tuple[int, str]:
    """(bpf_core_enum_value_exists(BPF_FUNC_fib_lookup) as the program answered it, the
    digest of the BTF its relocations were resolved against), loaded through the driver."""
    pair = build_device("dut", load_profile(profile), seed=1)
    loaded = pair.driver.load_object(source, programs=["xdp_core_queries"])
    pair.driver.xdp_attach(loaded.programs["xdp_core_queries"])
    assert pair.device.receive(v4_frame("10.0.0.1", "10.0.0.2", tcp(1, 2))) == XdpAction.PASS
    digest = loaded.object.programs["xdp_core_queries"].core.digest
    return _answer(pair, loaded.maps, FIB_LOOKUP_EXISTS), digest


def test_an_object_file_is_resolved_against_the_device_it_loads_into():
    smartnic = device_btf(load_profile("smartnic"))
    assert smartnic.digest != device_btf(load_profile("full")).digest
    # smartnic offers no bpf_fib_lookup: the program asks the device and learns so
    assert _run_queries("smartnic", str(CORE)) == (0, smartnic.digest)
    assert _run_queries("full", str(CORE))[0] == 1


def test_an_object_left_on_the_default_btf_is_resolved_again_for_the_device():
    assert _run_queries("smartnic", load_object(CORE)) == \
        (0, device_btf(load_profile("smartnic")).digest)


def test_an_object_resolved_for_a_chosen_btf_is_kept():
    full = device_btf(load_profile("full"))
    assert _run_queries("smartnic", load_object(CORE, target_btf=full)) == (1, full.digest)


def test_the_device_btf_comes_from_what_the_device_reports():
    pair = build_device("dut", load_profile("smartnic"), seed=1)
    assert device_target_btf(pair.driver) == device_btf(load_profile("smartnic"))
