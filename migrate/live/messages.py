"""The messages of the live-migration protocol and their payloads (docs/live-migration.md).

Every message but ``SnapshotChunk`` is a msgpack map read back through
:class:`migrate.schema.Fields`, so a malformed field is refused by name; ``SnapshotChunk``
carries bytes of the snapshot payload (docs/snapshot-format.md) as they are.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from ..errors import SnapshotError
from ..schema import MAX_NAME, MAX_TEXT, U32, U64, Fields, Tuple
from .errors import ProtocolViolation
from .frames import MAX_PAYLOAD, Frame, FrameType, encode_frame
from .proof_record import LiveProof

MAGIC = "offload-migrate live"
MAX_LIST = 1 << 16


class Message:
    TYPE: ClassVar[FrameType]

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def parse(cls, f: Fields) -> Message:
        raise NotImplementedError

    def encode(self) -> bytes:
        return encode_frame(self.TYPE, msgpack.packb(self.fields(), use_bin_type=True))


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Source -> destination: who speaks, which protocol versions and snapshot formats."""

    TYPE: ClassVar[FrameType] = FrameType.HELLO
    protocols: tuple[int, ...]
    formats: tuple[int, ...]
    device: str
    profile: str
    cpus: int
    prove: bool = False  # protocol 2: the destination proves before READY and at the cut

    def fields(self) -> dict[str, Any]:
        out = {"magic": MAGIC, "protocols": list(self.protocols), "formats": list(self.formats),
               "device": self.device, "profile": self.profile, "cpus": self.cpus}
        if self.prove:  # only when asked, so a version 1 destination still reads the rest
            out["prove"] = True
        return out

    @classmethod
    def parse(cls, f: Fields) -> Hello:
        if f.str("magic", 64) != MAGIC:
            raise ProtocolViolation("the peer's hello does not name this protocol: it is not an "
                                    "offload-migrate migration source.")
        return cls(_ints(f, "protocols"), _ints(f, "formats"), f.str("device", MAX_NAME),
                   f.str("profile", MAX_NAME), f.int("cpus", 1, 1 << 14),
                   f.bool("prove", False))


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Destination -> source: the protocol version and snapshot format both will use."""

    TYPE: ClassVar[FrameType] = FrameType.WELCOME
    protocol: int
    format: int
    device: str
    profile: str

    def fields(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "format": self.format, "device": self.device,
                "profile": self.profile}

    @classmethod
    def parse(cls, f: Fields) -> Welcome:
        return cls(f.int("protocol", 1, U32), f.int("format", 1, U32),
                   f.str("device", MAX_NAME), f.str("profile", MAX_NAME))


@dataclass(frozen=True, slots=True)
class Refuse(Message):
    """Destination -> source: it will not (or can no longer) take the state; it rolled back."""

    TYPE: ClassVar[FrameType] = FrameType.REFUSE
    code: str
    reason: str

    def fields(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason}

    @classmethod
    def parse(cls, f: Fields) -> Refuse:
        return cls(f.str("code", 64), f.str("reason", MAX_TEXT))


@dataclass(frozen=True, slots=True)
class Abort(Message):
    """Source -> destination: the source resumed; roll back."""

    TYPE: ClassVar[FrameType] = FrameType.ABORT
    reason: str

    def fields(self) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def parse(cls, f: Fields) -> Abort:
        return cls(f.str("reason", MAX_TEXT))


@dataclass(frozen=True, slots=True)
class SnapshotChunk(Message):
    """Bytes of the snapshot payload, in order."""

    TYPE: ClassVar[FrameType] = FrameType.SNAPSHOT
    data: bytes

    def encode(self) -> bytes:
        return encode_frame(self.TYPE, self.data)


@dataclass(frozen=True, slots=True)
class SnapshotEnd(Message):
    """The snapshot payload is complete: ``length`` bytes with this CRC-32."""

    TYPE: ClassVar[FrameType] = FrameType.SNAPSHOT_END
    length: int
    crc: int

    def fields(self) -> dict[str, Any]:
        return {"length": self.length, "crc": self.crc}

    @classmethod
    def parse(cls, f: Fields) -> SnapshotEnd:
        return cls(f.int("length", 0, U64), f.int("crc", 0, U32))


@dataclass(frozen=True, slots=True)
class Progress(Message):
    """Destination -> source while it restores: keeps the source's read timeout honest."""

    TYPE: ClassVar[FrameType] = FrameType.PROGRESS
    stage: str
    done: int
    total: int

    def fields(self) -> dict[str, Any]:
        return {"stage": self.stage, "done": self.done, "total": self.total}

    @classmethod
    def parse(cls, f: Fields) -> Progress:
        return cls(f.str("stage", MAX_NAME), f.int("done"), f.int("total"))


@dataclass(frozen=True, slots=True)
class Ready(Message):
    """Destination -> source: the full copy is restored (not attached yet)."""

    TYPE: ClassVar[FrameType] = FrameType.READY
    outcome: str
    entries: int
    restore_ns: int
    proof: LiveProof | None = None  # protocol 2, when HELLO asked for it: the full copy's

    def fields(self) -> dict[str, Any]:
        return _with_proof({"outcome": self.outcome, "entries": self.entries,
                            "restore_ns": self.restore_ns}, self.proof)

    @classmethod
    def parse(cls, f: Fields) -> Ready:
        return cls(f.str("outcome", 32), f.int("entries"), f.int("restore_ns"), _proof(f))


@dataclass(frozen=True, slots=True)
class Delta(Message):
    """Entries of one map that changed in a round. ``keys``/``values`` are packed as in a
    snapshot ``entries`` record (per-CPU values one per CPU of the source); for program
    arrays and map-in-map ``targets`` names the object of each key instead of ``values``;
    ``gone`` packs the keys deleted. ``crc`` covers keys, values, targets and gone."""

    TYPE: ClassVar[FrameType] = FrameType.DELTA
    round: int
    map: str
    count: int
    keys: bytes
    values: bytes
    gone: bytes
    targets: tuple[str, ...] | None = None

    def crc(self) -> int:
        crc = zlib.crc32(self.values, zlib.crc32(self.keys))
        for target in self.targets or ():
            crc = zlib.crc32(target.encode("utf-8", "surrogatepass") + b"\0", crc)
        return zlib.crc32(self.gone, crc)

    def fields(self) -> dict[str, Any]:
        return {"round": self.round, "map": self.map, "count": self.count, "keys": self.keys,
                "values": self.values, "gone": self.gone,
                "targets": None if self.targets is None else list(self.targets),
                "crc": self.crc()}

    @classmethod
    def parse(cls, f: Fields) -> Delta:
        targets = None
        if f.record.get("targets", 0) is None:
            f.opt_int("targets")  # present and nil: a data map
        else:
            raw_targets = f.list("targets", MAX_LIST)
            t = Tuple(raw_targets, f"{f.where}, targets")
            targets = tuple(t.str(i, MAX_NAME, empty=False) for i in range(len(raw_targets)))
        delta = cls(f.int("round", 0, U32), f.str("map", MAX_NAME, empty=False),
                    f.int("count", 0, U32), f.bytes("keys", MAX_PAYLOAD),
                    f.bytes("values", MAX_PAYLOAD), f.bytes("gone", MAX_PAYLOAD), targets)
        if f.int("crc", 0, U32) != delta.crc():
            raise ProtocolViolation(f"{f.where}: the delta of map {delta.map!r} does not match "
                                    f"its CRC-32: it was damaged in transit.")
        if targets is not None and (len(targets) != delta.count or delta.values):
            raise ProtocolViolation(f"{f.where}: a delta of links needs one target per key and "
                                    f"no values.")
        return delta


@dataclass(frozen=True, slots=True)
class RoundEnd(Message):
    TYPE: ClassVar[FrameType] = FrameType.ROUND_END
    round: int
    entries: int

    def fields(self) -> dict[str, Any]:
        return {"round": self.round, "entries": self.entries}

    @classmethod
    def parse(cls, f: Fields) -> RoundEnd:
        return cls(f.int("round", 0, U32), f.int("entries"))


@dataclass(frozen=True, slots=True)
class RoundAck(Message):
    TYPE: ClassVar[FrameType] = FrameType.ROUND_ACK
    round: int
    entries: int
    apply_ns: int

    def fields(self) -> dict[str, Any]:
        return {"round": self.round, "entries": self.entries, "apply_ns": self.apply_ns}

    @classmethod
    def parse(cls, f: Fields) -> RoundAck:
        return cls(f.int("round", 0, U32), f.int("entries"), f.int("apply_ns"))


#: Per-program action counters in FINAL: name, aborted, drop, pass, tx, redirect, bytes.
COUNTER_FIELDS = ("aborted", "drop", "pass_", "tx", "redirect", "bytes")


@dataclass(frozen=True, slots=True)
class Final(Message):
    """The source is paused: the last delta came before this; counters as they stand."""

    TYPE: ClassVar[FrameType] = FrameType.FINAL
    round: int
    entries: int
    programs: tuple[tuple[str, tuple[int, ...]], ...]
    ports: tuple[tuple[str, int], ...]

    def fields(self) -> dict[str, Any]:
        return {"round": self.round, "entries": self.entries,
                "programs": [[name, *values] for name, values in self.programs],
                "ports": [[name, value] for name, value in self.ports]}

    @classmethod
    def parse(cls, f: Fields) -> Final:
        width = 1 + len(COUNTER_FIELDS)
        programs = f.items("programs", MAX_LIST, lambda t, _: (
            t.length(width).str(0, MAX_NAME, empty=False),
            tuple(t.int(i) for i in range(1, width))))
        ports = f.items("ports", 64, lambda t, _: (t.length(2).str(0, 64, empty=False),
                                                   t.int(1)))
        return cls(f.int("round", 0, U32), f.int("entries"), tuple(programs), tuple(ports))


@dataclass(frozen=True, slots=True)
class Committed(Message):
    """Destination -> source: the state runs here now; the source may release its copy."""

    TYPE: ClassVar[FrameType] = FrameType.COMMITTED
    entries: int
    commit_ns: int
    proof: LiveProof | None = None  # protocol 2, when HELLO asked for it: the final state's

    def fields(self) -> dict[str, Any]:
        return _with_proof({"entries": self.entries, "commit_ns": self.commit_ns}, self.proof)

    @classmethod
    def parse(cls, f: Fields) -> Committed:
        return cls(f.int("entries"), f.int("commit_ns"), _proof(f))


MESSAGES: dict[FrameType, type[Message]] = {
    cls.TYPE: cls for cls in (Hello, Welcome, Refuse, Abort, SnapshotChunk, SnapshotEnd,
                              Progress, Ready, Delta, RoundEnd, RoundAck, Final, Committed)}


def decode_message(frame: Frame) -> Message:
    """The message a frame carries; :class:`ProtocolViolation` for anything malformed."""
    cls = MESSAGES[frame.type]
    if cls is SnapshotChunk:
        return SnapshotChunk(frame.payload)
    try:
        raw = msgpack.unpackb(frame.payload, raw=False, strict_map_key=True, max_ext_len=0,
                              max_map_len=64, max_array_len=MAX_LIST, max_str_len=MAX_TEXT,
                              max_bin_len=MAX_PAYLOAD)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ProtocolViolation(f"a {frame.type.name} frame does not hold a valid msgpack "
                                f"message: {exc}.") from None
    try:
        f = Fields(raw, f"the {frame.type.name} message")
        message = cls.parse(f)
        f.done()
    except SnapshotError as exc:
        raise ProtocolViolation(str(exc)) from None
    return message


def _with_proof(fields: dict[str, Any], proof: LiveProof | None) -> dict[str, Any]:
    if proof is not None:
        fields["proof"] = proof.fields()
    return fields


def _proof(f: Fields) -> LiveProof | None:
    sub = f.sub("proof", None)
    return None if sub is None else LiveProof.parse(sub)


def _ints(f: Fields, key: str) -> tuple[int, ...]:
    items = f.list(key, 64)
    t = Tuple(items, f"{f.where}, {key}")
    return tuple(t.int(i, 1, U32) for i in range(len(items)))
