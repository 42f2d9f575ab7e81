"""The destination device as a migration sees it: the full copy restored through its driver
(not yet attached), deltas applied through the same control path, the commit, the rollback.

Restoring before the pause, and leaving only the attach and the last delta for after it, is
what keeps the downtime independent of the maps' size. Maps are restored unfrozen so deltas can
still be written through the uAPI; the ones the source had frozen are frozen at the commit.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from offload.device import DevicePair
from offload.errors import ErrnoError, OffloadError
from offload.maps.spec import MapSpec
from offload.maps.values import SlotValues, join_percpu
from offload.uapi import MapType

from ..restore import Progress, RestoreResult, restore, target_cpus
from ..snapshot import LINK_MAP_TYPES, Snapshot
from .errors import ProtocolViolation
from .messages import COUNTER_FIELDS, Delta, Final


class TargetState:
    def __init__(self, pair: DevicePair) -> None:
        self.pair = pair
        self.driver = pair.driver
        objects = pair.device.objects
        self._before = (set(objects.maps), set(objects.programs))
        self.result: RestoreResult | None = None
        self.snapshot: Snapshot | None = None
        self.attach_name: str | None = None
        self.frozen: list[str] = []
        self.cpus = 1
        self.committed = False

    def restore(self, snapshot: Snapshot, *, allow_fallback: bool,
                progress: Progress | None = None) -> RestoreResult:
        """All or nothing, as :func:`migrate.restore.restore` (it raises after undoing)."""
        self.snapshot = snapshot
        self.attach_name = next((p.name for p in snapshot.programs if p.attach), None)
        self.frozen = [m.name for m in snapshot.maps if m.frozen]
        staged = replace(snapshot,
                         programs=tuple(replace(p, attach=None) for p in snapshot.programs),
                         maps=tuple(replace(m, frozen=False) for m in snapshot.maps))
        self.result = restore(staged, self.driver, allow_fallback=allow_fallback,
                              progress=progress)
        if any(m.spec.type.is_percpu for m in snapshot.maps):
            self.cpus = target_cpus(self.driver)
        return self.result

    def apply(self, delta: Delta) -> int:
        """Write one delta into the restored maps; its entry count (also for maps left in
        the guest by a fallback, whose deltas are dropped)."""
        assert self.result is not None and self.snapshot is not None
        try:
            state = self.snapshot.map(delta.map)
        except KeyError:
            raise ProtocolViolation(f"a delta names map {delta.map!r}, which the snapshot does "
                                    f"not hold.") from None
        handle = self.result.maps.get(delta.map)
        if handle is None:
            return delta.count
        spec = state.spec
        ks = spec.key_size
        links = spec.type in LINK_MAP_TYPES
        per_cpu = self.snapshot.cpus if spec.type.is_percpu else 1
        vsize = 0 if links else spec.value_size * per_cpu
        if len(delta.keys) != delta.count * ks or len(delta.values) != delta.count * vsize \
                or (ks and len(delta.gone) % ks) or (links != (delta.targets is not None)):
            raise ProtocolViolation(f"a delta of map {delta.map!r} does not fit its "
                                    f"{ks}-byte keys and {spec.value_size}-byte values.")
        if not links and delta.count and (not spec.type.is_percpu or per_cpu == self.cpus):
            # the packed entries as they came: one batched update of keys and values
            layout = SlotValues(spec.type.is_percpu, spec.value_size, self.cpus)
            self._update_columns(handle, delta.count, delta.keys,
                                 layout.uapi_blob(delta.values, delta.count), layout.uapi_size)
        else:
            self._update_pairs(handle, spec, delta, per_cpu, vsize)
        for i in range(0, len(delta.gone), ks or 1):
            try:
                self.driver.map_delete_elem(handle, delta.gone[i:i + ks])
            except ErrnoError as err:
                if err.errno != errno.ENOENT:
                    raise
        return delta.count + (len(delta.gone) // ks if ks else 0)

    def _update_pairs(self, handle: int, spec: MapSpec, delta: Delta, per_cpu: int,
                      vsize: int) -> None:
        """Entries one by one: links resolved to local handles, per-CPU values re-spread."""
        ks = spec.key_size
        pairs = []
        for i in range(delta.count):
            key = delta.keys[i * ks:(i + 1) * ks]
            if delta.targets is not None:
                pairs.append((key, struct.pack("<I", self._target(spec.type, delta.targets[i]))))
            elif spec.type.is_percpu:
                value = delta.values[i * vsize:(i + 1) * vsize]
                parts = [value[c * spec.value_size:(c + 1) * spec.value_size]
                         for c in range(per_cpu)]
                parts = (parts + [bytes(spec.value_size)] * self.cpus)[:self.cpus]
                pairs.append((key, join_percpu(parts, spec.value_size)))
            else:
                pairs.append((key, delta.values[i * vsize:(i + 1) * vsize]))
        if pairs:
            self._update(handle, pairs)

    def _update_columns(self, handle: int, count: int, keys: bytes, values: bytes,
                        value_size: int) -> None:
        try:
            self.driver.map_update_columns(handle, count, keys, values)
            return
        except ErrnoError as err:
            if err.name != "ENOTSUPP":
                raise
        ks = len(keys) // count
        for i in range(count):
            self.driver.map_update_elem(handle, keys[i * ks:(i + 1) * ks],
                                        values[i * value_size:(i + 1) * value_size])

    def _target(self, mtype: MapType, name: str) -> int:
        assert self.result is not None
        table = self.result.programs if mtype == MapType.PROG_ARRAY else self.result.maps
        if name not in table:
            raise ProtocolViolation(f"a delta links to {name!r}, which was not restored here.")
        return table[name]

    def _update(self, handle: int, pairs: list[tuple[bytes, bytes]]) -> None:
        try:
            self.driver.map_update_batch(handle, pairs)
            return
        except ErrnoError as err:
            if err.name != "ENOTSUPP":
                raise
        for key, value in pairs:
            self.driver.map_update_elem(handle, key, value)

    def commit(self, final: Final) -> None:
        """Counters carried over, frozen maps frozen, the program attached: it runs here."""
        assert self.result is not None
        handles = self.result.programs
        self.pair.device.carry_counters(
            ((handles[name], dict(zip(COUNTER_FIELDS, values, strict=False)))
             for name, values in final.programs if name in handles), final.ports)
        for name in self.frozen:
            if name in self.result.maps:
                self.driver.map_freeze(self.result.maps[name])
        if self.attach_name is not None and self.attach_name in self.result.programs:
            self.driver.xdp_attach(self.result.programs[self.attach_name])
            self.result.attached = self.attach_name
        self.committed = True

    def rollback(self) -> list[str]:
        """Remove everything this migration created here; what could not be undone."""
        objects = self.pair.device.objects
        maps = sorted(set(objects.maps) - self._before[0], reverse=True)
        programs = sorted(set(objects.programs) - self._before[1], reverse=True)
        problems = []
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.pair.device.attached in programs:
            steps.append(("detach", self.driver.xdp_detach))
        steps += [(f"unload program {h}", partial(self.driver.prog_unload, h))
                  for h in programs]
        steps += [(f"free map {h}", partial(self.driver.map_free, h)) for h in maps]
        for what, step in steps:
            try:
                step()
            except OffloadError as err:
                problems.append(f"{what}: {err}")
        self.result = None
        return problems
