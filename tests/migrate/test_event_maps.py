"""Snapshots, restores and live migration of cpumaps, xskmaps, perf event arrays and ring
buffers: redirect entries travel like devmap entries, event maps are recreated empty (their
records are the source's: a live migration drains them into the source device's backlog
before the switchover), and a target without a map type is refused, naming it."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from migrate.checkpoint import checkpoint
from migrate.codec import decode, encode
from migrate.live import MigrationDestination, MigrationOutcome, MigrationSource
from migrate.restore import IncompatibleTarget, restore
from offload.caps import load_profile
from offload.device import build_device
from service.frames import ether, ipv4, udp

from .live.conftest import Side

LIBBPF = Path(__file__).resolve().parents[2] / "fixtures" / "xdp" / "libbpf"
FULL = load_profile("full")
FRAME = ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 53, b"query")))
PROGRAMS = {"xdp_cpu_redirect": "xdp_cpu_spread", "xdp_xsk_redirect": "xdp_sock_udp",
            "xdp_perf_sample": "xdp_perf_sample", "xdp_ringbuf_log": "xdp_ringbuf_log"}


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def source(objects=tuple(PROGRAMS)):
    """A full device with the fixtures loaded, redirect entries set, the last one attached
    and records in every event map."""
    pair = build_device("src", FULL, ncpus=2, seed=1)
    handles: dict[str, int] = {}
    for name in objects:
        loaded = pair.driver.load_object(LIBBPF / f"{name}.o", programs=[PROGRAMS[name]])
        handles |= loaded.maps | loaded.programs
        pair.driver.xdp_attach(loaded.programs[PROGRAMS[name]], replace=pair.device.attached)
        for queue in (0, 1):
            pair.device.receive(FRAME, rx_queue_index=queue)
    if "cpu_map" in handles:
        pair.driver.map_update_elem(handles["cpu_map"], u32(1), u32(64, 0))
        pair.driver.map_update_elem(handles["cpu_count"], u32(0), u32(2))
    if "xsks_map" in handles:
        pair.driver.map_update_elem(handles["xsks_map"], u32(3), u32(5))
    return pair, handles


def contents(pair) -> dict[str, list]:
    device = pair.device
    return {e.spec.name: sorted(device.backend.map(h).export_entries())
            for h, e in device.objects.maps.items() if not e.released}


def test_snapshot_round_trip_and_restore():
    pair, _ = source()
    pending = pair.device.event_streams()
    assert sum(s["pending"] for s in pending.values()) == 4  # two per event map
    snapshot = checkpoint(pair.device)
    assert decode(encode(snapshot)) == snapshot
    counts = {m.name: m.entry_count for m in snapshot.maps}
    assert counts["cpu_map"] == 1 and counts["xsks_map"] == 1
    assert counts["samples"] == counts["flow_log"] == 0  # event maps carry no records
    # checkpointing reads, it does not consume: the records are still the source's
    assert pair.device.event_streams() == pending
    target = build_device("dst", FULL, ncpus=2, seed=1)
    result = restore(decode(encode(snapshot)), target.driver)
    assert result.attached == "xdp_ringbuf_log"
    assert contents(target) == contents(pair)
    assert contents(target)["cpu_map"] == [(u32(1), u32(64, 0))]
    assert all(s["pending"] == 0 for s in target.device.event_streams().values())
    kinds = {e.spec.name: e.spec.type.name for e in target.device.objects.maps.values()}
    assert kinds["samples"] == "PERF_EVENT_ARRAY" and kinds["flow_log"] == "RINGBUF"
    target.device.receive(FRAME)  # the restored program writes to the restored ring
    assert [e.map_name for e in target.device.take_events()] == ["flow_log"]


@pytest.mark.parametrize(("profile", "objects", "refused"), [
    ("smartnic", ("xdp_cpu_redirect",), "map type CPUMAP is not offered by smartnic"),
    ("smartnic", ("xdp_ringbuf_log",), "map type RINGBUF is not offered by smartnic"),
    ("legacy-nic", ("xdp_xsk_redirect",), "map type XSKMAP is not offered by legacy-nic"),
    ("legacy-nic", ("xdp_perf_sample",), "map type PERF_EVENT_ARRAY is not offered by "
                                         "legacy-nic"),
])
def test_a_target_without_the_map_type_is_refused(profile, objects, refused):
    pair, _ = source(objects)
    target = build_device("dst", load_profile(profile), ncpus=2, seed=1)
    with pytest.raises(IncompatibleTarget) as info:
        restore(checkpoint(pair.device), target.driver)
    assert refused in str(info.value)
    assert not target.device.objects.maps and not target.device.objects.programs


def test_sockets_and_perf_output_go_to_a_smartnic():
    pair, _ = source(("xdp_xsk_redirect", "xdp_perf_sample"))
    target = build_device("dst", load_profile("smartnic"), ncpus=2, seed=1)
    result = restore(checkpoint(pair.device), target.driver)
    assert result.attached == "xdp_perf_sample"
    assert contents(target)["xsks_map"] == [(u32(3), u32(5))]


def test_live_migration_drains_the_event_streams_before_the_switchover():
    pair, _ = source()
    dest = build_device("dst", FULL, ncpus=2, seed=1)
    a, b = socket.socketpair()
    side = Side(MigrationDestination(dest).serve, b)
    side.start()
    report = MigrationSource(pair.device, downtime_target=0.05).run(a)
    side.outcome()
    assert side.error is None and report.outcome is MigrationOutcome.COMPLETED
    # the source let its maps go, and kept their records for its reader
    assert not pair.device.objects.maps
    records = pair.device.take_events()
    assert sorted((e.map_name, e.seq) for e in records) == [
        ("flow_log", 0), ("flow_log", 1), ("samples", 0), ("samples", 0)]
    # the destination starts with empty streams, its entries as the source had them
    assert all(s["pending"] == 0 for s in dest.device.event_streams().values())
    cpu_map = next(h for h, e in dest.device.objects.maps.items() if e.spec.name == "cpu_map")
    assert list(dest.device.backend.map(cpu_map).export_entries()) == [(u32(1), u32(64, 0))]
    dest.device.receive(FRAME)
    assert [e.seq for e in dest.device.take_events()] == [0]  # a new stream
