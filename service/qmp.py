"""A QMP client: QEMU's machine protocol, JSON objects over a Unix socket.

QEMU greets with ``{"QMP": {...}}``; the client answers ``qmp_capabilities`` and then sends
``{"execute": NAME, "arguments": {...}, "id": N}`` and reads ``{"return": ...}`` or
``{"error": {"class": ..., "desc": ...}}`` with the same id. Events (``{"event": ...}``) may
arrive at any time; they are queued for :meth:`QmpClient.event`. Every read waits at most the
timeout, so a QEMU that died or hangs, or a peer that sends what is not QMP, ends in a typed
error (:class:`QmpError`) rather than a hang.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from collections import deque
from typing import Any

from .errors import ServiceError

MAX_LINE = 1 << 20  # bytes in one QMP message at most
TIMEOUT = 10.0


class QmpError(ServiceError):
    """The QMP conversation failed: no QEMU at the socket, a closed or silent socket, or
    bytes that are not QMP."""

    errno = errno.EIO


class QmpCommandError(QmpError):
    """QEMU answered a command with an error; ``error_class`` is QMP's class name."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"QEMU refused {command}: {desc} ({error_class}).")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QmpClient:
    """One QMP connection, capabilities negotiated on connect."""

    def __init__(self, path: str, timeout: float = TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self.events: deque[dict[str, Any]] = deque()
        self._buf = bytearray()
        self._next_id = 0
        #: ids of requests whose answer was never read (a timeout or Ctrl-C in between): its
        #: late answer is dropped when it comes, not taken for the answer to the next request
        self._abandoned: set[int] = set()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            greeting = self._read(time.monotonic() + timeout)
            if "QMP" not in greeting:
                raise QmpError(f"{path} did not greet as QMP does: {_short(greeting)}.")
            self.version = greeting["QMP"].get("version", {}).get("qemu", {})
            self.execute("qmp_capabilities")
        except OSError as exc:
            self.sock.close()
            raise QmpError(f"cannot reach QMP at {path}: {exc.strerror or exc}.") from None
        except BaseException:
            self.sock.close()
            raise

    def __enter__(self) -> QmpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def execute(self, command: str, timeout: float | None = None, **arguments: Any) -> Any:
        """Run ``command``; its ``return`` value, or :class:`QmpCommandError`."""
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"execute": command, "id": ident}
        if arguments:
            message["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError as exc:
            raise QmpError(f"QMP at {self.path}: cannot send {command}: "
                           f"{exc.strerror or exc}.") from None
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            answer = self._answer(deadline)
        except BaseException:
            self._abandoned.add(ident)
            raise
        if answer.get("id") != ident:
            raise QmpError(f"QMP at {self.path}: an answer out of turn: {_short(answer)}.")
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            raise QmpCommandError(command, str(error.get("class", "?")),
                                  str(error.get("desc", "?")))
        if "return" not in answer:
            raise QmpError(f"QMP at {self.path}: neither return nor error: {_short(answer)}.")
        return answer["return"]

    def _answer(self, deadline: float) -> dict[str, Any]:
        """The next message that is not an event (queued for :meth:`event`) nor the late
        answer to an abandoned request (dropped)."""
        while True:
            message = self._read(deadline)
            if "event" in message:
                self.events.append(message)
            elif not self._late(message):
                return message

    def _late(self, message: dict[str, Any]) -> bool:
        """Whether ``message`` answers a request abandoned before its answer came (it is
        dropped: a Ctrl-C or a timeout mid-request must not desynchronise the session)."""
        ident = message.get("id")
        if type(ident) is int and ident in self._abandoned:
            self._abandoned.discard(ident)
            return True
        return False

    def event(self, names: tuple[str, ...], timeout: float) -> dict[str, Any] | None:
        """The next queued or arriving event named in ``names`` (others are dropped), or None
        when none comes within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            while self.events:
                event = self.events.popleft()
                if event.get("event") in names:
                    return event
            if time.monotonic() >= deadline:
                return None
            try:
                message = self._read(deadline)
            except QmpTimeout:
                return None
            if "event" in message:
                self.events.append(message)
            elif not self._late(message):
                raise QmpError(f"QMP at {self.path}: an answer nobody asked for: "
                               f"{_short(message)}.")

    def _read(self, deadline: float) -> dict[str, Any]:
        """The next JSON object, waiting until ``deadline`` at most."""
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[:end + 1]
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    raise QmpError(f"QMP at {self.path} sent what is not JSON: "
                                   f"{line[:80]!r}.") from None
                if not isinstance(message, dict):
                    raise QmpError(f"QMP at {self.path} sent a JSON {type(message).__name__}, "
                                   f"not an object.")
                return message
            if len(self._buf) > MAX_LINE:
                raise QmpError(f"QMP at {self.path}: a message longer than {MAX_LINE} bytes.")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QmpTimeout(f"QMP at {self.path}: no answer within the timeout.")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                raise QmpTimeout(f"QMP at {self.path}: no answer within the timeout.") from None
            except OSError as exc:
                raise QmpError(f"QMP at {self.path}: {exc.strerror or exc}.") from None
            if not data:
                raise QmpError(f"QMP at {self.path}: QEMU closed the connection.")
            self._buf += data


class QmpTimeout(QmpError):
    """Nothing (or not a whole message) arrived within the timeout."""

    errno = errno.ETIMEDOUT


def _short(message: object) -> str:
    return json.dumps(message)[:120]
