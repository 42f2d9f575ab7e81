"""The snapshot model: a device's offloaded state as plain, comparable data.

Following the spec-versus-live split (cilium/ebpf's ``MapSpec``/``Map``), a snapshot is specs
plus contents: each program is its original :class:`ProgramSpec` - bytecode as the object file
defined it, before any device-side rewriting, with its symbolic map references - so a target
re-resolves and re-verifies it; each map is its :class:`MapSpec` plus its contents. The
negotiated virtio feature bits travel along because a target must offer every one of them, as on
any virtio migration (virtio 1.2, 2.2). ``migrate.codec`` turns a snapshot into bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from importlib import metadata

from offload.caps.capabilities import Capabilities
from offload.maps.spec import MapSpec
from offload.program import ProgramSpec
from offload.uapi import MapType, XdpAction, XdpMode

from .entries import MapEntries
from .errors import SnapshotError
from .payload_head import FORMAT_VERSION, MAGIC

#: Map types whose values name other objects (program fds, inner map fds on a live device).
LINK_MAP_TYPES = frozenset({MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS})


def tool_version() -> str:
    try:
        return metadata.version("offload-migrate")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class AttachPoint:
    """``xdp:hw`` on ``interface`` (one rx ``queue``, or every queue when None)."""

    interface: str
    mode: XdpMode = XdpMode.HW
    queue: int | None = None
    hook: str = "xdp"

    def __str__(self) -> str:
        queue = "" if self.queue is None else f" queue {self.queue}"
        return f"{self.hook}:{self.mode.name.lower()} on {self.interface}{queue}"


@dataclass(frozen=True, slots=True)
class VerifierStats:
    """What the source's verifier reported (the kernel's ``processed N insns`` line)."""

    insns_processed: int = 0
    total_states: int = 0
    peak_states: int = 0
    stack_depth: tuple[int, ...] = ()  # bytes per function, main first

    @classmethod
    def of(cls, stats: object) -> VerifierStats:
        """Copy the counters of ``offload.verifier``'s stats (its log stays behind)."""
        return cls(int(getattr(stats, "insns_processed", 0)),
                   int(getattr(stats, "total_states", 0)),
                   int(getattr(stats, "peak_states", 0)),
                   tuple(int(d) for d in getattr(stats, "stack_depth", ())))


@dataclass(frozen=True, slots=True)
class ActionCounter:
    """Frames (and their bytes) a program ended with ``action``."""

    action: XdpAction
    packets: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class ProgramState:
    """A loaded program: its original spec, where it is attached, what it cost and did."""

    spec: ProgramSpec
    attach: AttachPoint | None = None
    verifier: VerifierStats = field(default_factory=VerifierStats)
    counters: tuple[ActionCounter, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    def packets(self, action: XdpAction) -> int:
        return sum(c.packets for c in self.counters if c.action == action)


@dataclass(frozen=True, slots=True)
class MapLink:
    """An entry of a PROG_ARRAY or map-in-map: ``key`` names the program or map ``target``.

    Live devices hold handles there; a snapshot holds names, resolved again on restore.
    """

    key: bytes
    target: str


@dataclass(frozen=True, slots=True)
class MapState:
    """A map: its spec (initial contents dropped), its current contents, whether it is frozen.

    Data maps keep ``entries``; PROG_ARRAY and map-in-map maps keep ``links`` instead.
    """

    spec: MapSpec
    entries: MapEntries | None = None
    links: tuple[MapLink, ...] = ()
    frozen: bool = False

    def __post_init__(self) -> None:
        if self.spec.contents:  # the current contents supersede what the object file held
            object.__setattr__(self, "spec", replace(self.spec, contents=()))
        if self.entries is None:
            object.__setattr__(self, "entries", MapEntries(self.spec.key_size,
                                                           self.spec.value_size, 1))
        assert self.entries is not None
        if (self.entries.key_size, self.entries.value_size) != \
                (self.spec.key_size, self.spec.value_size):
            raise SnapshotError(f"map {self.spec.name!r}: contents of {self.entries.key_size}-"
                                f"byte keys and {self.entries.value_size}-byte values do not "
                                f"match its spec ({self.spec.key_size}/{self.spec.value_size}).")
        if self.entries.cpus != 1 and not self.spec.type.is_percpu:
            raise SnapshotError(f"map {self.spec.name!r} of type {self.spec.type.name} has one "
                                f"value per entry, not {self.entries.cpus} (one per CPU).")
        if self.spec.type in LINK_MAP_TYPES:
            if self.entries.materialised and len(self.entries):
                raise SnapshotError(f"map {self.spec.name!r} of type {self.spec.type.name} "
                                    f"holds references: give them as links, not values.")
        elif self.links:
            raise SnapshotError(f"map {self.spec.name!r} of type {self.spec.type.name} holds "
                                f"values, not links to other objects.")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def entry_count(self) -> int:
        return len(self.links) if self.spec.type in LINK_MAP_TYPES else len(self.entries or ())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One device's offloaded state at one moment."""

    device: str
    capabilities: Capabilities
    features: int  # negotiated virtio feature bits
    programs: tuple[ProgramState, ...] = ()
    maps: tuple[MapState, ...] = ()
    counters: tuple[tuple[str, int], ...] = ()  # device-wide counters by name
    cpus: int = 1  # values per entry of per-CPU maps
    created_ns: int = field(default_factory=time.time_ns)
    tool_version: str = field(default_factory=tool_version)
    magic: bytes = MAGIC
    format_version: int = FORMAT_VERSION
    #: frames the device received, oldest first, kept for a restore's proof (migrate/proof.py)
    samples: tuple[bytes, ...] = ()

    def program(self, name: str) -> ProgramState:
        for prog in self.programs:
            if prog.name == name:
                return prog
        raise KeyError(name)

    def map(self, name: str) -> MapState:
        for m in self.maps:
            if m.name == name:
                return m
        raise KeyError(name)
