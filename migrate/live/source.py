"""The source of a live migration: pre-copy over a stream, then a short pause for the cut.

1. Hello; the destination welcomes (protocol version, snapshot format) or refuses.
2. Full copy: dirty tracking starts, then the snapshot (current format) streams in chunks
   while traffic keeps flowing; the destination restores it without attaching and says ready.
3. Rounds: the keys changed since the last take are resent with their current values (or as
   deleted); each round is acknowledged. Before each round the time to send the dirty set
   while paused is estimated from measured costs (a fixed round trip plus a per-entry cost,
   both taken from the rounds so far); once it fits ``downtime_target``, or after
   ``max_rounds``, the source pauses the receive path, drains its event streams and cpumap
   worker queues, sends the last delta and the counters, and waits for COMMITTED. Then it
   releases its state - or, given ``release``, keeps it paused until the caller decides:
   ``release`` set, it lets go; ``cancel`` set, it resumes with everything it had (a VM whose
   switchover failed after the device's commit runs on here; the destination's copy is the
   caller's to remove, service/vm_migration.py).

Any failure before COMMITTED arrives - a refusal, a closed connection, a timeout, a protocol
violation - unpauses the device and stops dirty tracking: the source runs on with everything
it had, and the error (a :class:`MigrationError` subclass) carries the report so far.
"""

from __future__ import annotations

import socket
import threading
import time
import zlib
from dataclasses import replace

from offload.device.device import Device

from ..codec import ChunkLimits, write_snapshot
from ..snapshot import FORMAT_VERSION
from .channel import Channel
from .errors import (
    ConnectionLost,
    DestinationRefused,
    MigrationCancelled,
    MigrationError,
    MigrationTimeout,
    ProtocolViolation,
)
from .messages import (
    Abort,
    Committed,
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
from .report import MigrationOutcome, MigrationReport, RoundStats
from .tracking import DirtyMaps, SourceState

SEND_CHUNK = 256 << 10  # snapshot bytes per SNAPSHOT frame
POLL_EVERY = 16  # frames between looks for a refusal while copying
HOLD_ROUND = 0.05  # seconds between rounds while held


class _Sink:
    """The snapshot writer's output stream: bytes go out in SNAPSHOT frames."""

    def __init__(self, channel: Channel, cancel: threading.Event | None) -> None:
        self.channel = channel
        self.cancel = cancel
        self.buf = bytearray()
        self.total = 0
        self.crc = 0
        self.frames = 0

    def write(self, data: bytes) -> int:
        self.buf += data
        self.total += len(data)
        self.crc = zlib.crc32(data, self.crc)
        while len(self.buf) >= SEND_CHUNK:
            self._send(bytes(self.buf[:SEND_CHUNK]))
            del self.buf[:SEND_CHUNK]
        return len(data)

    def flush(self) -> None:
        if self.buf:
            self._send(bytes(self.buf))
            self.buf.clear()

    def _send(self, data: bytes) -> None:
        self.channel.send(SnapshotChunk(data))
        self.frames += 1
        if self.frames % POLL_EVERY == 0 and (early := self.channel.poll()) is not None:
            raise _refusal(early)
        if self.cancel is not None and self.cancel.is_set():
            raise MigrationCancelled("the migration was cancelled during the full copy.")


def _refusal(message: Message) -> MigrationError:
    if isinstance(message, Refuse):
        return DestinationRefused(f"the destination refused the migration: {message.reason}",
                                  code=message.code)
    return ProtocolViolation(f"the destination sent {message.TYPE.name} out of turn.")


class MigrationSource:
    """Migrate ``device``'s offloaded state to whoever is at the other end of ``stream``.

    ``lock`` is the lock the caller's traffic thread holds around ``device.receive`` (one is
    made if none is given: take it as ``source.lock``); the migration holds it only per chunk.
    ``timeout`` bounds every read and write on the stream. ``hold`` and ``cancel`` (module
    docstring) hand the moment of the cut, or the decision to give up, to the caller;
    ``phase`` says where the run is: ``connecting``, ``copy``, ``precopy`` (the destination
    planned and restored the full copy), ``final``, ``committed`` (waiting for ``release``),
    ``done``. ``prove`` asks the destination to prove the state before the rounds and at the
    cut (migrate/live/proving.py) with up to ``samples`` of the frames the device's sample
    ring holds, sent in the full copy.
    """

    def __init__(self, device: Device, downtime_target: float = 0.05, max_rounds: int = 30, *,
                 lock: threading.Lock | None = None, timeout: float = 30.0,
                 chunks: ChunkLimits = ChunkLimits(), hold: threading.Event | None = None,
                 cancel: threading.Event | None = None,
                 release: threading.Event | None = None, prove: bool = False,
                 samples: int = 0) -> None:
        if downtime_target <= 0 or max_rounds < 0 or timeout <= 0:
            raise ValueError("downtime_target and timeout must be positive, max_rounds at "
                             "least 0.")
        self.device = device
        self.downtime_target = downtime_target
        self.max_rounds = max_rounds
        self.lock = lock if lock is not None else threading.Lock()
        self.timeout = timeout
        self.chunks = chunks
        self.hold = hold
        self.cancel = cancel
        self.release = release
        self.prove = prove
        self.samples = samples
        self.phase = "connecting"
        self.plan: str | None = None  # the destination's plan outcome, once READY came
        #: the transfers so far (round 0 the full copy) and the downtime the last estimate
        #: predicted, for a live view while the run goes on (another thread reads them)
        self.rounds: list[RoundStats] = []
        self.estimate: float | None = None

    def run(self, stream: socket.socket) -> MigrationReport:
        run = _Run(self, Channel(stream, Connection(Role.SOURCE), self.timeout))
        return run.go()


class _Run:
    def __init__(self, source: MigrationSource, channel: Channel) -> None:
        self.source = source
        self.device = source.device
        self.channel = channel
        self.start = time.monotonic()
        self.details: list[RoundStats] = []
        source.rounds = self.details
        self.paused_at: float | None = None
        self.downtime: float | None = None
        self.welcome: Welcome | None = None
        self.state: SourceState | None = None
        self.base = 0.0  # seconds a round costs besides its entries (round trip, commit)
        self.per_entry = 0.0
        self.proofs: list[LiveProof] = []

    def report(self, outcome: MigrationOutcome, reason: str = "") -> MigrationReport:
        return MigrationReport(
            "source", outcome, max(0, len(self.details) - 2 if self.downtime is not None
                                   else len(self.details) - 1),
            self.channel.bytes_sent, self.channel.bytes_received,
            tuple(d.entries for d in self.details), time.monotonic() - self.start,
            self.downtime, self.source.downtime_target,
            self.welcome.protocol if self.welcome else None,
            self.welcome.format if self.welcome else None,
            self.welcome.device if self.welcome else "", reason, tuple(self.details),
            proof_summary(self.proofs[0] if self.proofs else None,
                          self.proofs[1] if len(self.proofs) > 1 else None))

    def go(self) -> MigrationReport:
        try:
            self._migrate()
        except BaseException as exc:
            self._resume()
            if isinstance(exc, MigrationError):
                outcome = MigrationOutcome.REFUSED if isinstance(exc, DestinationRefused) \
                    else MigrationOutcome.CANCELLED if isinstance(exc, MigrationCancelled) \
                    else MigrationOutcome.FAILED
                exc.report = self.report(outcome, str(exc))
                self._abort(str(exc))
                raise
            if isinstance(exc, OSError):
                error = ConnectionLost(f"the migration stream failed: {exc}.")
                error.report = self.report(MigrationOutcome.FAILED, str(error))
                self._abort(str(error))
                raise error from exc
            self._abort(f"the source failed: {type(exc).__name__}")
            raise
        report = self.report(MigrationOutcome.COMPLETED)
        if self.source.release is not None:
            self._await_release(report)
        with self.source.lock:
            assert self.state is not None
            self.state.release()
            self.device.paused = False
        self.source.phase = "done"
        self.channel.close(linger=1.0)
        return report

    # ----------------------------------------------------------------- phases
    def _migrate(self) -> None:
        ch = self.channel
        t0 = time.monotonic()
        ch.send(Hello(PROTOCOL_VERSIONS, (FORMAT_VERSION,), self.device.name,
                      self.device.caps.name, int(getattr(self.device.backend, "ncpus", 1)),
                      self.source.prove))
        answer = ch.receive()
        if not isinstance(answer, Welcome):
            raise _refusal(answer)
        self.welcome = answer
        self._check_cancel()
        self.base = time.monotonic() - t0
        self.state = SourceState(self.device, self.source.lock)

        self.source.phase = "copy"
        t0, sent0 = time.monotonic(), ch.bytes_sent
        sink = _Sink(ch, self.source.cancel)
        samples = self.source.samples if self.source.prove else 0
        stats = write_snapshot(sink, self.state.snapshot(samples), self.source.chunks)
        sink.flush()
        ch.send(SnapshotEnd(sink.total, sink.crc))
        while not isinstance(answer := ch.receive(), Ready):
            if not isinstance(answer, Progress):
                raise _refusal(answer)
        self.source.plan = answer.outcome
        if answer.proof is not None:
            self.proofs.append(answer.proof)
        self.source.phase = "precopy"
        seconds = time.monotonic() - t0
        self.details.append(RoundStats(0, stats.entries, ch.bytes_sent - sent0, seconds))
        if stats.entries:
            self.per_entry = max(0.0, seconds - self.base) / stats.entries

        if self.source.hold is not None:
            self._held()
            return
        round_no = 1
        while True:
            self._check_cancel()  # every round looks, held or not
            dirty = self.state.take_dirty()
            count = self.state.count(dirty)
            estimate = self.source.estimate = 2 * self.base + count * self.per_entry
            if estimate <= self.source.downtime_target or round_no > self.source.max_rounds:
                self._final(dirty, round_no, estimate)
                return
            self._round(dirty, round_no, count, estimate)
            round_no += 1

    def _held(self) -> None:
        """Rounds of what changed until ``hold`` is set, then the final round."""
        assert self.state is not None and self.source.hold is not None
        round_no = 1
        while True:
            cut = self.source.hold.wait(HOLD_ROUND)
            self._check_cancel()
            dirty = self.state.take_dirty()
            count = self.state.count(dirty)
            estimate = self.source.estimate = 2 * self.base + count * self.per_entry
            if cut:
                self._final(dirty, round_no, estimate)
                return
            if count:
                self._round(dirty, round_no, count, estimate)
                round_no += 1
            elif (early := self.channel.poll()) is not None:
                raise _refusal(early)

    def _check_cancel(self) -> None:
        if self.source.cancel is not None and self.source.cancel.is_set():
            raise MigrationCancelled("the migration was cancelled before the cut.")

    def _round(self, dirty: DirtyMaps, round_no: int, count: int,
               estimate: float) -> None:
        assert self.state is not None
        ch = self.channel
        t0, sent0 = time.monotonic(), ch.bytes_sent
        for delta in self.state.deltas(dirty, round_no):
            ch.send(delta)
        ch.send(RoundEnd(round_no, count))
        ack = ch.receive()
        if not isinstance(ack, RoundAck) or ack.round != round_no:
            raise _refusal(ack)
        seconds = time.monotonic() - t0
        self.details.append(RoundStats(round_no, count, ch.bytes_sent - sent0, seconds,
                                       estimate))
        if count:  # a moving average of the per-entry cost, the round trip taken out
            sample = max(0.0, seconds - self.base) / count
            self.per_entry = sample if not self.per_entry else \
                0.5 * self.per_entry + 0.5 * sample

    def _final(self, dirty: DirtyMaps, round_no: int, estimate: float) -> None:
        assert self.state is not None
        ch = self.channel
        self.source.phase = "final"
        with self.source.lock:
            self.device.paused = True
            self.paused_at = time.monotonic()
            self.state.check_unchanged()
            # What the source's programs produced stays with the source: frames waiting in
            # cpumap worker queues go on to the guest, and event records leave the perf
            # event arrays and ring buffers (which are recreated empty on the destination)
            # for the device's backlog, where its reader still finds them after the cut.
            self.device.run_workers()
            self.device.collect_events()
        sent0 = ch.bytes_sent
        for handle, items in self.state.take_dirty().items():  # changed since the last take
            dirty.setdefault(handle, []).extend(items)  # sent after the older take's entries
        count = self.state.count(dirty)
        for delta in self.state.deltas(dirty, round_no):
            ch.send(delta)
        self._check_cancel()  # the last moment: after FINAL the destination may commit
        with self.source.lock:
            programs, ports = self.state.counters()
        ch.send(Final(round_no, count, programs, ports))
        try:
            answer = ch.receive()
        except (ConnectionLost, MigrationTimeout) as exc:
            exc.args = (f"{exc} FINAL was sent: the destination may have committed and run the "
                        f"state too; detach it there before sending traffic to it.",)
            raise
        if not isinstance(answer, Committed):
            raise _refusal(answer)
        if answer.proof is not None:
            self.proofs.append(answer.proof)
        self.downtime = time.monotonic() - self.paused_at
        self.details.append(RoundStats(round_no, count, ch.bytes_sent - sent0, self.downtime,
                                       estimate))

    def _await_release(self, report: MigrationReport) -> None:
        """Committed: paused with everything until ``release`` (let go) or ``cancel`` (run
        on with it; the destination's copy stays there for the caller to remove)."""
        assert self.source.release is not None
        self.source.phase = "committed"
        self.channel.close(linger=1.0)
        while not self.source.release.wait(HOLD_ROUND):
            if self.source.cancel is not None and self.source.cancel.is_set():
                self._resume()
                error = MigrationCancelled("the migration was cancelled after the commit: "
                                           "this device runs on with its state.")
                error.report = replace(report, outcome=MigrationOutcome.CANCELLED,
                                       reason=str(error))
                raise error

    # ----------------------------------------------------------------- failure
    def _resume(self) -> None:
        with self.source.lock:
            self.device.paused = False
            if self.state is not None:
                self.state.stop()

    def _abort(self, reason: str) -> None:
        """Tell the destination to roll back, if the stream still takes it; then close."""
        conn = self.channel.connection
        if conn.state not in (State.DONE, State.FAILED, State.HELLO):
            try:
                self.channel.sock.settimeout(1.0)
                self.channel.sock.sendall(conn.send(Abort(reason[:4000])))
            except (OSError, MigrationError):
                pass
        conn.fail()
        self.channel.close()
