"""Checkpoint: a live device's offloaded state taken as a :class:`Snapshot`.

This is the hypervisor's view (the device side): the object table gives each program's
original bytecode and map references as the guest sent them, the backend's maps give their
contents in uAPI form. Handles become names - unique within the snapshot, since a device allows
duplicates - so a target can resolve them again; program-array and map-in-map entries become
links to those names.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Protocol

from offload.device.device import Device
from offload.device.objects import MapObject, ProgramObject
from offload.maps.values import split_percpu
from offload.program import ProgramSpec
from offload.uapi import MapType, XdpAction

from .entries import EntryChunk, MapEntries
from .snapshot import (
    LINK_MAP_TYPES,
    ActionCounter,
    AttachPoint,
    MapLink,
    MapState,
    ProgramState,
    Snapshot,
    VerifierStats,
)

CHUNK_ENTRIES = 4096


class LiveMap(Protocol):
    """A backend's map as a checkpoint reads it (``export_entries`` is used when it has one)."""

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


def unique_names(objects: Iterable[tuple[int, str]]) -> dict[int, str]:
    """Handle -> a name unique among these objects (``name#handle`` where names repeat)."""
    pairs = list(objects)
    seen: dict[str, int] = {}
    for _, name in pairs:
        seen[name] = seen.get(name, 0) + 1
    return {handle: name if name and seen[name] == 1 else f"{name or 'map'}#{handle}"
            for handle, name in pairs}


def map_entries(live: LiveMap, spec_value_size: int, key_size: int, percpu: bool,
                ncpus: int, *, stream: bool) -> MapEntries:
    """A map's contents, read in uAPI form (per-CPU values cut to one value per CPU).

    A map that exports packed chunks (``export_chunks``, every device map) gives them as
    they are: the save path does no per-entry work."""
    cpus = ncpus if percpu else 1
    export = getattr(live, "export_chunks", None)
    if export is not None:
        def packed() -> Iterator[EntryChunk]:
            for chunk in export(CHUNK_ENTRIES):
                yield EntryChunk(chunk.count, chunk.keys, chunk.values)
        if stream:
            return MapEntries.streamed(key_size, spec_value_size, packed(), cpus)
        return MapEntries(key_size, spec_value_size, cpus, tuple(packed()))
    source = getattr(live, "export_entries", None) or live.items

    def chunks() -> Iterator[EntryChunk]:
        keys, values, count = bytearray(), bytearray(), 0
        for key, value in source():
            keys += key
            if percpu:
                values += b"".join(split_percpu(value, spec_value_size, ncpus))
            else:
                values += value
            count += 1
            if count == CHUNK_ENTRIES:
                yield EntryChunk(count, bytes(keys), bytes(values))
                keys, values, count = bytearray(), bytearray(), 0
        if count:
            yield EntryChunk(count, bytes(keys), bytes(values))

    if stream:
        return MapEntries.streamed(key_size, spec_value_size, chunks(), cpus)
    return MapEntries(key_size, spec_value_size, cpus, tuple(chunks()))


def _links(live: LiveMap, names: dict[int, str]) -> tuple[MapLink, ...]:
    """Program-array and map-in-map entries: the ids a lookup reports are device handles."""
    source = getattr(live, "export_entries", None) or live.items
    links = []
    for key, value in source():
        (target,) = struct.unpack("<I", value[:4])
        if target in names:
            links.append(MapLink(key, names[target]))
    return tuple(links)


def _map_state(device: Device, entry: MapObject, names: dict[int, str],
               program_names: dict[int, str], *, stream: bool) -> MapState:
    live = device.backend.map(entry.handle)
    spec = replace(entry.spec, name=names[entry.handle], contents=(), frozen=False)
    if spec.type in LINK_MAP_TYPES:
        targets = program_names if spec.type == MapType.PROG_ARRAY else names
        return MapState(spec, links=_links(live, targets),
                        frozen=bool(getattr(live, "frozen", False)))
    ncpus = getattr(live, "ncpus", 1)
    entries = map_entries(live, spec.value_size, spec.key_size, spec.type.is_percpu, ncpus,
                          stream=stream)
    return MapState(spec, entries=entries, frozen=bool(getattr(live, "frozen", False)))


def _program_state(device: Device, program: ProgramObject, map_names: dict[int, str],
                   name: str) -> ProgramState:
    spec = ProgramSpec(name, program.prog_type, program.instructions, program.license,
                       flags=program.flags, map_refs=program.map_references(map_names),
                       functions=program.functions,
                       expected_attach_type=program.expected_attach_type)
    attach = AttachPoint(device.name) if device.attached == program.handle else None
    report = program.report
    counters = program.counters.fields()
    per_action = (
        (XdpAction.ABORTED, counters["aborted"]), (XdpAction.DROP, counters["drop"]),
        (XdpAction.PASS, counters["pass_"]), (XdpAction.TX, counters["tx"]),
        (XdpAction.REDIRECT, counters["redirect"]))
    return ProgramState(spec, attach,
                        VerifierStats(report.insns_processed, report.states, report.peak_states),
                        tuple(ActionCounter(action, packets) for action, packets in per_action
                              if packets))


def checkpoint(device: Device, *, stream: bool = False, samples: int = 0) -> Snapshot:
    """The device's offloaded state now. With ``stream``, map contents are read while the
    snapshot is written (one pass, no full copy in memory). ``samples``: up to that many of
    the frames the device's sample ring holds (``Device.sample``), newest last."""
    map_names = unique_names((h, m.spec.name) for h, m in device.objects.maps.items())
    program_names = unique_names((h, p.name) for h, p in device.objects.programs.items())
    maps = tuple(_map_state(device, entry, map_names, program_names, stream=stream)
                 for entry in device.objects.maps.values())
    programs = tuple(_program_state(device, program, map_names, program_names[handle])
                     for handle, program in device.objects.programs.items())
    counters = tuple(device.ports.as_dict().items())
    sampled = device.sampler.recent(samples) if device.sampler is not None and samples else ()
    return Snapshot(device.name, device.caps, device.transport.negotiated or 0, programs,
                    maps, counters, cpus=getattr(device.backend, "ncpus", 1), samples=sampled)
