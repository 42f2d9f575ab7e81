"""The control socket's method table: name -> parameters type, result type, handler.

The daemon answers a request by looking its method up here, building the parameters dataclass
from the peer's map with the one validator (service/params.py) and calling the handler on the
:class:`~service.device_service.DeviceService`; the result dataclass goes back as a map. An
unknown method is ``ENOSYS``, malformed parameters ``EINVAL`` naming the field, both of kind
``invalid``. :func:`markdown` renders the table for docs/control-socket.md (a test keeps the
document in step: ``python -m service.methods`` prints it).
"""

from __future__ import annotations

import dataclasses
import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import api
from .device_service import DeviceService
from .errors import InvalidRequest
from .params import U32, U63, U64, field_types, parse_params, to_wire, type_name

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Method(Generic[P, R]):
    """One method: its parameters and result types, what it does, the errnos it may refuse
    with beyond ``EINVAL`` for malformed parameters, and its handler (None: the daemon
    answers it on the connection itself)."""

    name: str
    params: type[P]
    result: type[R]
    handler: Callable[[DeviceService, P], R] | None
    summary: str
    errors: tuple[str, ...] = ()


METHODS: dict[str, Method[Any, Any]] = {m.name: m for m in (
    Method("ping", api.NoParams, api.PingResult, DeviceService.ping,
           "the device's name and profile"),
    Method("status", api.NoParams, api.StatusResult, DeviceService.status,
           "the device's status (below)"),
    Method("load", api.LoadParams, api.LoadResult, DeviceService.load,
           "an ELF object's chosen programs and their maps loaded through the guest driver, "
           "all or none; `refused` lists the loader's refusals among the programs not chosen",
           ("ENOENT", "EINVAL", "EACCES", "E2BIG", "ENOMEM", "ENOTSUPP")),
    Method("attach", api.AttachParams, api.AttachResult, DeviceService.attach,
           "XDP, hardware mode; replaces the attached program", ("ENOENT", "EINVAL")),
    Method("detach", api.NoParams, api.AttachResult, DeviceService.detach,
           "the attached program detached", ("ENOENT",)),
    Method("prog.dump", api.ProgramParams, api.ProgDumpResult, DeviceService.prog_dump,
           "the program's instructions, each `{slot, text, line?}` with its source line "
           "(`{file, line, column, text}`) where the object's BTF line info has one",
           ("ENOENT",)),
    Method("prog.run", api.ProgRunParams, api.ProgRunResult, DeviceService.prog_run,
           "BPF_PROG_TEST_RUN over the control queue: the verdict on one frame, not acted on; "
           "`duration_ns` per run", ("ENOENT", "EINVAL", "ENOSPC", "EINTR", "ENOTSUPP")),
    Method("prog.unload", api.ProgramParams, api.ProgramResult, DeviceService.prog_unload,
           "the guest's reference dropped; an attached program runs until detached",
           ("ENOENT",)),
    Method("inject", api.InjectParams, api.InjectResult, DeviceService.inject,
           "each frame through the receive path now; its XDP action (`pass`, `drop`...)"),
    Method("map.update", api.MapUpdateParams, api.MapUpdateResult, DeviceService.map_update,
           "one element written through the guest driver", ("ENOENT", "EINVAL", "E2BIG",
                                                            "EEXIST")),
    Method("map.items", api.MapItemsParams, api.MapItemsResult, DeviceService.map_items,
           f"`[key, value]` pairs (at most {api.MAX_ITEMS:,})", ("ENOENT", "E2BIG")),
    Method("map.lookup", api.MapKeyParams, api.MapLookupResult, DeviceService.map_lookup,
           "one element's value; `formatted` `{key, value}` decoded with the object's BTF "
           "when the map has BTF", ("ENOENT", "EINVAL")),
    Method("map.delete", api.MapKeyParams, api.MapResult, DeviceService.map_delete,
           "one element deleted through the guest driver", ("ENOENT", "EINVAL", "EPERM")),
    Method("map.freeze", api.MapParams, api.MapResult, DeviceService.map_freeze,
           "BPF_MAP_FREEZE: the map read-only for the guest from then on", ("ENOENT", "EPERM")),
    Method("map.free", api.MapParams, api.MapFreeResult, DeviceService.map_free,
           "the guest's reference dropped, as a closed map fd: the map goes now, or with the "
           "last program that uses it (a device must be empty to restore onto)", ("ENOENT",)),
    Method("map.dump", api.MapParams, api.MapDumpResult, DeviceService.map_dump,
           f"`[key, value]` pairs (at most {api.MAX_ITEMS:,}); `formatted` each as "
           "`{key, value}` decoded with the object's BTF when the map has BTF",
           ("ENOENT", "E2BIG")),
    Method("checkpoint.begin", api.CheckpointBeginParams, api.CheckpointBeginResult,
           DeviceService.checkpoint_begin,
           "the device checkpointed now into a transfer; `source` is the stamp `save` seals",
           ("EBUSY",)),
    Method("checkpoint.read", api.CheckpointReadParams, api.CheckpointReadResult,
           DeviceService.checkpoint_read,
           "a chunk of the payload; the transfer ends with the read that reaches its end",
           ("ENOENT",)),
    Method("restore.begin", api.RestoreBeginParams, api.RestoreBeginResult,
           DeviceService.restore_begin, "a restore transfer of `size` bytes opened",
           ("E2BIG", "EBUSY")),
    Method("restore.write", api.RestoreWriteParams, api.RestoreWriteResult,
           DeviceService.restore_write, "the next chunk of the payload", ("ENOENT", "E2BIG")),
    Method("restore.commit", api.RestoreCommitParams, api.RestoreResult,
           DeviceService.restore_commit,
           "the payload decoded and restored all or nothing through the driver",
           ("ENOENT", "EBUSY", "EOPNOTSUPP", "ENOMEM", "ESTALE", "ENODATA", "EPROTO")),
    Method("traffic.set", api.TrafficSetParams, api.TrafficResult, DeviceService.traffic_set,
           "the device's traffic replaced or its rate changed; the traffic status"),
    Method("migrate.start", api.MigrateStartParams, api.MigrateStartResult,
           DeviceService.migrate_start,
           "a live migration started; progress in `status.migration`",
           ("EBUSY", "ENOENT", "ENODATA")),
    Method("migrate.cut", api.NoParams, api.MigrateControlResult, DeviceService.migrate_cut,
           "a held migration's final round now", ("ENOENT", "EINVAL", "EAGAIN")),
    Method("migrate.cancel", api.NoParams, api.MigrateControlResult,
           DeviceService.migrate_cancel,
           "the migration given up before its cut: the destination rolls back, this device "
           "runs on; after a held migration's commit: this device resumes with its state "
           "(`migrate.undo` empties the destination)", ("ENOENT",)),
    Method("migrate.release", api.NoParams, api.MigrateControlResult,
           DeviceService.migrate_release,
           "a held migration whose device state committed lets the state go (the VM switched)",
           ("ENOENT", "EAGAIN")),
    Method("migrate.undo", api.NoParams, api.MigrateControlResult, DeviceService.migrate_undo,
           "what the last incoming migration restored here removed, committed or not (its "
           "source kept the state)", ("ENOENT", "EIO")),
    Method("migrate.incoming", api.MigrateIncomingParams, api.MigrateIncomingResult, None,
           "the connection carries the live-migration protocol from then on; the only "
           "request on its connection", ("EBUSY", "EPROTO")),
    Method("events.read", api.EventsReadParams, api.EventsReadResult,
           DeviceService.events_read,
           "event records (perf event arrays, ring buffers), oldest first; taking them frees "
           "their room"),
    Method("capture.start", api.CaptureStartParams, api.CaptureStartResult,
           DeviceService.capture_start,
           "a packet capture at the device started: `rx` frames arriving (with the program's "
           "verdict), `tx` frames leaving on the wire (XDP_TX or the guest's), `drop` arriving "
           "frames dropped or aborted; it ends with the connection", ("EBUSY",)),
    Method("capture.read", api.CaptureReadParams, api.CaptureReadResult,
           DeviceService.capture_read,
           "the frames recorded since the last read, oldest first, each `{time, direction, "
           "verdict, length, data}`; `lost` counts frames the capture's buffer had no room "
           "for; `full` once `count` frames were recorded and read", ("ENOENT",)),
    Method("capture.stop", api.CaptureParams, api.CaptureStopResult,
           DeviceService.capture_stop, "the capture ended; frames not read are discarded",
           ("ENOENT",)),
    Method("shutdown", api.NoParams, api.ShutdownResult, DeviceService.shutdown,
           "the daemon answers, closes every connection and removes its socket"),
)}


def lookup(name: str) -> Method[Any, Any]:
    method = METHODS.get(name)
    if method is None:
        raise InvalidRequest(f"there is no method {name!r}; known: {', '.join(sorted(METHODS))}.",
                             code=errno.ENOSYS)
    return method


def answer(service: DeviceService, name: str, params: Any) -> Any:
    """One request's answer as the daemon sends it: ``params`` (the request's params array as
    it arrived) checked against the method's type, the handler's result as msgpack values."""
    method = lookup(name)
    if method.handler is None:
        raise InvalidRequest(f"{name!r} is answered by the daemon on its connection only.",
                             code=errno.EPROTO)
    return to_wire(method.handler(service, parse_params(method.params, params, name)))


def call(service: DeviceService, name: str, params: dict[str, Any] | None = None) -> Any:
    """:func:`answer` for callers in this process (the demo, tests): named parameters in, the
    answer a client would receive out, every check of the socket included."""
    return answer(service, name, [params or {}])


# -- the table as docs/control-socket.md shows it ----------------------------------------------
_BOUNDS = {U32: "2^32-1", U63: "2^63-1", U64: "2^64-1"}


def _param_cell(cls: type) -> str:
    if not dataclasses.fields(cls):
        return "-"
    hints = field_types(cls)
    cells = []
    for f in dataclasses.fields(cls):
        optional = f.default is not dataclasses.MISSING
        text = f"`{f.name}{'?' if optional else ''}` {type_name(hints[f.name])}"
        low_high = f.metadata.get("range")
        notes = [f.metadata.get("doc", "")]
        if low_high is not None:
            low, high = low_high
            notes.append(f"{low} to {_BOUNDS.get(high, high)}")
        if "items" in f.metadata:
            notes.append(f"at most {f.metadata['items']:,}")
        if optional and f.default not in (None, False, ""):
            notes.append(f"default {f.default}")
        note = "; ".join(n for n in notes if n)
        cells.append(f"{text} ({note})" if note else text)
    return ", ".join(cells)


def _result_cell(cls: type) -> str:
    hints = field_types(cls)
    return "{" + ", ".join(f"`{f.name}` {type_name(hints[f.name], nil=True)}"
                           for f in dataclasses.fields(cls)) + "}"


def markdown() -> str:
    """The method table in Markdown: name, parameters, result, errors, what it does."""
    lines = ["| method | parameters | result | errors | what it does |",
             "| --- | --- | --- | --- | --- |"]
    for method in METHODS.values():
        errors = ", ".join(f"`{e}`" for e in method.errors) or "-"
        lines.append(f"| `{method.name}` | {_param_cell(method.params)} | "
                     f"{_result_cell(method.result)} | {errors} | {method.summary} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
