"""Restore: a snapshot recreated on a target device through its guest driver, all or nothing.

Everything goes through the target's control path, so the target's own checks decide: its map
limits on every MAP_CREATE, its verifier on every PROG_LOAD. First the plan
(:func:`migrate.compat.plan`) must allow it; then maps are created and filled (batched
updates), programs loaded (the lowered spec where the plan rewrote one), program arrays and
map-in-map slots linked, and the attached program attached. Any failure - a refusal, or
anything else raised on the way, an interrupt included - undoes every object created so far,
in reverse order: a refusal raises :class:`RestoreError`, anything else is raised again once
the target is left as it was. The plan charges the maps against the target's memory before
anything is created (a target whose per-CPU maps need it is asked for its CPU count first).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

from offload.driver.driver import Driver
from offload.errors import ErrnoError, OffloadError
from offload.maps.spec import MapSpec
from offload.maps.values import SlotValues, join_percpu
from offload.uapi import MapType

from .compat import Outcome, Plan, plan
from .errors import SnapshotError
from .snapshot import LINK_MAP_TYPES, MapState, Snapshot

BATCH = 1024
#: Entries per batched update when a chunk moves as it is (columns, no per-entry work).
COLUMN_BATCH = 4096
COLUMN_BATCH_BYTES = 1 << 20
Progress = Callable[[str, int, int], None]
#: Called with a step's name before each command that changes the target (fault injection).
Step = Callable[[str], None]


class RestoreError(SnapshotError):
    """A restore that did not happen; the target was left unchanged."""

    def __init__(self, message: str, *, plan: Plan | None = None,
                 cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.plan = plan
        self.cause = cause


class IncompatibleTarget(RestoreError):
    """The plan refuses: something in the snapshot cannot live on the target."""


@dataclass
class RestoreResult:
    """What the target holds now: handles by name, and what stayed in the guest."""

    plan: Plan
    maps: dict[str, int] = field(default_factory=dict)
    programs: dict[str, int] = field(default_factory=dict)
    attached: str | None = None
    fallback: tuple[str, ...] = ()
    entries: int = 0


def target_cpus(driver: Driver) -> int:
    """The target's CPU count, as libbpf learns it: the size of a per-CPU value."""
    handle = driver.map_create(MapSpec("cpus_probe", MapType.PERCPU_ARRAY, 4, 8, 1))
    try:
        return len(driver.map_lookup_elem(handle, bytes(4))) // 8
    finally:
        driver.map_free(handle)


#: Map types whose entries go in one element at a time whatever their form.
_ELEMENT_ONLY: frozenset[MapType] = frozenset()


def _values(state: MapState, target_ncpus: int) -> Iterator[tuple[bytes, bytes]]:
    """The snapshot's entries in the target's uAPI form (per-CPU values re-spread)."""
    spec = state.spec
    assert state.entries is not None
    for key, value in state.entries:
        if not spec.type.is_percpu:
            # a map that is not per-CPU holds one value per entry (MapState checks it)
            yield key, value  # type: ignore[misc]  # see above
            continue
        parts = [value] if isinstance(value, bytes) else list(value)
        if len(parts) > target_ncpus and any(any(p) for p in parts[target_ncpus:]):
            raise ErrnoError(errno.E2BIG, f"map {spec.name!r}: per-CPU values of "
                                          f"{len(parts)} CPUs do not fit the target's "
                                          f"{target_ncpus} CPUs")
        parts = (parts + [bytes(spec.value_size)] * target_ncpus)[:target_ncpus]
        yield key, join_percpu(parts, spec.value_size)


class _Restore:
    def __init__(self, snapshot: Snapshot, driver: Driver, the_plan: Plan,
                 progress: Progress | None, cpus: int, step: Step | None = None) -> None:
        self.snapshot = snapshot
        self.driver = driver
        self.plan = the_plan
        self.cpus = cpus
        self.progress = progress or (lambda stage, done, total: None)
        self.step = step or (lambda name: None)
        self.created_maps: list[int] = []
        self.created_programs: list[int] = []
        self.attached = False
        self.result = RestoreResult(the_plan)

    def skipped(self, kind: str, name: str) -> bool:
        return self.plan.report(kind, name).outcome == Outcome.FALLBACK

    def run(self) -> RestoreResult:
        for state in self.snapshot.maps:
            if self.skipped("map", state.name):
                continue
            self.result.maps[state.name] = self._create_map(state.spec)
        for state in self.snapshot.maps:
            if state.name in self.result.maps and state.spec.type not in LINK_MAP_TYPES:
                self._fill(state, self.cpus)
        for prog in self.snapshot.programs:
            if self.skipped("program", prog.name):
                continue
            report = self.plan.report("program", prog.name)
            spec = report.rewritten if report.rewritten is not None else prog.spec
            self.step(f"load program {prog.name}")
            handle = self.driver.prog_load(spec, maps=self.result.maps)
            self.created_programs.append(handle)
            self.result.programs[prog.name] = handle
        for state in self.snapshot.maps:
            if state.name in self.result.maps and state.spec.type in LINK_MAP_TYPES:
                self._link(state)
        for state in self.snapshot.maps:
            if state.frozen and state.name in self.result.maps:
                self.step(f"freeze map {state.name}")
                self.driver.map_freeze(self.result.maps[state.name])
        for prog in self.snapshot.programs:
            if prog.attach is not None and prog.name in self.result.programs:
                self.step(f"attach program {prog.name}")
                self.driver.xdp_attach(self.result.programs[prog.name])
                self.attached = True
                self.result.attached = prog.name
        self.result.fallback = tuple(r.name for r in self.plan.reports
                                     if r.outcome == Outcome.FALLBACK)
        return self.result

    def _create_map(self, spec: MapSpec) -> int:
        inner = 0
        if spec.inner is not None:  # the template a map-in-map's slots must match
            self.step(f"create the inner template of map {spec.name}")
            inner = self.driver.map_create(replace(spec.inner, contents=(), frozen=False))
            self.created_maps.append(inner)
        clean = replace(spec, contents=(), frozen=False)
        self.step(f"create map {spec.name}")
        handle = self.driver.map_create(clean, inner_map=inner)
        self.created_maps.append(handle)
        return handle

    def _fill(self, state: MapState, cpus: int) -> None:
        spec = state.spec
        entries = state.entries
        if entries is not None and (not spec.type.is_percpu or entries.cpus == cpus) \
                and spec.type not in _ELEMENT_ONLY:
            self._fill_columns(state, cpus)
            return
        handle = self.result.maps[state.name]
        total = state.entry_count
        batch: list[tuple[bytes, bytes]] = []
        done = 0
        for pair in _values(state, cpus):
            batch.append(pair)
            if len(batch) == BATCH:
                self.step(f"fill map {state.name} from entry {done}")
                done += self._write(handle, batch)
                self.progress(state.name, done, total)
                batch = []
        if batch:
            self.step(f"fill map {state.name} from entry {done}")
            done += self._write(handle, batch)
            self.progress(state.name, done, total)
        self.result.entries += done

    def _fill_columns(self, state: MapState, cpus: int) -> None:
        """Chunks as they are: one batched update per chunk of packed keys and values (the
        values put in uAPI form, which is the same bytes unless per-CPU copies need padding)."""
        handle = self.result.maps[state.name]
        spec = state.spec
        assert state.entries is not None
        layout = SlotValues(spec.type.is_percpu, spec.value_size, cpus)
        total = state.entry_count
        done = 0
        for chunk in state.entries.rechunk(COLUMN_BATCH, COLUMN_BATCH_BYTES):
            self.step(f"fill map {state.name} from entry {done}")
            values = layout.uapi_blob(chunk.values, chunk.count)
            try:
                done += self.driver.map_update_columns(handle, chunk.count, chunk.keys, values)
            except ErrnoError as err:
                if err.name != "ENOTSUPP":
                    raise
                ks, vs = spec.key_size, layout.uapi_size
                for i in range(chunk.count):  # maps without batch updates
                    self.driver.map_update_elem(handle, chunk.keys[i * ks:(i + 1) * ks],
                                                values[i * vs:(i + 1) * vs])
                done += chunk.count
            self.progress(state.name, done, total)
        self.result.entries += done

    def _write(self, handle: int, batch: list[tuple[bytes, bytes]]) -> int:
        try:
            return self.driver.map_update_batch(handle, batch)
        except ErrnoError as err:
            if err.name != "ENOTSUPP":
                raise
        for key, value in batch:  # maps without batch updates (arrays of some kinds)
            self.driver.map_update_elem(handle, key, value)
        return len(batch)

    def _link(self, state: MapState) -> None:
        handle = self.result.maps[state.name]
        targets = self.result.programs if state.spec.type == MapType.PROG_ARRAY \
            else self.result.maps
        for link in state.links:
            if link.target not in targets:
                raise ErrnoError(errno.ENOENT, f"map {state.name!r} links to {link.target!r}, "
                                               "which was not restored")
            self.step(f"link map {state.name}")
            self.driver.map_update_elem(handle, link.key, struct.pack("<I", targets[link.target]))

    def rollback(self) -> list[str]:
        """Undo everything created, newest first; report what could not be undone."""
        problems = []
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.attached:
            steps.append(("detach", self.driver.xdp_detach))
        steps += [(f"unload program {h}", partial(self.driver.prog_unload, h))
                  for h in reversed(self.created_programs)]
        steps += [(f"free map {h}", partial(self.driver.map_free, h))
                  for h in reversed(self.created_maps)]
        for what, step in steps:
            try:
                step()
            except OffloadError as err:
                problems.append(f"{what}: {err}")
        return problems


def restore(snapshot: Snapshot, driver: Driver, *, allow_fallback: bool = False,
            dry_run: bool = False, progress: Progress | None = None,
            finish: Callable[[RestoreResult], None] | None = None,
            step: Step | None = None) -> RestoreResult:
    """Recreate ``snapshot`` on the device behind ``driver``, or change nothing.

    ``finish`` runs once everything is restored (a daemon records what it restored); an
    ``OffloadError`` from it undoes the restore like a refusal of the target would.
    Raises :class:`IncompatibleTarget` when the plan refuses, :class:`RestoreError` when the
    target refuses during the restore (after undoing every step). ``step`` is called before
    each command that changes the target; whatever it raises is undone like a refusal.
    """
    caps = driver.capabilities()
    cpus = 1  # a target without per-CPU arrays to ask has its per-CPU maps refused anyway
    if MapType.PERCPU_ARRAY in caps.map_types and \
            any(m.spec.type.is_percpu for m in snapshot.maps):
        cpus = target_cpus(driver)
    the_plan = plan(snapshot, caps, offered_features=driver.transport.device_features,
                    allow_fallback=allow_fallback, ncpus=cpus)
    if not the_plan.ok:
        blockers = [f"{r.kind} {r.name!r}: " + "; ".join(
                        f.reason.rstrip(".") for f in r.findings
                        if f.outcome == Outcome.INCOMPATIBLE) + "."
                    for r in the_plan.reports if r.outcome == Outcome.INCOMPATIBLE]
        raise IncompatibleTarget(f"the target {caps.name!r} cannot take this snapshot: "
                                 + " | ".join(blockers), plan=the_plan)
    if dry_run:
        return RestoreResult(the_plan)
    job = _Restore(snapshot, driver, the_plan, progress, cpus, step)
    try:
        result = job.run()
        if finish is not None:
            finish(result)
        return result
    except OffloadError as err:
        problems = job.rollback()
        tail = f" (and undoing it failed: {'; '.join(problems)})" if problems else ""
        raise RestoreError(f"the restore failed and was undone: {err}{tail}", plan=the_plan,
                           cause=err) from err
    except BaseException:  # an interrupt or a bug: the target is still left as it was
        job.rollback()
        raise

