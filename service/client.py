"""The client end of a device daemon's control socket: one call, one answer."""

from __future__ import annotations

import errno as _errno
import socket
import time
from types import TracebackType
from typing import Any

from .errors import ServiceError
from .protocol import MessageReader, Response, encode_request

DEFAULT_TIMEOUT = 60.0


class DaemonUnreachable(ServiceError):
    """No daemon answers at the socket path given."""


def _connect(sock: socket.socket, path: str, timeout: float) -> None:
    """connect(2), waiting while the daemon's backlog is full: a Unix socket answers EAGAIN
    then instead of queueing the caller, which is a busy daemon, not a missing one."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


class DeviceClient:
    """A connection to ``device serve --socket PATH``."""

    def __init__(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            _connect(self._sock, path, timeout)
        except OSError as exc:
            self._sock.close()
            name = _errno.errorcode.get(exc.errno or 0, "EIO")
            error = DaemonUnreachable(f"no device daemon answers at {path} ({name}: "
                                      f"{exc.strerror or exc}); start one with 'offload-migrate "
                                      f"device serve --socket {path}'.")
            error.errno = exc.errno or _errno.EIO
            raise error from None
        self._reader = MessageReader()
        self._next = 1
        self._pending: list[Response] = []

    def call(self, method: str, **params: Any) -> Any:
        """Send one request and wait for its response (RemoteError on an error answer)."""
        msgid = self._next
        self._next += 1
        try:
            self._sock.sendall(encode_request(msgid, method, params))
            while True:
                for message in self._pending:
                    if message.msgid == msgid:
                        self._pending.remove(message)
                        return message.unwrap()
                data = self._sock.recv(1 << 16)
                if not data:
                    raise DaemonUnreachable(f"the daemon at {self.path} closed the connection "
                                            f"before answering {method!r}.")
                for incoming in self._reader.feed(data):
                    if isinstance(incoming, Response):
                        self._pending.append(incoming)
        except TimeoutError:
            raise DaemonUnreachable(f"the daemon at {self.path} did not answer {method!r} in "
                                    "time.") from None
        except OSError as exc:
            raise DaemonUnreachable(f"the connection to {self.path} failed: "
                                    f"{exc.strerror or exc}.") from None

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
