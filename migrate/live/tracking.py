"""The source device as a migration sees it: a streamed full copy, what changed per round,
deltas, counters at the cut, and release after the destination committed.

Maps report what changed in columns (``take_dirty_chunk``: the changed elements' current
entries packed, from a bit per slot, and the keys deleted), so a round moves slices, not one
lookup per key; program arrays and maps of maps, whose values must be translated into names,
report keys.

Every touch of the device happens under ``lock``, the lock the caller's traffic thread holds
around ``device.receive``; it is taken per chunk (at most ``CHUNK`` entries), never across a
socket write, so traffic keeps flowing between chunks.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from offload.device.device import Device
from offload.maps.base import Chunk
from offload.maps.values import split_percpu
from offload.uapi import MapType

from ..checkpoint import checkpoint, unique_names
from ..entries import EntryChunk, MapEntries
from ..snapshot import LINK_MAP_TYPES, Snapshot
from .errors import MigrationError
from .messages import COUNTER_FIELDS, Delta

CHUNK = 4096


def _locked(chunks: Iterable[EntryChunk], lock: threading.Lock) -> Iterator[EntryChunk]:
    it = iter(chunks)
    while True:
        with lock:
            chunk = next(it, None)
        if chunk is None:
            return
        yield chunk


@dataclass(frozen=True, slots=True)
class Dirty:
    """What changed in one map over one take: the current entries of changed elements
    (``chunk``, packed) and the deleted keys no element holds now (``gone``, packed); or, for
    maps of links, the changed ``keys``."""

    chunk: Chunk | None = None
    gone: bytes = b""
    keys: frozenset[bytes] = frozenset()
    key_size: int = 0

    @property
    def count(self) -> int:
        gone = len(self.gone) // self.key_size if self.key_size else 0
        return len(self.keys) + gone + (self.chunk.count if self.chunk is not None else 0)


DirtyMaps = dict[int, list[Dirty]]


class SourceState:
    def __init__(self, device: Device, lock: threading.Lock) -> None:
        self.device = device
        self.lock = lock
        with lock:
            objects = device.objects
            self.map_names = unique_names((h, m.spec.name) for h, m in objects.maps.items())
            self.program_names = unique_names((h, p.name) for h, p in objects.programs.items())
            self.handles = (frozenset(objects.maps), frozenset(objects.programs))
            self.live = {h: device.backend.map(h) for h in objects.maps}
            for handle, live in self.live.items():
                if not hasattr(live, "track_dirty"):
                    raise MigrationError(
                        f"map {self.map_names[handle]!r} on the {device.backend.name} backend "
                        f"cannot track changed entries, which live migration needs; save and "
                        f"restore a snapshot instead.")
            self._enabled = [h for h, live in self.live.items() if not live.tracking_dirty]
            for handle in self._enabled:
                self.live[handle].track_dirty(True)
            for live in self.live.values():
                live.take_dirty()  # changes from now on: everything before is in the copy
        self.ncpus = int(getattr(device.backend, "ncpus", 1))

    # ------------------------------------------------------------- full copy
    def snapshot(self, samples: int = 0) -> Snapshot:
        """The state with map contents read chunk by chunk under the lock while it is sent;
        ``samples``: up to that many of the frames the device's sample ring holds."""
        with self.lock:
            snap = checkpoint(self.device, stream=True, samples=samples)
        maps = []
        for state in snap.maps:
            if state.entries is not None and not state.entries.materialised:
                e = state.entries
                state = replace(state, entries=MapEntries(e.key_size, e.value_size, e.cpus,
                                                          _locked(e.chunks, self.lock)))
            maps.append(state)
        return replace(snap, maps=tuple(maps))

    # ------------------------------------------------------------- rounds
    def take_dirty(self) -> DirtyMaps:
        """What changed in each map since the last take (starts the next round)."""
        out: DirtyMaps = {}
        with self.lock:
            for handle, live in self.live.items():
                spec = self.device.objects.maps[handle].spec
                if spec.type in LINK_MAP_TYPES:
                    out[handle] = [Dirty(keys=frozenset(live.take_dirty()))]
                else:
                    chunk, gone = live.take_dirty_chunk()
                    out[handle] = [Dirty(chunk, gone, key_size=spec.key_size)]
        return out

    @staticmethod
    def count(dirty: DirtyMaps) -> int:
        return sum(d.count for items in dirty.values() for d in items)

    def deltas(self, dirty: DirtyMaps, round_no: int) -> Iterator[Delta]:
        """What changed, in deltas of at most CHUNK entries: packed entries sliced as they
        are, links read now (the current target of each key, or its absence)."""
        for handle, items in dirty.items():
            for item in items:
                if item.keys:
                    ordered = sorted(item.keys)
                    for start in range(0, len(ordered), CHUNK):
                        with self.lock:
                            delta = self._delta(handle, ordered[start:start + CHUNK], round_no)
                        yield delta
                else:
                    yield from self._packed(handle, item, round_no)

    def _packed(self, handle: int, item: Dirty, round_no: int) -> Iterator[Delta]:
        name = self.map_names[handle]
        ks = item.key_size
        if item.gone:
            for start in range(0, len(item.gone), CHUNK * ks):
                yield Delta(round_no, name, 0, b"", b"", item.gone[start:start + CHUNK * ks])
        chunk = item.chunk
        if chunk is None or not chunk.count:
            return
        vs = len(chunk.values) // chunk.count
        for start in range(0, chunk.count, CHUNK):
            n = min(CHUNK, chunk.count - start)
            yield Delta(round_no, name, n, chunk.keys[start * ks:(start + n) * ks],
                        chunk.values[start * vs:(start + n) * vs], b"")

    def _delta(self, handle: int, keys: list[bytes], round_no: int) -> Delta:
        live = self.live[handle]
        spec = self.device.objects.maps[handle].spec
        links = spec.type in LINK_MAP_TYPES
        names = self.program_names if spec.type == MapType.PROG_ARRAY else self.map_names
        present, values, gone = bytearray(), bytearray(), bytearray()
        targets: list[str] = []
        for key in keys:
            found = live.export_entry(key)
            if found is None:
                gone += key
                continue
            if links:
                target = names.get(struct.unpack_from("<I", found[1])[0])
                if target is None:
                    gone += key
                    continue
                present += found[0]
                targets.append(target)
                continue
            present += found[0]
            if spec.type.is_percpu:
                values += b"".join(split_percpu(found[1], spec.value_size, self.ncpus))
            else:
                values += found[1]
        count = len(present) // spec.key_size if spec.key_size else len(targets)
        return Delta(round_no, self.map_names[handle], count, bytes(present), bytes(values),
                     bytes(gone), tuple(targets) if links else None)

    # ------------------------------------------------------------- the cut
    def check_unchanged(self) -> None:
        objects = self.device.objects
        if (frozenset(objects.maps), frozenset(objects.programs)) != self.handles:
            raise MigrationError("maps or programs were created or freed on the source during "
                                 "the migration; start it again once the guest is done.")

    def counters(self) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], tuple[tuple[str, int], ...]]:
        programs = []
        for handle, program in self.device.objects.programs.items():
            counts = program.counters.fields()
            programs.append((self.program_names[handle],
                             tuple(counts[name] for name in COUNTER_FIELDS)))
        return tuple(programs), tuple(self.device.ports.as_dict().items())

    # ------------------------------------------------------------- the end
    def stop(self) -> None:
        """Dirty tracking as it was before (the migration failed; the device runs on)."""
        for handle in self._enabled:
            live = self.live.get(handle)
            if live is not None:
                live.track_dirty(False)

    def release(self) -> None:
        """The destination runs the state: detach and free every program and map here."""
        device = self.device
        device.attach(None)
        for entry in device.objects.maps.values():
            entry.released = True
        for program in list(device.objects.programs.values()):
            program.unloaded = True
            device.release_program(program)
        device.collect_released()
