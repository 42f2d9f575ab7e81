"""A restore stopped at any step leaves the target empty; one that runs through leaves it fully
restored. Faults are injected through restore()'s step hook at every command that changes the
target: a refusal, an interrupt, a bug - from a snapshot in memory and from one whose contents
stay in a spool file (what a daemon restores), including that file cut after it was checked.
And a snapshot whose maps need more memory than the
target has is refused by the plan, naming both numbers, before anything is created."""

from __future__ import annotations

import errno
import io
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from migrate.checkpoint import checkpoint
from migrate.codec import decode, encode, index_snapshot
from migrate.compat import Outcome, plan
from migrate.entries import MapEntries
from migrate.restore import COLUMN_BATCH, IncompatibleTarget, RestoreError, restore
from migrate.snapshot import MapState, Snapshot
from offload.caps import load_profile
from offload.device import build_device
from offload.errors import ErrnoError
from offload.loader import load_object
from offload.maps.memory import map_memory
from offload.maps.spec import MapSpec
from offload.uapi import MapType

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xdp"
FULL = load_profile("full")
BLOCKED = COLUMN_BATCH + 500  # more than one batch of updates


def _source_snapshot() -> Snapshot:
    """A device with a program array, per-CPU maps, a frozen .rodata, a map filled in two
    batches and an attached program."""
    pair = build_device("source", FULL, seed=7, ncpus=2)
    handles = {}
    maps = {}
    for fixture in ("xdp_tailcall.o", "xdp_config.o"):
        obj = load_object(FIXTURES / fixture)
        created = {name: pair.driver.map_create(spec) for name, spec in obj.maps.items()}
        maps.update(created)
        handles.update({name: pair.driver.prog_load(spec, maps=created)
                        for name, spec in obj.programs.items()})
    for index, name in enumerate(["xdp_handle_tcp", "xdp_handle_udp", "xdp_handle_icmp"]):
        pair.driver.map_update_elem(maps["jump_table"], struct.pack("<I", index),
                                    struct.pack("<I", handles[name]))
    pair.driver.map_update_batch(maps["udp_blocked"],
                                 [(struct.pack("<H", port), b"\x01") for port in range(1)])
    pair.driver.xdp_attach(handles["xdp_dispatch"])
    snapshot = decode(encode(checkpoint(pair.device)))
    # udp_blocked holds 128 at most: widen it so its contents take two batches
    widened = []
    for state in snapshot.maps:
        if state.name == "udp_blocked":
            spec = replace(state.spec, max_entries=2 * COLUMN_BATCH)
            pairs = [(struct.pack("<H", port), b"\x01") for port in range(BLOCKED)]
            state = MapState(spec, MapEntries.from_pairs(2, 1, pairs))
        widened.append(state)
    return replace(snapshot, maps=tuple(widened))


SNAPSHOT = _source_snapshot()


def _state(pair) -> tuple:
    """What a target holds: maps with contents, programs, the attached one, memory charged."""
    device = pair.device
    maps = []
    for handle, entry in device.objects.maps.items():
        items = sorted(pair.driver.map_items(handle))
        if entry.spec.type == MapType.PROG_ARRAY:  # handles differ per device: compare names
            items = [(key, device.objects.programs[struct.unpack("<I", value)[0]].name)
                     for key, value in items]
        maps.append((entry.spec.name, items))
    maps.sort()
    programs = sorted(p.name for p in device.objects.programs.values())
    attached = device.objects.programs[device.attached].name if device.attached else None
    return maps, programs, attached, device.memory_used


def _empty(pair) -> bool:
    device = pair.device
    return (not device.objects.maps and not device.objects.programs and device.attached is None
            and device.memory_used == 0 and not device.backend.maps
            and not device.backend.programs)


class Injected(Exception):
    """A bug somewhere in the middle of a restore."""


FAULTS = (lambda step: ErrnoError(errno.EIO, f"the device failed at {step}"),
          lambda step: KeyboardInterrupt(step),
          lambda step: Injected(step))


def _kept(where: str) -> Snapshot:
    """SNAPSHOT decoded into memory, or indexed with its contents left in a spool file."""
    return SNAPSHOT if where == "memory" else index_snapshot(io.BytesIO(encode(SNAPSHOT)))


@pytest.mark.parametrize("where", ["memory", "spool"])
def test_a_restore_stopped_at_any_step_leaves_the_target_empty(where):
    snapshot = _kept(where)
    steps: list[str] = []
    reference = build_device("reference", FULL, seed=7, ncpus=2)
    restore(snapshot, reference.driver, step=steps.append)
    full = _state(reference)
    assert full[0] and full[1] and full[2] == "xdp_dispatch"
    assert sum(s.startswith("fill map udp_blocked") for s in steps) == 2
    assert any(s.startswith("link map") for s in steps) and \
        any(s.startswith("freeze map") for s in steps) and steps[-1].startswith("attach")
    for index, at in enumerate(steps):
        fault = FAULTS[index % len(FAULTS)](at)
        target = build_device("target", FULL, seed=7, ncpus=2)
        seen: list[str] = []

        def hook(step: str, index: int = index, fault: BaseException = fault,
                 seen: list[str] = seen) -> None:
            seen.append(step)
            if len(seen) == index + 1:
                raise fault

        expected = RestoreError if isinstance(fault, ErrnoError) else type(fault)
        with pytest.raises(expected):
            restore(snapshot, target.driver, step=hook)
        assert seen == steps[:index + 1]  # the same steps, in the same order, up to the fault
        assert _empty(target), f"a fault at step {index} ({at!r}) left objects behind"
        # and the target is usable afterwards: the same restore then runs through
        restore(snapshot, target.driver)
        assert _state(target) == full, f"after a fault at {at!r}"


def test_a_spool_cut_after_it_was_checked_leaves_the_target_empty():
    """The contents are read again while maps fill: a file that no longer holds them stops
    the restore mid-map, and everything created so far is undone."""
    spool = io.BytesIO(encode(SNAPSHOT))
    snapshot = index_snapshot(spool)
    entries = snapshot.map("udp_blocked").entries
    assert entries is not None and len(entries) == BLOCKED
    chunks = iter(entries.chunks)
    next(chunks)  # the first of the map's two records: the file is cut right after it
    spool.truncate(spool.tell())
    target = build_device("target", FULL, seed=7, ncpus=2)
    steps: list[str] = []
    with pytest.raises(RestoreError, match="udp_blocked"):
        restore(snapshot, target.driver, step=steps.append)
    assert steps[-1] == "fill map udp_blocked from entry 0", steps  # its second chunk is gone
    assert _empty(target)


def _big_array_snapshot(entries: int, value_size: int) -> Snapshot:
    spec = MapSpec("huge", MapType.ARRAY, 4, value_size, entries)
    pairs = [(struct.pack("<I", 3), bytes(range(8)) * (value_size // 8))]
    return Snapshot("source", FULL, 0, (), (MapState(spec, MapEntries.from_pairs(
        4, value_size, pairs)),))


def test_a_snapshot_declaring_more_memory_than_the_target_has_is_refused_first():
    # the operator's case: a few KB of file declaring a 2^24 x 64 KiB array (1 TiB)
    snapshot = _big_array_snapshot(1 << 24, 64 << 10)
    assert len(encode(snapshot)) < 1 << 17
    need = map_memory(snapshot.maps[0].spec)
    the_plan = plan(snapshot, FULL)
    assert not the_plan.ok
    device = the_plan.report("device", "source")
    (finding,) = [f for f in device.findings if f.code == "memory"]
    assert finding.outcome == Outcome.INCOMPATIBLE
    assert f"{need:,} bytes" in finding.reason and f"{FULL.memory:,} bytes" in finding.reason
    target = build_device("target", FULL)
    with pytest.raises(IncompatibleTarget, match="device memory"):
        restore(snapshot, target.driver)
    assert _empty(target)


def test_the_plan_charges_every_map_and_per_cpu_maps_per_target_cpu():
    small = replace(FULL, memory=256 << 10)
    spec = MapSpec("pc", MapType.PERCPU_ARRAY, 4, 64, 1024)
    snapshot = Snapshot("source", FULL, 0, (), (MapState(spec, MapEntries(4, 64, 2)),), cpus=2)
    assert map_memory(spec, 8) > small.memory >= map_memory(spec, 2)
    assert plan(snapshot, small).ok  # on the snapshot's own 2 CPUs it fits
    assert not plan(snapshot, small, ncpus=8).ok  # on 8 it does not
    target = build_device("eight", small, ncpus=8)
    with pytest.raises(IncompatibleTarget, match="device memory"):
        restore(snapshot, target.driver)  # restore asks the target for its CPUs
    assert _empty(target)
    two = _big_array_snapshot(256, 512)
    one = two.maps[0]
    both = replace(two, maps=(one, MapState(replace(one.spec, name="huge2"), one.entries)))
    assert plan(two, small).ok and not plan(both, small).ok  # together they do not fit


def test_a_target_already_using_its_memory_refuses_on_map_create_and_is_left_as_it_was():
    snapshot = _big_array_snapshot(1024, 512)
    need = map_memory(snapshot.maps[0].spec)
    target = build_device("busy", replace(FULL, memory=need + 100))
    target.driver.map_create(MapSpec("resident", MapType.ARRAY, 4, 8, 64))
    before = _state(target)
    with pytest.raises(RestoreError, match="ENOMEM"):
        restore(snapshot, target.driver)
    assert _state(target) == before
