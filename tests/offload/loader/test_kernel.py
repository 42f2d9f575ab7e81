"""The Linux verifier accepts every loaded fixture program, maps created from our specs.

This is the end-to-end check of the loader: the kernel must agree that the linked
instructions, call offsets, map references and global data offsets make a valid program.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.backends.kernel import KernelMap, kernel_available, load_program_spec
from offload.loader import ObjectSpec, load_object

from .fixtures import OBJECT_IDS, OBJECTS, libbpf_fixture

AVAILABLE, REASON = kernel_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"the host kernel's bpf() is not "
                                                      f"usable: {REASON}")


@pytest.mark.parametrize("path", OBJECTS, ids=OBJECT_IDS)
def test_kernel_verifier_accepts_loaded_programs(path: Path) -> None:
    load_all(load_object(path))


#: The libbpf-style fixtures with the types and sizes libbpf is given for them, and the
#: programs this loader must produce (the others are refused by the loader, not the kernel).
LIBBPF_CASES = {
    "xdp_traced": ({}, {"xdp_count_ipv4", "trace_getpid"}),
    "xdp_custom_sections": ({"prog_type": "xdp"}, {"xdp_custom", "xdp_old_style",
                                                   "xdp_standard"}),
    "xdp_sized_maps": ({"map_sizes": {"allowed_ports": 128}}, {"xdp_port_filter",
                                                               "xdp_port_hits"}),
    "xdp_flow_cache": ({}, {"xdp_flow_cache"}),
    "xdp_current_isa": ({}, {"xdp_scan_ff", "xdp_ttl_guard"}),
}


@pytest.mark.parametrize("name", sorted(LIBBPF_CASES))
def test_kernel_verifier_accepts_what_the_loader_keeps(name: str) -> None:
    options, expected = LIBBPF_CASES[name]
    obj = load_object(libbpf_fixture(name), **options)
    assert set(obj.programs) == expected
    load_all(obj)


def load_all(obj: ObjectSpec) -> None:
    maps: dict[str, KernelMap] = {}
    try:
        for name, spec in obj.maps.items():
            maps[name] = KernelMap.create(spec)
        for prog in obj.programs.values():
            load_program_spec(prog, maps).close()
    finally:
        for live in maps.values():
            live.close()
