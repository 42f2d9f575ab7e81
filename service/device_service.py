"""One device and its guest driver, offered as named operations (the control socket's methods).

The daemon dispatches msgpack-RPC requests here through the method table (service/methods.py),
which hands each method its parameters checked and typed (service/api.py); the demo calls the
same object in-process. Everything reaches the device through its guest driver (maps created,
programs loaded and attached over the control virtqueue), except what only the device side can
do: checkpoint (the hypervisor's view), frames arriving from the wire, and counters. Every
method either completes or leaves the device as it was.
"""

from __future__ import annotations

import errno
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from migrate.freshness import FreshnessUnknown, SourceStamp
from migrate.schema import SnapshotFormatError
from migrate.snapshot import ActionCounter, Snapshot
from offload.caps import Capabilities, load_profile
from offload.device import Device, DevicePair, build_device
from offload.device.capture import KINDS, FrameCapture
from offload.device.objects import ACTION_FIELDS
from offload.device.sampler import MAX_SAMPLES
from offload.driver import Driver, ObjectLoadError
from offload.errors import OffloadError
from offload.loader import LoadOptionError, ObjectSpec, ProgramRefusal, load_object
from offload.program import ProgramSpec
from offload.uapi import XdpAction
from offload.virtio.features import names as feature_names

from .api import (
    MAX_ITEMS,
    MAX_TEST_DATA,
    MAX_UPLOAD,
    MIGRATION_FINISHED,
    AttachParams,
    AttachResult,
    CaptureParams,
    CaptureReadParams,
    CaptureReadResult,
    CaptureStartParams,
    CaptureStartResult,
    CaptureStopResult,
    CheckpointBeginParams,
    CheckpointBeginResult,
    CheckpointReadParams,
    CheckpointReadResult,
    EventsReadParams,
    EventsReadResult,
    InjectParams,
    InjectResult,
    LoadedProgram,
    LoaderRefusal,
    LoadParams,
    LoadResult,
    MapDumpResult,
    MapFreeResult,
    MapItemsParams,
    MapItemsResult,
    MapKeyParams,
    MapLookupResult,
    MapParams,
    MapResult,
    MapUpdateParams,
    MapUpdateResult,
    MigrateControlResult,
    MigrateStartParams,
    MigrateStartResult,
    NoParams,
    PingResult,
    ProgDumpResult,
    ProgramParams,
    ProgramResult,
    ProgRunParams,
    ProgRunResult,
    RestoreBeginParams,
    RestoreBeginResult,
    RestoreCommitParams,
    RestoreResult,
    RestoreWriteParams,
    RestoreWriteResult,
    ShutdownResult,
    StatusResult,
    TrafficResult,
    TrafficSetParams,
)
from .btf_values import MapTypes, map_types
from .device_state import DeviceState
from .errors import InvalidRequest, Refused, ServiceError, UsageError
from .heap import release_freed_heap
from .plan_data import plan_dict
from .protocol import CHUNK
from .rates import RateMeter
from .traffic import Traffic, parse_traffic

if TYPE_CHECKING:  # imported where used: a daemon starts without the migration machinery
    from migrate.live.proving import ScratchDevices
    from migrate.proof import Proof
    from migrate.restore import RestoreError

    from .migration import Migration

__all__ = ["BACKENDS", "ENGINES", "DeviceService", "PlanRefused", "Refused", "ServiceError",
           "error_data"]

LOG = logging.getLogger("offload_migrate.device")
BACKENDS = ("builtin", "kernel")
ENGINES = ("fast", "reference")
MAX_TRANSFERS = 8
MAX_CAPTURES = 4  # packet captures open on one device at once
CAPTURE_READ_BYTES = 4 << 20  # frame bytes one capture.read answer carries at most
DRAIN_EVERY = 32  # frames between guest receives (the driver posts 64 buffers)


def make_backend(name: str, caps: Capabilities, engine: str, seed: int | None,
                 device: str) -> object | None:
    """None for the built-in backend (build_device makes it), a KernelBackend for ``kernel``."""
    if name == "builtin":
        return None
    if name != "kernel":
        raise UsageError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    from offload.backends.kernel import KernelBackend, kernel_available

    usable, reason = kernel_available()
    if not usable:
        raise Refused(errno.ENOSYS, f"the kernel backend is unavailable here: {reason}")
    return KernelBackend(caps, name=device)


def _action_counts(counters: Iterable[ActionCounter]) -> dict[str, int]:
    """A snapshot's per-action counts as the device's ``ActionCounters`` fields."""
    counts = {ACTION_FIELDS[c.action]: c.packets for c in counters if c.action in ACTION_FIELDS}
    counts["bytes"] = sum(c.bytes for c in counters)
    return counts


@dataclass(slots=True)
class _Spool:
    """A snapshot transfer's payload, in an unnamed temporary file (memory stays bounded by
    a chunk whatever the device holds; nothing outlives the daemon), and the connection it
    belongs to."""

    file: BinaryIO
    size: int = 0
    owner: object = None

    def close(self) -> None:
        self.file.close()


class DeviceService:
    """A device, its driver, optional traffic, and the operations of the control socket."""

    def __init__(self, name: str, profile: str, *, backend: str = "builtin",
                 engine: str = "fast", seed: int | None = None, traffic: Traffic | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 state: DeviceState | None = None,
                 memory_limit: int | None = None) -> None:
        if engine not in ENGINES:
            raise UsageError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
        caps = load_profile(profile)
        if memory_limit is not None:  # the device's map memory instead of the profile's
            caps = replace(caps, memory=memory_limit)
        self.profile = profile
        self.backend_name = backend
        self.engine = engine if backend == "builtin" else "kernel"
        self.pair: DevicePair = build_device(
            name, caps, backend=make_backend(backend, caps, engine, seed, name), engine=engine,
            seed=seed)
        self.traffic = traffic
        self.state = state if state is not None else DeviceState(name)
        self.clock = clock
        self.started = clock()
        self.rates = RateMeter()
        self.lock = threading.Lock()  # the device's: held by the loop and by migrations
        self.job: Migration | None = None
        self.last_status: StatusResult | None = None
        self._downloads: dict[int, _Spool] = {}
        self._uploads: dict[int, _Spool] = {}
        #: the connection whose request is being answered (the daemon sets it): transfers
        #: belong to it and end with it (forget)
        self.caller: object = None
        self._next_transfer = 1
        #: open packet captures by id, each with the connection it belongs to
        self._captures: dict[int, tuple[FrameCapture, object]] = {}
        self._next_capture = 1
        #: set by ``shutdown``: the daemon's loop ends after answering
        self.stopping = False
        #: what the objects loaded here said beyond the device's view, by handle: programs'
        #: specs (BTF line info for prog.dump) and maps' BTF types (map.dump's formatted)
        self.program_sources: dict[int, ProgramSpec] = {}
        self.map_btf: dict[int, MapTypes] = {}

    @property
    def migration(self) -> dict[str, Any] | None:
        return None if self.job is None else self.job.picture()

    def migrating(self) -> bool:
        return self.job is not None and self.job.state not in MIGRATION_FINISHED

    @property
    def device(self) -> Device:
        return self.pair.device

    @property
    def driver(self) -> Driver:
        return self.pair.driver

    # -- the event loop's beat -----------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        """Send the traffic that is due, let the guest take its frames, sample counters."""
        now = self.clock() if now is None else now
        if self.traffic is not None:
            for n, frame in enumerate(self.traffic.take(self.traffic.due(now)), start=1):
                self.device.receive(frame)
                if n % DRAIN_EVERY == 0:  # the guest takes its frames as they come
                    self.drain()
        self.drain()
        self.rates.sample(now, {h: p.counters.as_dict()
                                for h, p in self.device.objects.programs.items()})

    def drain(self) -> None:
        """The device's CPU workers run, then the guest takes what reached it: its receive
        queue, its AF_XDP rings, and the wire and redirects leave."""
        self.device.run_workers()
        self.driver.received()
        self.device.wire.clear()
        self.device.redirected.clear()
        self.device.xsk_rings.clear()

    # -- read ------------------------------------------------------------------------------------
    def ping(self, params: NoParams) -> PingResult:
        return PingResult(self.device.name, self.profile)

    def shutdown(self, params: NoParams) -> ShutdownResult:
        """The daemon answers, then stops."""
        self.stopping = True
        return ShutdownResult(self.device.name)

    def status(self, params: NoParams | None = None) -> StatusResult:
        device = self.device
        programs = []
        for handle, prog in device.objects.programs.items():
            if prog.unloaded and device.attached != handle:
                continue
            programs.append({
                "id": handle, "name": prog.name, "type": prog.prog_type.name,
                "attach": f"xdp:hw on {device.name}" if device.attached == handle else None,
                "insns": sum(insn.width for insn in prog.instructions), "isa": prog.isa,
                "tag": prog.tag.hex(), "map_ids": sorted({ref[1] for ref in prog.refs}),
                "gpl_compatible": prog.gpl_compatible,
                "counters": prog.counters.as_dict(), "rates": self.rates.rates(handle),
                "verifier": {"insns_processed": prog.report.insns_processed,
                             "states": prog.report.states,
                             "peak_states": prog.report.peak_states}})
        maps = []
        streams = device.event_streams()
        for handle, entry in device.objects.maps.items():
            if entry.released:
                continue
            spec = entry.spec
            try:
                count = len(device.backend.map(handle))
            except (OffloadError, TypeError):
                count = 0
            row = {"id": handle, "name": spec.name, "type": spec.type.name,
                   "entries": count, "max_entries": spec.max_entries,
                   "key_size": spec.key_size, "value_size": spec.value_size,
                   "memory": entry.memory}
            if handle in streams:  # perf event arrays and ring buffers: their streams
                row["events"] = streams[handle]
            maps.append(row)
        ports = device.ports
        traffic = None if self.traffic is None else {
            "kind": self.traffic.kind, "rate": self.traffic.rate, "sent": self.traffic.sent}
        self.last_status = StatusResult(
            name=device.name, profile=self.profile, description=device.caps.description,
            backend=self.backend_name, engine=self.engine, isa_version=device.caps.isa_version,
            features=feature_names(device.transport.negotiated or 0),
            uptime=round(self.clock() - self.started, 3), programs=programs, maps=maps,
            memory={"capacity": device.caps.memory, "used": device.memory_used},
            ports=ports.as_dict(),
            traffic=traffic, migration=self.migration, identity=self.state.picture(),
            interfaces=[device.interfaces[i].picture() for i in sorted(device.interfaces)])
        return self.last_status

    def busy_status(self) -> StatusResult:
        """While a migration holds the device: the last picture (or what is known without
        the device), the migration's progress."""
        uptime = round(self.clock() - self.started, 3)
        if self.last_status is not None:
            return replace(self.last_status, migration=self.migration, uptime=uptime)
        caps = self.device.caps
        return StatusResult(
            name=self.device.name, profile=self.profile, description=caps.description,
            backend=self.backend_name, engine=self.engine, isa_version=caps.isa_version,
            features=[], uptime=uptime, programs=[], maps=[],
            memory={"capacity": caps.memory, "used": 0}, ports={}, traffic=None,
            migration=self.migration, identity=self.state.picture())

    # -- programs ------------------------------------------------------------------------------
    def load(self, params: LoadParams) -> LoadResult:
        """An ELF object's maps created and programs loaded through the driver, all or none.

        ``type`` sets every program's type, ``types`` single programs' and ``map_sizes`` maps'
        max_entries, as libbpf sets them before load. Programs the loader refuses are listed
        under ``refused`` when not chosen, and refuse the load when chosen.
        """
        try:
            obj = load_object(params.object, params.name, prog_type=params.type,
                              prog_types=params.types, map_sizes=params.map_sizes)
        except LoadOptionError as err:
            raise UsageError(str(err)) from None
        names = params.program
        chosen = self._choose(obj, params.section, [names] if isinstance(names, str) else names)
        attach = params.attach
        if attach and len(chosen) != 1:
            raise Refused(errno.EINVAL, f"{len(chosen)} programs were chosen "
                                        f"({', '.join(chosen)}); name the one to attach with --program.")
        try:
            loaded = self.driver.load_object(obj, programs=chosen)
        except ObjectLoadError as err:
            others = [n for n in chosen if n not in err.refused]
            hint = "; the others load when chosen by name: " + \
                " ".join(f"--program {n}" for n in others) if others else ""
            raise ObjectLoadError(err.errno, f"{err.detail}{hint}",
                                  refused=err.refused) from None
        if attach:
            try:
                self.driver.xdp_attach(next(iter(loaded.programs.values())))
            except OffloadError:
                self.driver.unload_object(loaded)
                raise
        reports = {name: self.device.objects.programs[h].report
                   for name, h in loaded.programs.items()}
        for name, handle in loaded.programs.items():
            self.program_sources[handle] = obj.programs[name]
        for name, handle in loaded.maps.items():
            types = map_types(obj.btf, name)
            if types is not None:
                self.map_btf[handle] = types
        return LoadResult(
            maps=dict(loaded.maps),
            programs={name: LoadedProgram(h, reports[name].insns_processed,
                                          reports[name].states, reports[name].peak_states)
                      for name, h in loaded.programs.items()},
            attached=next(iter(loaded.programs)) if attach else None,
            refused={name: loader_refusal(r) for name, r in obj.refused.items()
                     if name not in chosen})

    @staticmethod
    def _choose(obj: ObjectSpec, section: str | None,
                program: list[str] | None) -> list[str]:
        """The programs named by section and name, refused ones included (they refuse the
        load), in the object's order."""
        chosen = [name for name, in_section in obj.sections.items()
                  if (section is None or in_section == section)
                  and (program is None or name in program)]
        missing = [name for name in program or () if name not in obj.sections]
        if not chosen or missing:
            known = ", ".join(f"{n} ({s})" for n, s in obj.sections.items()) or "none"
            asked = ", ".join(repr(n) for n in (missing or program or ()))
            what = " and ".join(x for x in (f"section {section!r}" if section else "",
                                            f"name {asked}" if asked else "") if x)
            raise Refused(errno.ENOENT, f"the object has no program with {what or 'any name'}"
                                        f"; its programs: {known}.")
        return chosen

    def _program_handle(self, ref: Any) -> int:
        programs = self.device.objects.programs
        if isinstance(ref, int) and not isinstance(ref, bool) and ref in programs:
            return ref
        for handle, prog in programs.items():
            if prog.name == ref and not prog.unloaded:
                return handle
        raise Refused(errno.ENOENT, f"there is no program {ref!r} on {self.device.name}.")

    def attach(self, params: AttachParams) -> AttachResult:
        handle = self._program_handle(params.program)
        self.driver.xdp_attach(handle, replace=self.device.attached)
        return AttachResult(handle)

    def detach(self, params: NoParams) -> AttachResult:
        self.driver.xdp_detach()
        return AttachResult(None)

    def prog_unload(self, params: ProgramParams) -> ProgramResult:
        """The guest's reference dropped (an attached program runs on until detached)."""
        handle = self._program_handle(params.program)
        self.driver.prog_unload(handle)
        self.program_sources.pop(handle, None)
        self._forget_gone_maps()
        return ProgramResult(handle)

    def prog_dump(self, params: ProgramParams) -> ProgDumpResult:
        """The program's instructions as the device keeps them (map references as the guest
        wrote them), each with its source line where the object's line info has one."""
        handle = self._program_handle(params.program)
        prog = self.device.objects.programs[handle]
        spec = self.program_sources.get(handle)
        lines = {info.slot: info for info in spec.line_info} if spec is not None else {}
        insns: list[dict[str, Any]] = []
        slot = 0
        for insn in prog.instructions:
            row: dict[str, Any] = {"slot": slot, "text": str(insn)}
            info = lines.get(slot)
            if info is not None:
                row["line"] = {"file": info.file, "line": info.line, "column": info.column,
                               "text": info.text}
            insns.append(row)
            slot += insn.width
        return ProgDumpResult(handle, prog.name, prog.prog_type.name, insns)

    def prog_run(self, params: ProgRunParams) -> ProgRunResult:
        """BPF_PROG_TEST_RUN through the driver: the verdict on one frame, not acted on."""
        handle = self._program_handle(params.program)
        if len(params.data) > MAX_TEST_DATA:
            raise Refused(errno.EINVAL, f"{len(params.data)} bytes of data: a test run takes "
                                        f"at most {MAX_TEST_DATA} here (the device 3520).")
        response = self.driver.prog_test_run(handle, params.data, repeat=params.repeat,
                                             data_size_out=params.data_size_out)
        retval = response.retval
        action = XdpAction(retval).name.lower() if retval in XdpAction._value2member_map_ \
            else "aborted"
        return ProgRunResult(handle, retval, action, response.duration, response.data_out)

    def inject(self, params: InjectParams) -> InjectResult:
        """Frames from the wire, now: the verdict of each (what tests and scripts compare)."""
        actions = []
        for frame in params.frames:
            actions.append(XdpAction(self.device.receive(frame, rx_queue_index=params.rx_queue))
                           .name.lower())
            if len(actions) % DRAIN_EVERY == 0:
                self.drain()
        self.drain()
        return InjectResult(actions)

    # -- maps ----------------------------------------------------------------------------------
    def _map_handle(self, ref: Any) -> int:
        maps = self.device.objects.maps
        if isinstance(ref, int) and not isinstance(ref, bool) and ref in maps:
            return ref
        for handle, entry in maps.items():
            if entry.spec.name == ref and not entry.released:
                return handle
        raise Refused(errno.ENOENT, f"there is no map {ref!r} on {self.device.name}.")

    def map_update(self, params: MapUpdateParams) -> MapUpdateResult:
        handle = self._map_handle(params.map)
        self.driver.map_update_elem(handle, params.key, params.value, params.flags)
        return MapUpdateResult(handle)

    def map_lookup(self, params: MapKeyParams) -> MapLookupResult:
        handle = self._map_handle(params.map)
        value = self.driver.map_lookup_elem(handle, params.key)
        types = self.map_btf.get(handle)
        return MapLookupResult(handle, value, None if types is None
                               else types.format(params.key, value))

    def map_delete(self, params: MapKeyParams) -> MapResult:
        handle = self._map_handle(params.map)
        self.driver.map_delete_elem(handle, params.key)
        return MapResult(handle)

    def map_freeze(self, params: MapParams) -> MapResult:
        handle = self._map_handle(params.map)
        self.driver.map_freeze(handle)
        return MapResult(handle)

    def map_free(self, params: MapParams) -> MapFreeResult:
        """The guest's reference dropped, as Linux frees a map when its last fd closes and
        no program uses it; a map a program uses goes with the last such program."""
        handle = self._map_handle(params.map)
        entry = self.device.objects.maps[handle]
        if entry.released:
            raise Refused(errno.ENOENT, f"map {handle} was freed already; it goes with the "
                                        "last program that uses it.")
        self.driver.map_free(handle)
        self._forget_gone_maps()
        return MapFreeResult(handle, handle not in self.device.objects.maps)

    def _forget_gone_maps(self) -> None:
        """Drop the BTF kept for maps the device freed (with their last program, or now)."""
        for handle in [h for h in self.map_btf if h not in self.device.objects.maps]:
            del self.map_btf[handle]

    def map_dump(self, params: MapParams) -> MapDumpResult:
        """Every entry, and each decoded with the object's BTF when the map has BTF."""
        handle = self._map_handle(params.map)
        items = self.map_items(MapItemsParams(handle)).items
        types = self.map_btf.get(handle)
        return MapDumpResult(handle, self.device.objects.maps[handle].spec.name, items,
                             None if types is None else [types.format(k, v) for k, v in items])

    def map_items(self, params: MapItemsParams) -> MapItemsResult:
        handle = self._map_handle(params.map)
        items: list[tuple[bytes, bytes]] = []
        for key, value in self.driver.map_items(handle):
            if len(items) == MAX_ITEMS:
                raise Refused(errno.E2BIG, f"the map holds more than {MAX_ITEMS} entries; "
                                           "take a snapshot instead.")
            items.append((key, value))
        return MapItemsResult(items)

    # -- event streams -------------------------------------------------------------------------
    def events_read(self, params: EventsReadParams) -> EventsReadResult:
        """Take up to ``max`` event records (perf event arrays and ring buffers), oldest
        first; taking them frees their room in the streams. ``streams`` tells, per map, what
        is still waiting and how many records were lost."""
        device = self.device
        events = device.take_events(params.max)
        names = {h: e.spec.name for h, e in device.objects.maps.items()}
        return EventsReadResult(
            device=device.name, events=[event.as_dict() for event in events],
            backlog=len(device.events),
            streams=[{"map": names.get(handle, str(handle)), **stats}
                     for handle, stats in device.event_streams().items()],
            lost=device.ports.events_lost)

    # -- packet capture ------------------------------------------------------------------------
    def capture_start(self, params: CaptureStartParams) -> CaptureStartResult:
        """Start recording frames at the device's edges (offload/device/capture.py); the
        capture belongs to the caller's connection and ends with it."""
        words = [w.strip() for w in params.what.split(",")]
        kinds = set(KINDS) if "all" in words else set(words)
        unknown = sorted(kinds - set(KINDS))
        if unknown or not kinds:
            raise InvalidRequest(f"a capture records rx, tx, drop or all, not "
                                 f"{', '.join(repr(w) for w in unknown or words)}.",
                                 field="what")
        if len(self._captures) >= MAX_CAPTURES:
            raise Refused(errno.EBUSY, f"{MAX_CAPTURES} captures are open on "
                                       f"{self.device.name} already; stop one first.")
        capture = FrameCapture(frozenset(kinds), count=params.count, snaplen=params.snaplen,
                               max_records=params.buffer)
        ident = self._next_capture
        self._next_capture += 1
        self._captures[ident] = (capture, self.caller)
        self.device.captures.append(capture)
        return CaptureStartResult(ident, [k for k in KINDS if k in kinds])

    def _capture(self, ident: int) -> FrameCapture:
        entry = self._captures.get(ident)
        if entry is None:
            raise Refused(errno.ENOENT, f"there is no capture {ident} on {self.device.name}.")
        return entry[0]

    def capture_read(self, params: CaptureReadParams) -> CaptureReadResult:
        """The frames recorded since the last read, oldest first."""
        capture = self._capture(params.capture)
        frames = capture.take(params.max, CAPTURE_READ_BYTES)
        return CaptureReadResult(
            [{"time": f.time, "direction": f.direction, "verdict": f.verdict,
              "length": f.length, "data": f.data} for f in frames],
            recorded=capture.recorded, lost=capture.lost,
            full=capture.full and not capture.records)

    def capture_stop(self, params: CaptureParams) -> CaptureStopResult:
        """The capture ended; frames not read are discarded."""
        capture = self._capture(params.capture)
        self._end_capture(params.capture)
        return CaptureStopResult(params.capture, capture.recorded, capture.lost)

    def _end_capture(self, ident: int) -> None:
        capture, _ = self._captures.pop(ident)
        self.device.captures = [c for c in self.device.captures if c is not capture]

    # -- checkpoint and restore ----------------------------------------------------------------
    def _transfer_id(self) -> int:
        if len(self._downloads) + len(self._uploads) >= MAX_TRANSFERS:
            raise Refused(errno.EBUSY, f"{MAX_TRANSFERS} snapshot transfers are open "
                                       "already; finish one first.")
        ident = self._next_transfer
        self._next_transfer += 1
        return ident

    def checkpoint_bytes(self) -> tuple[bytes, SourceStamp]:
        """A checkpoint's payload and its stamp (this device, its next generation)."""
        from migrate.checkpoint import checkpoint
        from migrate.codec import encode

        data = encode(checkpoint(self.device))
        return data, self.state.next_stamp()

    def checkpoint_begin(self, params: CheckpointBeginParams) -> CheckpointBeginResult:
        """Checkpoint now into a spool file; the payload is then read in chunks
        (checkpoint.read). Map contents go from the device to the file chunk by chunk.
        ``source`` is its stamp: every checkpoint takes the device's next generation.
        ``samples``: up to that many of the frames the device's sample ring holds."""
        from migrate.checkpoint import checkpoint
        from migrate.codec import write_snapshot

        ident = self._transfer_id()
        snapshot = checkpoint(self.device, stream=True, samples=params.samples)
        spool = _Spool(tempfile.TemporaryFile(), owner=self.caller)
        try:
            stats = write_snapshot(spool.file, snapshot)
        except BaseException:
            spool.close()
            raise
        spool.size = stats.bytes
        stamp = self.state.next_stamp()
        self._downloads[ident] = spool
        return CheckpointBeginResult(
            transfer=ident, size=spool.size, programs=len(snapshot.programs),
            maps=len(snapshot.maps), entries=stats.entries, source=stamp.as_dict())

    def checkpoint_read(self, params: CheckpointReadParams) -> CheckpointReadResult:
        ident = params.transfer
        spool = self._downloads.get(ident)
        if spool is None:
            raise Refused(errno.ENOENT, f"there is no checkpoint transfer {ident}.")
        offset = params.offset
        size = min(params.size, CHUNK)
        if offset > spool.size:
            raise Refused(errno.EINVAL, f"offset {offset} is outside the checkpoint of "
                                        f"{spool.size} bytes.")
        spool.file.seek(offset)
        chunk = spool.file.read(size)
        if offset + len(chunk) >= spool.size:
            del self._downloads[ident]
            spool.close()
        return CheckpointReadResult(chunk)

    def restore_begin(self, params: RestoreBeginParams) -> RestoreBeginResult:
        size = params.size
        if not 0 < size <= MAX_UPLOAD:
            raise Refused(errno.E2BIG, f"a snapshot of {size} bytes cannot be restored "
                                       f"here (1 to {MAX_UPLOAD} bytes).")
        ident = self._transfer_id()
        self._uploads[ident] = _Spool(tempfile.TemporaryFile(), owner=self.caller)
        return RestoreBeginResult(ident, size)

    def restore_write(self, params: RestoreWriteParams) -> RestoreWriteResult:
        ident = params.transfer
        upload = self._uploads.get(ident)
        if upload is None:
            raise Refused(errno.ENOENT, f"there is no restore transfer {ident}.")
        data = params.data
        if upload.size + len(data) > MAX_UPLOAD:
            del self._uploads[ident]
            upload.close()
            raise Refused(errno.E2BIG, "the snapshot grew past the restore limit.")
        upload.file.write(data)
        upload.size += len(data)
        return RestoreWriteResult(upload.size)

    def restore_commit(self, params: RestoreCommitParams) -> RestoreResult:
        ident = params.transfer
        upload = self._uploads.pop(ident, None)
        if upload is None:
            raise Refused(errno.ENOENT, f"there is no restore transfer {ident}.")
        try:
            try:
                source = None if params.source is None else SourceStamp.parse(
                    asdict(params.source), "the parameter 'source'")
            except SnapshotFormatError as exc:
                raise InvalidRequest(str(exc), field="source") from None
            return self.restore_payload(
                upload.file, allow_fallback=params.allow_fallback, dry_run=params.dry_run,
                source=source, authenticated=params.authenticated,
                no_rollback=params.no_rollback, prove=params.prove,
                prove_frames=params.prove_frames)
        finally:
            upload.close()
            release_freed_heap()  # the decoded snapshot is gone; its chunks leave RSS

    def forget(self, owner: object) -> None:
        """The connection ``owner`` is gone: its unfinished transfers and its captures end
        with it (a restore never committed changes nothing)."""
        for transfers in (self._downloads, self._uploads):
            for ident, spool in list(transfers.items()):
                if spool.owner is owner:
                    del transfers[ident]
                    spool.close()
        for ident, (_, holder) in list(self._captures.items()):
            if holder is owner:
                self._end_capture(ident)

    def restore_payload(self, payload: bytes | BinaryIO, *, allow_fallback: bool = False,
                        dry_run: bool = False, source: SourceStamp | None = None,
                        authenticated: bool = False, no_rollback: bool = False,
                        prove: bool = False,
                        prove_frames: list[bytes] | None = None) -> RestoreResult:
        """Decode (with the codec's hard limits) and restore through the driver.

        A payload given as a file (a spooled upload) is indexed rather than decoded: every
        record is checked, but map contents stay in the file and are read again a chunk at a
        time by the proof and by the restore, so the daemon holds the maps it fills plus a
        chunk, never a second copy of the snapshot.

        ``source`` is the snapshot's stamp as the client verified it. ``no_rollback`` refuses
        a generation older than the newest this device restored from that source. A restore
        of an ``authenticated`` (signed or MACed) snapshot is recorded, as part of the restore:
        if the record cannot be written the restore is undone. Unauthenticated stamps are
        compared but never recorded, so a forged generation cannot lock out genuine ones.
        """
        from migrate.codec import decode, index_snapshot
        from migrate.restore import IncompatibleTarget, RestoreError, restore

        snapshot = decode(payload) if isinstance(payload, bytes) else index_snapshot(payload)
        if source is not None and source.name != snapshot.device:
            raise Refused(errno.EINVAL, f"the source stamp names device {source.name!r}; "
                                        f"the snapshot is of {snapshot.device!r}.")
        if no_rollback:
            if source is None:
                raise FreshnessUnknown("the snapshot carries no generation (no source stamp): "
                                       "--no-rollback cannot be checked.")
            self.state.check_rollback(source)
        if not dry_run:
            self.check_empty("restore onto")
        proof = self.prove(snapshot, prove_frames) if prove else None
        stamp = source if source is not None and authenticated else None

        def finish(result: Any) -> None:
            """The last steps of the restore: the stamp recorded (a failure undoes the
            restore), then the counters carried over as a live migration carries them."""
            if stamp is not None:
                self.state.record_restore(stamp)
            self.device.carry_counters(
                ((result.programs[p.name], _action_counts(p.counters))
                 for p in snapshot.programs if p.name in result.programs), snapshot.counters)
        try:
            result = restore(snapshot, self.driver, allow_fallback=allow_fallback,
                             dry_run=dry_run, finish=finish)
        except (IncompatibleTarget, RestoreError) as err:
            raise PlanRefused(err) from err
        return RestoreResult(
            plan=plan_dict(result.plan), dry_run=dry_run, maps=dict(result.maps),
            programs=dict(result.programs), attached=result.attached,
            fallback=list(result.fallback), entries=result.entries, source=snapshot.device,
            proof=None if proof is None else proof.as_dict())

    def prove(self, snapshot: Snapshot, frames: list[bytes] | None) -> Proof:
        """Translation validation before anything is restored (migrate/proof.py): the
        snapshot as the source ran it (its capabilities, the reference engine) against the
        snapshot as this device will run it (its capabilities and backend), on scratch
        devices; a difference refuses the restore and the device stays as it was. Per-CPU
        values are compared at the snapshot's CPU count."""
        from migrate.proof import NoFrames, ProofError, prove

        scratch = self.scratch(snapshot)
        try:
            result = prove(snapshot, frames if frames is not None else snapshot.samples,
                           source=scratch.source, target=scratch.target,
                           reference=scratch.reference)
        except ProofError as err:
            raise Refused(errno.ENODATA if isinstance(err, NoFrames) else errno.EINVAL,
                          str(err)) from None
        finally:
            scratch.close()
        if not result.ok and result.difference is not None:
            raise ProofRefused(result, self._plan(snapshot))
        return result

    def _plan(self, snapshot: Snapshot) -> dict[str, Any] | None:
        """The plan of restoring ``snapshot`` here, for the report of a refused proof."""
        from migrate.restore import RestoreError, restore

        try:
            return plan_dict(restore(snapshot, self.driver, allow_fallback=True,
                                     dry_run=True).plan)
        except (OffloadError, RestoreError):
            return None

    def scratch(self, snapshot: Snapshot) -> ScratchDevices:
        """The scratch devices a proof of ``snapshot`` runs on (restore --prove here, a live
        migration's proof when this device is the destination): the source's capabilities on
        the reference engine, this device's capabilities and backend, and this device's
        capabilities on the reference engine; ``close`` releases their backends."""
        from migrate.live.proving import ScratchDevices

        caps = self.device.caps
        cpus = snapshot.cpus
        made: list[DevicePair] = []

        def keep(pair: DevicePair) -> DevicePair:
            made.append(pair)
            return pair

        def source() -> DevicePair:
            return keep(build_device("proof-source", snapshot.capabilities, engine="reference",
                                     ncpus=cpus))

        def target() -> DevicePair:
            backend = make_backend(self.backend_name, caps, self.engine, None, "proof-target")
            return keep(build_device("proof-target", caps, backend=backend,
                                     engine=self.engine if backend is None else "fast",
                                     ncpus=cpus))

        def reference() -> DevicePair:
            return keep(build_device("proof-reference", caps, engine="reference", ncpus=cpus))

        def close() -> None:
            for pair in made:
                release = getattr(pair.device.backend, "close", None)
                if release is not None:
                    release()
            made.clear()

        return ScratchDevices(source, target, reference, close)

    def traffic_set(self, params: TrafficSetParams) -> TrafficResult:
        kind, rate = params.kind, params.rate
        if kind is not None:
            self.traffic = parse_traffic(kind, rate or 200.0)
        elif rate is not None and self.traffic is not None:
            if rate <= 0:
                raise Refused(errno.EINVAL, "the traffic rate must be positive.")
            self.traffic.rate = rate
        return TrafficResult(self.status().traffic)

    # -- live migration ------------------------------------------------------------------------
    def migrate_start(self, params: MigrateStartParams) -> MigrateStartResult:
        """Start migrating this device to ``to``; progress shows in ``status``."""
        to, downtime, rounds = params.to, params.downtime_target, params.max_rounds
        if downtime <= 0:
            raise Refused(errno.EINVAL, "the downtime target must be positive.")
        if self.migrating():
            raise Refused(errno.EBUSY, f"device {self.device.name} is already migrating.")
        if self.device.attached is None and not self.device.objects.programs:
            raise Refused(errno.ENOENT, f"device {self.device.name} holds no program to "
                                        "migrate.")
        samples = 0
        if params.prove:
            sampler = self.device.sampler
            samples = min(params.samples or MAX_SAMPLES, len(sampler.frames)) \
                if sampler is not None else 0
            if not samples:
                raise Refused(errno.ENODATA, f"device {self.device.name} holds no sampled "
                                             "frames to prove with: start its daemon with "
                                             "--sample-ring N and let traffic reach it.")
        from .migration import start_source

        self.job = start_source(self, to, downtime, rounds, params.hold, samples=samples)
        return MigrateStartResult(self.device.name, to)

    def _held_job(self, verb: str) -> Migration:
        job = self.job
        if job is None or job.role != "source" or job.state in MIGRATION_FINISHED:
            raise Refused(errno.ENOENT, f"device {self.device.name} is not migrating out; "
                                        f"nothing to {verb}.")
        return job

    def migrate_cut(self, params: NoParams) -> MigrateControlResult:
        """A held migration's final round now (the caller's VM is paused for the switch)."""
        job = self._held_job("cut")
        if job.hold is None:
            raise Refused(errno.EINVAL, "this migration was not started held; it cuts on its "
                                        "own.")
        if job.source is None or job.source.phase != "precopy":
            raise Refused(errno.EAGAIN, "the destination has not restored the full copy yet; "
                                        "cut once the phase is precopy.")
        job.hold.set()
        return MigrateControlResult(job.picture())

    def migrate_release(self, params: NoParams) -> MigrateControlResult:
        """A held migration that committed lets its state go: the VM runs on the
        destination now."""
        job = self._held_job("release")
        if job.release is None or job.source is None or job.source.phase != "committed":
            raise Refused(errno.EAGAIN, "only a held migration whose device state committed "
                                        "is released; cut it and wait for phase committed.")
        job.release.set()
        return MigrateControlResult(job.picture())

    def migrate_undo(self, params: NoParams) -> MigrateControlResult:
        """Remove what the last incoming migration restored here, committed or not: its
        source kept (or resumed) the state because the VM's switchover failed."""
        job = self.job
        target = None if job is None or job.destination is None else job.destination.target
        if job is None or job.role != "destination" or job.state != "completed" \
                or target is None or target.result is None:
            raise Refused(errno.ENOENT, f"device {self.device.name} holds no completed "
                                        "incoming migration to undo.")
        problems = target.rollback()  # under the service's lock, as every request
        if problems:
            job.reason = "undone in part: " + "; ".join(problems)
            raise Refused(errno.EIO, f"undoing the migration failed in part: "
                                     f"{'; '.join(problems)}")
        job.state, job.reason = "undone", "the source runs on with the state"
        LOG.info("%s: the migration from %s undone", self.device.name, job.peer)
        return MigrateControlResult(job.picture())

    def migrate_cancel(self, params: NoParams) -> MigrateControlResult:
        """Give the migration up: before its cut the destination rolls back; after a held
        migration's commit this device resumes with its state. This device runs on."""
        job = self._held_job("cancel")
        job.cancel.set()
        LOG.info("%s: cancelling the migration to %s", self.device.name, job.peer)
        return MigrateControlResult(job.picture())

    def check_empty(self, what: str) -> None:
        if self.device.objects.programs or self.device.objects.maps:
            raise Refused(errno.EBUSY, f"device {self.device.name} already holds offloaded "
                                       f"objects; {what} an empty device.")

    def accept_migration(self, stream: Any, peer: str, allow_fallback: bool = False) -> None:
        """Serve an incoming migration on ``stream`` (the caller checked the device is free)."""
        from .migration import start_destination

        self.job = start_destination(self, stream, peer, allow_fallback, self.scratch)


class ProofRefused(ServiceError):
    """The restored program would not behave as the source's: refused before anything is
    restored, naming the first differing frame."""

    def __init__(self, proof: Proof, plan: dict[str, Any] | None = None) -> None:
        difference = proof.difference
        super().__init__(f"the proof failed: {difference.describe() if difference else '?'} "
                         f"({proof.summary()}); nothing was restored.")
        self.errno = errno.EPROTO
        self.proof = proof.as_dict()
        self.plan = plan


class PlanRefused(ServiceError):
    """A restore the plan or the target refused; carries the plan for the report."""

    def __init__(self, err: RestoreError) -> None:
        from migrate.restore import IncompatibleTarget

        super().__init__(str(err))
        self.errno = errno.EOPNOTSUPP if isinstance(err, IncompatibleTarget) else \
            getattr(err.cause, "errno", errno.EINVAL)
        if isinstance(err, IncompatibleTarget) and err.plan is not None and any(
                f.code == "memory" for r in err.plan.reports for f in r.findings):
            self.errno = errno.ENOMEM  # the target has not the memory the maps need
        self.plan = plan_dict(err.plan) if err.plan is not None else None


def loader_refusal(refusal: ProgramRefusal) -> LoaderRefusal:
    return LoaderRefusal(refusal.section, refusal.kind.value, refusal.reason)


def error_data(exc: BaseException) -> dict[str, Any]:
    """Extra data an error carries over the socket: a plan, a verifier log, the programs the
    loader refused."""
    data: dict[str, Any] = {}
    if isinstance(exc, PlanRefused) and exc.plan is not None:
        data["plan"] = exc.plan
    if isinstance(exc, ProofRefused):
        data["proof"] = exc.proof
        if exc.plan is not None:
            data["plan"] = exc.plan
    if isinstance(exc, ObjectLoadError):
        data["refused"] = {name: asdict(loader_refusal(r)) for name, r in exc.refused.items()}
    response = getattr(exc, "response", None)
    log = getattr(response, "log", None)
    if isinstance(log, str) and log:
        data["log"] = log
    return data
