"""Live migration from a daemon: ``migrate.live`` run on a worker thread beside the event loop.

The source runs ``MigrationSource`` with the service's lock, which the loop holds around
traffic and every request, and which the migration takes per chunk - so traffic flows during
pre-copy and nothing touches the device concurrently. The destination holds the lock for the
whole of ``MigrationDestination.serve`` (restore, deltas, commit); meanwhile the loop answers
``status`` from its last picture plus the migration's progress, and sends no traffic.

The stream reaches the destination either through its control socket (the source sends
``migrate.incoming`` and, once answered, the connection carries the migration protocol) or
through its ``--listen tcp:HOST:PORT`` listener. Progress is the byte count of the stream,
counted by a socket subclass that wraps the connected socket.

A held source migration (``migrate.start`` with ``hold``; a VM's migration decides the cut,
service/vm_migration.py) stays in pre-copy rounds until ``migrate.cut``; ``migrate.cancel``
ends it before the cut, the destination rolling back and the source running on. After its
commit a held source keeps its state paused (phase ``committed``) until ``migrate.release``
lets it go or ``migrate.cancel`` resumes it; ``migrate.undo`` on the destination then removes
what the migration restored there.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Any

from migrate.live import (
    MigrationCancelled,
    MigrationDestination,
    MigrationError,
    MigrationSource,
    SourceAborted,
    connect,
)
from migrate.live.proving import ScratchFactory

from .api import MIGRATION_FINISHED
from .errors import ServiceError
from .protocol import MessageReader, Response, encode_request

LOG = logging.getLogger("offload_migrate.migration")
HANDSHAKE_TIMEOUT = 10.0
FINISHED = MIGRATION_FINISHED
LIVE_ROUNDS = 32  # rounds a status shows of a running migration, the newest


class MigrationBusy(ServiceError):
    errno = errno.EBUSY


class CountingSocket(socket.socket):
    """A connected socket that counts the bytes it moves (for the progress view)."""

    sent = 0
    received = 0

    def sendall(self, data: Any, *args: Any) -> None:
        super().sendall(data, *args)
        self.sent += len(data)

    def recv(self, size: int, *args: Any) -> bytes:
        data = super().recv(size, *args)
        self.received += len(data)
        return data


def counting(sock: socket.socket) -> CountingSocket:
    timeout = sock.gettimeout()
    wrapped = CountingSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    wrapped.settimeout(timeout)
    return wrapped


def open_stream(to: str) -> socket.socket:
    """A stream to the destination: ``tcp:HOST:PORT`` / ``unix:PATH`` as migrate.live takes
    them, or a daemon's control socket path (handshake with ``migrate.incoming``)."""
    if to.startswith(("tcp:", "unix:")):
        return connect(to)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(HANDSHAKE_TIMEOUT)
    try:
        sock.connect(to)
        sock.sendall(encode_request(1, "migrate.incoming", {}))
        reader = MessageReader()
        while True:
            data = sock.recv(4096)
            if not data:
                raise MigrationBusy(f"the daemon at {to} closed the connection instead of "
                                    "accepting the migration.")
            messages = reader.feed(data)
            if messages:
                break
    except OSError as exc:
        sock.close()
        raise MigrationBusy(f"cannot reach the destination daemon at {to}: "
                            f"{exc.strerror or exc}.") from None
    answer = messages[0]
    if not isinstance(answer, Response):
        sock.close()
        raise MigrationBusy(f"the daemon at {to} did not answer the migration handshake.")
    try:
        answer.unwrap()
    except ServiceError:
        sock.close()
        raise
    return sock


class Migration:
    """One migration in progress on a daemon (``service.migration`` is its public picture)."""

    def __init__(self, service: Any, role: str, peer: str) -> None:
        self.service = service
        self.role = role
        self.peer = peer
        self.started = time.monotonic()
        self.ended: float | None = None
        self.stream: CountingSocket | None = None
        self.state = "connecting"
        self.report: dict[str, Any] | None = None
        self.reason = ""
        self.source: MigrationSource | None = None
        self.hold: threading.Event | None = None
        self.release: threading.Event | None = None
        self.cancel = threading.Event()
        self.destination: MigrationDestination | None = None

    def picture(self) -> dict[str, Any]:
        stream = self.stream
        moved = 0 if stream is None else (stream.sent if self.role == "source"
                                          else stream.received)
        picture: dict[str, Any] = {
            "role": self.role, "peer": self.peer, "state": self.state,
            "elapsed": round((self.ended or time.monotonic()) - self.started, 3), "done": moved,
            "unit": "bytes"}
        if self.report is not None:
            picture["report"] = self.report
            picture["round"] = self.report.get("rounds", 0)
        if self.reason:
            picture["reason"] = self.reason
        if self.source is not None:
            picture["phase"] = self.source.phase
            if self.source.plan is not None:
                picture["plan"] = self.source.plan
            rounds = list(self.source.rounds)[-LIVE_ROUNDS:]  # the worker appends to it
            picture["rounds"] = [[r.round, r.entries, r.bytes] for r in rounds]
            picture.setdefault("round", rounds[-1].round if rounds else 0)
            if self.source.estimate is not None:
                picture["estimate"] = round(self.source.estimate, 6)
        if self.hold is not None:
            picture["held"] = not self.hold.is_set()
        return picture

    def finish(self, state: str, report: Any, reason: str = "") -> None:
        self.report = report.as_dict() if report is not None else None
        self.reason = reason
        self.ended = time.monotonic()
        self.state = state
        log = LOG.info if state == "completed" else LOG.warning
        log("migration (%s, peer %s) %s after %.3f s%s", self.role, self.peer, state,
            self.ended - self.started, f": {reason}" if reason else "")


def _ended(err: MigrationError) -> str:
    """The state a migration that ended early shows: ``cancelled`` on a source whose caller
    cancelled, ``aborted`` on a destination whose source gave up (it rolled back)."""
    if isinstance(err, MigrationCancelled):
        return "cancelled"
    if isinstance(err, SourceAborted):
        return "aborted"
    return "refused" if type(err).__name__ == "DestinationRefused" else "failed"


def start_source(service: Any, to: str, downtime_target: float, max_rounds: int,
                 hold: bool = False, *, samples: int = 0) -> Migration:
    """``samples`` > 0: the destination proves the state with that many sampled frames."""
    job = Migration(service, "source", to)
    job.hold = threading.Event() if hold else None
    job.release = threading.Event() if hold else None
    LOG.info("migration to %s started", to)
    source = MigrationSource(service.device, downtime_target, max_rounds, lock=service.lock,
                             hold=job.hold, cancel=job.cancel, release=job.release,
                             prove=samples > 0, samples=samples)
    job.source = source

    def run() -> None:
        try:
            job.stream = counting(open_stream(to))
            job.state = "running"
            report = source.run(job.stream)
        except MigrationError as err:
            job.finish(_ended(err), err.report, str(err))
        except Exception as err:  # reported in the status, the source runs on
            job.finish("failed", None, str(err))
        else:
            job.finish("completed", report)

    threading.Thread(target=run, name="migration-source", daemon=True).start()
    return job


def start_destination(service: Any, stream: socket.socket, peer: str,
                      allow_fallback: bool = False,
                      scratch: ScratchFactory | None = None) -> Migration:
    job = Migration(service, "destination", peer)
    LOG.info("incoming migration from %s", peer)
    job.stream = counting(stream)
    job.state = "running"
    job.destination = MigrationDestination(service.pair, allow_fallback, scratch=scratch)

    def run() -> None:
        assert job.stream is not None and job.destination is not None
        # The job shows its end only once the lock is let go: whoever sees "completed" then
        # gets a fresh status (the committed program), never the picture from before.
        with service.lock:
            try:
                report = job.destination.serve(job.stream)
            except MigrationError as err:
                ended = (_ended(err), err.report, str(err))
            except Exception as err:
                ended = ("failed", None, str(err))
            else:
                ended = ("completed", report, "")
        job.finish(*ended)

    threading.Thread(target=run, name="migration-destination", daemon=True).start()
    return job
