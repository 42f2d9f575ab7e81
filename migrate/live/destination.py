"""The destination of a live migration: receive, restore, apply, commit - or roll back.

It welcomes a source that speaks a common protocol version and snapshot format, spools the
full copy (in memory up to ``SPOOL_MEMORY``, then in a temporary file), decodes it with the
codec's limits and checks (CRC per chunk, schema, upgrade chain), and restores it through its
driver - the target's verifier and limits decide, and an incompatible plan is a refusal sent
back to the source. Deltas go through the same control path; FINAL carries the counters, then
the commit attaches the program and COMMITTED goes back. Any failure - a truncated stream, a
timeout, a malformed message, an abort from the source, a refusal of its own - removes
everything it created and raises a :class:`MigrationError` subclass carrying the report.
"""

from __future__ import annotations

import socket
import tempfile
import time
import zlib

from offload.device import DevicePair
from offload.errors import OffloadError

from ..codec import DecodeLimits, read_snapshot
from ..errors import SnapshotError
from ..restore import IncompatibleTarget
from ..snapshot import FORMAT_VERSION
from .channel import Channel
from .errors import DestinationRefused, MigrationError, ProtocolViolation, SourceAborted
from .messages import (
    Abort,
    Committed,
    Delta,
    Final,
    Hello,
    Message,
    Progress,
    Ready,
    Refuse,
    RoundAck,
    RoundEnd,
    SnapshotChunk,
    SnapshotEnd,
    Welcome,
)
from .proof_record import LiveProof, proof_summary
from .protocol import PROTOCOL_VERSIONS, Connection, Role, State
from .proving import Prover, ScratchFactory
from .report import MigrationOutcome, MigrationReport, RoundStats
from .target import TargetState

SPOOL_MEMORY = 64 << 20
PROGRESS_EVERY = 0.5  # seconds between PROGRESS frames while restoring
#: Snapshot formats this reader takes (older ones through codec.UPGRADES).
READ_FORMATS = tuple(range(1, FORMAT_VERSION + 1))


class MigrationDestination:
    """Take a migrating device's state into ``pair`` (its driver restores through the
    control path). ``allow_fallback`` lets programs the target cannot run stay in the guest.
    ``scratch`` gives the scratch devices a proof runs on when the source asks for one
    (migrate/live/proving.py); without it such a migration is refused."""

    def __init__(self, pair: DevicePair, allow_fallback: bool = False, *,
                 timeout: float = 30.0, limits: DecodeLimits = DecodeLimits(),
                 scratch: ScratchFactory | None = None) -> None:
        self.pair = pair
        self.allow_fallback = allow_fallback
        self.timeout = timeout
        self.limits = limits
        #: what the last migration served here restored; ``rollback`` removes it even after
        #: the commit (a VM's switchover that failed once the device state had moved)
        self.target: TargetState | None = None
        self.scratch = scratch

    def serve(self, stream: socket.socket) -> MigrationReport:
        """Serve one migration on a connected ``stream``; the report, or an error after
        rolling back."""
        serve = _Serve(self, Channel(stream, Connection(Role.DESTINATION), self.timeout))
        self.target = serve.target
        return serve.go()


class _Serve:
    def __init__(self, dest: MigrationDestination, channel: Channel) -> None:
        self.dest = dest
        self.channel = channel
        self.target = TargetState(dest.pair)
        self.start = time.monotonic()
        self.details: list[RoundStats] = []
        self.hello: Hello | None = None
        self.welcome: Welcome | None = None
        self.downtime: float | None = None
        self.prover: Prover | None = None
        self.proofs: list[LiveProof] = []

    def report(self, outcome: MigrationOutcome, reason: str = "") -> MigrationReport:
        rounds = max(0, len(self.details) - (2 if self.downtime is not None else 1))
        return MigrationReport(
            "destination", outcome, rounds, self.channel.bytes_sent,
            self.channel.bytes_received, tuple(d.entries for d in self.details),
            time.monotonic() - self.start, self.downtime, None,
            self.welcome.protocol if self.welcome else None,
            self.welcome.format if self.welcome else None,
            self.hello.device if self.hello else "", reason, tuple(self.details),
            proof_summary(self.proofs[0] if self.proofs else None,
                          self.proofs[1] if len(self.proofs) > 1 else None))

    def go(self) -> MigrationReport:
        try:
            try:
                self._serve()
            finally:
                if self.prover is not None:
                    self.prover.close()
        except BaseException as exc:
            problems = self.target.rollback()
            tail = f" (undoing it failed: {'; '.join(problems)})" if problems else ""
            if isinstance(exc, MigrationError):
                self._refuse(exc)
                outcome = MigrationOutcome.REFUSED if isinstance(exc, DestinationRefused) \
                    else MigrationOutcome.FAILED
                exc.report = self.report(outcome, str(exc) + tail)
                self.channel.close(linger=1.0)
                raise
            self.channel.close()
            raise
        report = self.report(MigrationOutcome.COMPLETED)
        self.channel.close(linger=1.0)
        return report

    def _refuse(self, exc: MigrationError) -> None:
        conn = self.channel.connection
        if conn.state in (State.DONE, State.FAILED, State.HELLO):
            return
        code = getattr(exc, "code", "failed")
        try:
            self.channel.sock.settimeout(1.0)
            self.channel.sock.sendall(conn.send(Refuse(code, str(exc)[:4000])))
        except (OSError, MigrationError):
            conn.fail()

    def _receive(self) -> Message:
        message = self.channel.receive()
        if isinstance(message, Abort):
            raise SourceAborted(f"the source aborted the migration: {message.reason}")
        return message

    # ----------------------------------------------------------------- phases
    def _serve(self) -> None:
        ch = self.channel
        hello = self._receive()
        assert isinstance(hello, Hello)  # the protocol admits nothing else first
        self.hello = hello
        protocols = set(hello.protocols) & set(PROTOCOL_VERSIONS)
        formats = set(hello.formats) & set(READ_FORMATS)
        if not protocols or not formats:
            raise DestinationRefused(
                f"no common ground with the source: it speaks protocol "
                f"{list(hello.protocols)} and writes snapshot formats {list(hello.formats)}; "
                f"this destination speaks {list(PROTOCOL_VERSIONS)} and reads "
                f"{list(READ_FORMATS)}.", code="version")
        if hello.prove and (max(protocols) < 2 or self.dest.scratch is None):
            raise DestinationRefused("the source asks for a proof, which this destination "
                                     "cannot run.", code="proof")
        device = self.dest.pair.device
        self.welcome = Welcome(max(protocols), max(formats), device.name, device.caps.name)
        ch.send(self.welcome)
        self._copy()
        self._rounds()

    def _copy(self) -> None:
        ch = self.channel
        t0, received0 = time.monotonic(), ch.bytes_received
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
            crc = 0
            while isinstance(message := self._receive(), SnapshotChunk):
                spool.write(message.data)
                crc = zlib.crc32(message.data, crc)
            assert isinstance(message, SnapshotEnd)
            if message.length != spool.tell() or message.crc != crc:
                raise ProtocolViolation(f"the snapshot stream holds {spool.tell()} bytes with "
                                        f"CRC-32 {crc:#010x}; the source sent "
                                        f"{message.length} bytes with {message.crc:#010x}.")
            spool.seek(0)
            try:
                snapshot = read_snapshot(spool, self.dest.limits)
            except SnapshotError as exc:
                raise DestinationRefused(f"the snapshot cannot be read: {exc}",
                                         code="snapshot") from None
        last = [time.monotonic()]

        def progress(stage: str, done: int, total: int) -> None:
            if time.monotonic() - last[0] >= PROGRESS_EVERY:
                ch.send(Progress(stage, done, total))
                last[0] = time.monotonic()

        try:
            result = self.target.restore(snapshot, allow_fallback=self.dest.allow_fallback,
                                         progress=progress)
        except IncompatibleTarget as exc:
            raise DestinationRefused(str(exc), code="incompatible") from None
        except SnapshotError as exc:  # RestoreError: the target refused midway, undone
            raise DestinationRefused(str(exc), code="restore") from None
        proof = None
        if self.hello is not None and self.hello.prove and self.dest.scratch is not None:
            self.prover = Prover(snapshot, self.dest.scratch(snapshot), self.dest.allow_fallback)
            proof = self.prover.before(progress)
            self.proofs.append(proof)
        seconds = time.monotonic() - t0
        ch.send(Ready(result.plan.outcome.name, result.entries, int(seconds * 1e9), proof))
        self.details.append(RoundStats(0, result.entries, ch.bytes_received - received0,
                                       seconds))

    def _rounds(self) -> None:
        ch = self.channel
        t0, received0, entries = time.monotonic(), ch.bytes_received, 0
        while True:
            message = self._receive()
            if isinstance(message, Delta):
                entries += self._apply(message)
            elif isinstance(message, RoundEnd):
                seconds = time.monotonic() - t0
                ch.send(RoundAck(message.round, entries, int(seconds * 1e9)))
                self.details.append(RoundStats(message.round, entries,
                                               ch.bytes_received - received0, seconds))
                t0, received0, entries = time.monotonic(), ch.bytes_received, 0
            else:
                assert isinstance(message, Final)
                paused = time.monotonic()
                proof = None
                if self.prover is not None:  # the final state, before anything runs here
                    proof = self.prover.final(message)
                    self.proofs.append(proof)
                try:
                    self.target.commit(message)
                except OffloadError as exc:
                    raise DestinationRefused(f"the commit failed: {exc}", code="commit") \
                        from None
                ch.send(Committed(entries, int((time.monotonic() - paused) * 1e9), proof))
                self.downtime = time.monotonic() - paused
                self.details.append(RoundStats(message.round, entries,
                                               ch.bytes_received - received0,
                                               time.monotonic() - t0))
                return

    def _apply(self, delta: Delta) -> int:
        try:
            if self.prover is not None:
                self.prover.apply(delta)
            return self.target.apply(delta)
        except MigrationError:
            raise
        except OffloadError as exc:
            raise DestinationRefused(f"applying a delta of map {delta.map!r} failed: {exc}",
                                     code="delta") from None
