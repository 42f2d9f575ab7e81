"""bpf_spin_lock and bpf_trace_vprintk in a libbpf object (fixtures/src/libbpf/xdp_spin_lock.c):
the loader finds each value's lock in its BTF, both programs verify with about the kernel's
processed instructions, and on both engines the meters count under their locks, user space
never sees or sets a lock word, and bpf_printk with five arguments reaches the device log.
Refusals of misused locks are in the policy table (tests/offload/verifier)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from offload.backends.kernel import KernelBackend, kernel_available
from offload.caps import load_profile
from offload.device import build_device
from offload.errors import ErrnoError
from offload.loader import load_object
from offload.program import resolve_map_references
from offload.uapi import UpdateFlags, XdpAction
from offload.verifier import verify
from service.frames import ether, ipv4, udp

from .libbpf_pair import pair  # noqa: F401 (the fixture)

OBJECT = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf" / \
    "xdp_spin_lock.o"
FRAME = ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 53, b"query")))
SOURCE = bytes([10, 0, 0, 1])
#: processed instructions of Linux 6.18 (bpf_prog_info.verified_insns, root)
KERNEL_PROCESSED = {"xdp_flow_meter": 257, "xdp_trace_flow": 88}
KERNEL, WHY = kernel_available()


def meter(raw: bytes) -> tuple[int, int, int, int, int]:
    """struct meter: packets, lock, largest, bytes, budget."""
    return struct.unpack("<QIIQQ", raw)


def test_the_loader_finds_each_lock_in_the_value_btf():
    obj = load_object(OBJECT)
    assert obj.maps["meters"].spin_lock_off == 8
    assert obj.maps["totals"].spin_lock_off == 0


@pytest.mark.parametrize("program", sorted(KERNEL_PROCESSED))
def test_both_programs_verify_near_the_kernel(program):
    obj = load_object(OBJECT)
    spec = obj.programs[program]
    handles = {name: n for n, name in enumerate(obj.maps, start=1)}
    insns = resolve_map_references(spec.instructions, spec.map_refs, handles, program=program)
    stats = verify(insns, caps=load_profile("full"),
                   maps={handles[n]: s for n, s in obj.maps.items()}, license="GPL")
    kernel = KERNEL_PROCESSED[program]
    assert kernel // 2 <= stats.insns_processed <= kernel * 2


@pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
def test_the_kernel_backend_creates_the_lock_maps_and_loads_both():
    caps = load_profile("full")
    pair = build_device("host", caps, backend=KernelBackend(caps, name="host"))
    loaded = pair.driver.load_object(OBJECT)
    assert set(loaded.programs) == set(KERNEL_PROCESSED)


def test_meters_count_under_their_locks(pair):
    device, driver = pair.device, pair.driver
    loaded = driver.load_object(OBJECT, programs=["xdp_flow_meter"])
    driver.xdp_attach(loaded.programs["xdp_flow_meter"])
    meters, totals = loaded.maps["meters"], loaded.maps["totals"]
    assert [device.receive(FRAME) for _ in range(3)] == [XdpAction.PASS] * 3
    packets, lock, largest, total_bytes, budget = meter(
        driver.map_lookup_elem(meters, SOURCE, 32))
    assert (packets, lock, largest, total_bytes, budget) == (3, 0, len(FRAME),
                                                             3 * len(FRAME), 0)
    sources, tpackets = struct.unpack_from("<IIQ", driver.map_lookup_elem(totals, bytes(4),
                                                                        24))[1:]
    assert (sources, tpackets) == (1, 3)
    # a budget user space sets: the lock word it writes is not stored (the kernel skips it)
    driver.map_update_elem(meters, SOURCE, struct.pack("<QIIQQ", 3, 0xFFFFFFFF, 0,
                                                        3 * len(FRAME), 4 * len(FRAME)),
                           UpdateFlags.F_LOCK)
    assert device.receive(FRAME) == XdpAction.PASS  # the fourth frame fits the budget
    assert device.receive(FRAME) == XdpAction.DROP  # the fifth does not
    assert meter(driver.map_lookup_elem(meters, SOURCE, 32))[:2] == (4, 0)
    live = pair.device.backend.map(meters)
    assert live.export_entry(SOURCE)[1][8:12] == bytes(4)  # unlocked between runs


def test_bpf_f_lock_needs_a_lock_in_the_value(pair):
    driver = pair.driver
    loaded = driver.load_object(OBJECT, programs=["xdp_flow_meter"])
    live = pair.device.backend.map(loaded.maps["meters"])
    live.update(SOURCE, bytes(32), UpdateFlags.F_LOCK | UpdateFlags.NOEXIST)
    with pytest.raises(ErrnoError, match="EEXIST"):
        live.update(SOURCE, bytes(32), UpdateFlags.F_LOCK | UpdateFlags.NOEXIST)
    from offload.maps import create_map
    from offload.maps.spec import MapSpec
    from offload.uapi import MapType
    plain = create_map(MapSpec("plain", MapType.HASH, 4, 8, 4))
    with pytest.raises(ErrnoError, match="BPF_F_LOCK needs a bpf_spin_lock"):
        plain.update(bytes(4), bytes(8), UpdateFlags.F_LOCK)


def test_bpf_printk_with_five_arguments_reaches_the_device_log(pair):
    device, driver = pair.device, pair.driver
    loaded = driver.load_object(OBJECT, programs=["xdp_trace_flow"])
    driver.xdp_attach(loaded.programs["xdp_trace_flow"])
    assert device.receive(FRAME) == XdpAction.PASS
    line = device.backend.trace[-1]
    assert line.endswith(f"flow a000001 -> a000002 proto 17 ttl 64 len {len(FRAME)}"), line
