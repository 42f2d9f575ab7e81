"""The control socket's vocabulary: one frozen dataclass per method's parameters and result.

Parameter classes are what :func:`service.params.parse_params` builds from a peer's map, so a
handler only ever sees checked values; ``None`` (or a missing key) for an optional field
leaves its default. Result classes go back as maps by field name
(:func:`service.params.to_wire`). The method table (service/methods.py) pairs them with their
handlers; docs/control-socket.md lists them, and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .params import U32, U63, U64, documented, items, ranged
from .protocol import CHUNK

MAX_INJECT = 10_000  # frames one inject takes
MAX_EVENTS = 10_000  # event records one events.read answer carries at most
MAX_ITEMS = 100_000  # entries one map.items answer carries at most
MAX_UPLOAD = 1 << 30  # bytes of a snapshot restore.begin accepts
MAX_TEST_DATA = 1 << 16  # bytes of a frame prog.run takes (the device bounds it to a page)
MAX_CAPTURE_READ = 10_000  # captured frames one capture.read answer carries at most
#: The states ``status.migration.state`` ends in (a migration in any other state is running).
MIGRATION_FINISHED = ("completed", "failed", "refused", "cancelled", "aborted", "undone")


@dataclass(frozen=True, slots=True)
class NoParams:
    """A method that takes no parameters (an empty map or none)."""


# -- ping, status, shutdown ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PingResult:
    name: str
    profile: str


@dataclass(frozen=True, slots=True)
class StatusResult:
    """The device's status (docs/control-socket.md, "Status")."""

    name: str
    profile: str
    description: str
    backend: str
    engine: str
    isa_version: int
    features: list[str]
    uptime: float
    programs: list[dict[str, Any]]
    maps: list[dict[str, Any]]
    memory: dict[str, int]
    ports: dict[str, int]
    traffic: dict[str, Any] | None
    migration: dict[str, Any] | None
    identity: dict[str, Any]
    #: the device's guest-facing ports (offload/device/interfaces.py), by ifindex
    interfaces: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ShutdownResult:
    stopping: str


# -- programs --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LoadParams:
    object: bytes = documented("an ELF file's bytes")
    name: str = documented("object name for global data maps", default="")
    section: str | None = documented("only programs of this section", default=None)
    program: str | list[str] | None = documented("a name or a list of names", default=None)
    type: str | None = documented("every program's type, as bpftool's `type xdp`",
                                  default=None)
    types: dict[str, str] | None = documented("one program's type", default=None)
    map_sizes: dict[str, int] | None = ranged(
        0, U32, default=None, doc="max_entries by map (`OUTER.inner` for a map of maps' "
                                  "template)")
    attach: bool = documented("attach the one chosen program", default=False)


@dataclass(frozen=True, slots=True)
class LoadedProgram:
    id: int
    insns_processed: int
    states: int
    peak_states: int


@dataclass(frozen=True, slots=True)
class LoaderRefusal:
    """A program the loader refused: its section, the kind of refusal, the reason."""

    section: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class LoadResult:
    maps: dict[str, int]
    programs: dict[str, LoadedProgram]
    attached: str | None
    refused: dict[str, LoaderRefusal]


@dataclass(frozen=True, slots=True)
class AttachParams:
    program: int | str = documented("program id or name")


@dataclass(frozen=True, slots=True)
class AttachResult:
    attached: int | None


@dataclass(frozen=True, slots=True)
class InjectParams:
    frames: list[bytes] = items(MAX_INJECT, doc="Ethernet frames")
    rx_queue: int = ranged(0, U32, default=0, doc="receive queue")


@dataclass(frozen=True, slots=True)
class InjectResult:
    actions: list[str]


@dataclass(frozen=True, slots=True)
class ProgramParams:
    program: int | str = documented("program id or name")


@dataclass(frozen=True, slots=True)
class ProgramResult:
    program: int


@dataclass(frozen=True, slots=True)
class ProgDumpResult:
    """A program as the device keeps it, each instruction with its source line where the
    object's BTF line info gives one."""

    id: int
    name: str
    type: str
    insns: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ProgRunParams:
    program: int | str = documented("program id or name")
    data: bytes = documented(f"the frame (at most {MAX_TEST_DATA:,} bytes; the device "
                             "takes 14 to 3520)")
    repeat: int = ranged(0, U32, default=1, doc="runs (0 runs once)")
    data_size_out: int = ranged(0, U32, default=0, doc="room for the frame as it leaves "
                                                       "(0: as much as it needs)")


@dataclass(frozen=True, slots=True)
class ProgRunResult:
    program: int
    retval: int
    action: str
    duration_ns: int
    data_out: bytes


# -- maps and events -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MapUpdateParams:
    map: int | str = documented("map id or name")
    key: bytes = documented("the key's bytes")
    value: bytes = documented("the value's bytes")
    flags: int = ranged(0, U64, default=0, doc="BPF_ANY, BPF_NOEXIST, BPF_EXIST...")


@dataclass(frozen=True, slots=True)
class MapUpdateResult:
    map: int


@dataclass(frozen=True, slots=True)
class MapItemsParams:
    map: int | str = documented("map id or name")


@dataclass(frozen=True, slots=True)
class MapItemsResult:
    items: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class MapKeyParams:
    map: int | str = documented("map id or name")
    key: bytes = documented("the key's bytes")


@dataclass(frozen=True, slots=True)
class MapLookupResult:
    map: int
    value: bytes
    formatted: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class MapParams:
    map: int | str = documented("map id or name")


@dataclass(frozen=True, slots=True)
class MapResult:
    map: int


@dataclass(frozen=True, slots=True)
class MapFreeResult:
    """``freed``: the map is gone; false while a program still uses it (it goes with the
    last of them)."""

    map: int
    freed: bool


@dataclass(frozen=True, slots=True)
class MapDumpResult:
    map: int
    name: str
    items: list[tuple[bytes, bytes]]
    formatted: list[dict[str, Any]] | None


@dataclass(frozen=True, slots=True)
class EventsReadParams:
    max: int = ranged(1, MAX_EVENTS, default=MAX_EVENTS, doc="records to take at most")


@dataclass(frozen=True, slots=True)
class EventsReadResult:
    device: str
    events: list[dict[str, Any]]
    backlog: int
    streams: list[dict[str, Any]]
    lost: int


# -- packet capture --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CaptureStartParams:
    what: str = documented("`rx`, `tx`, `drop`, `all` or a comma list", default="all")
    count: int | None = ranged(1, U32, default=None, doc="frames, then the capture is full")
    snaplen: int = ranged(1, 65535, default=65535, doc="bytes kept of each frame")
    buffer: int = ranged(1, 65536, default=4096,
                         doc="frames held unread; more are counted as lost")


@dataclass(frozen=True, slots=True)
class CaptureStartResult:
    capture: int
    what: list[str]


@dataclass(frozen=True, slots=True)
class CaptureParams:
    capture: int = ranged(0, U32, doc="the id capture.start gave")


@dataclass(frozen=True, slots=True)
class CaptureReadParams:
    capture: int = ranged(0, U32, doc="the id capture.start gave")
    max: int = ranged(1, MAX_CAPTURE_READ, default=1000, doc="frames to take at most")


@dataclass(frozen=True, slots=True)
class CaptureReadResult:
    frames: list[dict[str, Any]]
    recorded: int
    lost: int
    full: bool


@dataclass(frozen=True, slots=True)
class CaptureStopResult:
    capture: int
    recorded: int
    lost: int


# -- checkpoint and restore ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CheckpointBeginParams:
    samples: int = ranged(0, 4096, default=0,
                          doc="up to this many recently received frames in the snapshot "
                              "(the device samples with `device serve --sample-ring N`)")


@dataclass(frozen=True, slots=True)
class CheckpointBeginResult:
    transfer: int
    size: int
    programs: int
    maps: int
    entries: int
    source: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckpointReadParams:
    transfer: int = ranged(0, U63, doc="from checkpoint.begin")
    offset: int = ranged(0, U63, doc="bytes into the payload")
    size: int = ranged(0, U63, default=CHUNK, doc="bytes to read (at most 1 MiB are)")


@dataclass(frozen=True, slots=True)
class CheckpointReadResult:
    data: bytes


@dataclass(frozen=True, slots=True)
class RestoreBeginParams:
    size: int = ranged(0, U64, doc=f"the payload's bytes (1 to {MAX_UPLOAD}, else E2BIG)")


@dataclass(frozen=True, slots=True)
class RestoreBeginResult:
    transfer: int
    expected: int


@dataclass(frozen=True, slots=True)
class RestoreWriteParams:
    transfer: int = ranged(0, U63, doc="from restore.begin")
    data: bytes = documented("the next chunk")


@dataclass(frozen=True, slots=True)
class RestoreWriteResult:
    received: int


@dataclass(frozen=True, slots=True)
class StampParams:
    """A snapshot's source stamp as the client verified it (migrate.freshness.SourceStamp)."""

    device_id: str = documented("16 bytes as hex")
    name: str = documented("the source device")
    generation: int = ranged(0, U64, doc="its checkpoint's generation")


@dataclass(frozen=True, slots=True)
class RestoreCommitParams:
    transfer: int = ranged(0, U63, doc="from restore.begin")
    allow_fallback: bool = documented("keep what the target cannot offload in the guest",
                                      default=False)
    dry_run: bool = documented("plan only, change nothing", default=False)
    source: StampParams | None = documented("the file's stamp", default=None)
    authenticated: bool = documented("a signature or MAC verified", default=False)
    no_rollback: bool = documented("refuse an older generation of the source", default=False)
    prove: bool = documented("show first, on scratch devices, that the restored program "
                             "treats the frames as the source's did (migrate/proof.py)",
                             default=False)
    prove_frames: list[bytes] | None = documented(
        "frames to prove with instead of the snapshot's sample", default=None)


@dataclass(frozen=True, slots=True)
class RestoreResult:
    plan: dict[str, Any]
    dry_run: bool
    maps: dict[str, int]
    programs: dict[str, int]
    attached: str | None
    fallback: list[str]
    entries: int
    source: str
    proof: dict[str, Any] | None = None


# -- traffic and live migration --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TrafficSetParams:
    kind: str | None = documented("`synthetic`, `pcap:FILE` or `none`", default=None)
    rate: float | None = documented("frames per second", default=None)


@dataclass(frozen=True, slots=True)
class TrafficResult:
    traffic: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class MigrateStartParams:
    to: str = documented("control socket path, `tcp:HOST:PORT` or `unix:PATH`")
    downtime_target: float = documented("seconds", default=0.05)
    max_rounds: int = ranged(0, U32, default=30, doc="pre-copy rounds at most")
    hold: bool = documented("pre-copy until `migrate.cut` (a VM's migration decides the cut)",
                            default=False)
    prove: bool = documented("the destination proves the state on the full copy and at the "
                             "cut, with the sampled frames (docs/restore-proof.md)",
                             default=False)
    samples: int = ranged(0, 4096, default=0,
                          doc="sampled frames the proof runs, at most (0: all the sample "
                              "ring holds)")


@dataclass(frozen=True, slots=True)
class MigrateStartResult:
    migrating: str
    to: str


@dataclass(frozen=True, slots=True)
class MigrateControlResult:
    migration: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MigrateIncomingParams:
    allow_fallback: bool = documented("keep what the target cannot offload in the guest",
                                      default=False)


@dataclass(frozen=True, slots=True)
class MigrateIncomingResult:
    accepted: bool = field(default=True)
