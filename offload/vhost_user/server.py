"""A vhost-user back-end listening on a Unix socket: one front-end at a time, reconnects.

QEMU connects (``-chardev socket,path=SOCKET`` with ``-netdev vhost-user,chardev=...``), runs
the session (:mod:`.session`) and may drop the connection and come back - after a restart, or
after a migration. A connection that sends anything the back-end refuses is closed with the
reason logged and kept in :attr:`VhostUserServer.refusals`; the server goes on listening and
the device behind it keeps its programs and maps. Guest transmit kicks are served on the
server's thread; :meth:`VhostUserServer.deliver` (frames for the guest) may be called from any
thread.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from . import channel
from .protocol import VhostUserError
from .session import Session

log = logging.getLogger("offload.vhost_user")


class VhostUserServer:
    """Serves vhost-user front-ends on ``path``; ``on_transmit`` gets each guest frame."""

    def __init__(self, path: str | Path, on_transmit: Callable[[bytes], None]) -> None:
        self.path = str(path)
        self.on_transmit = on_transmit
        self.lock = threading.RLock()
        self.session: Session | None = None
        self.connection: socket.socket | None = None
        self.refusals: deque[str] = deque(maxlen=32)
        self.connections = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if os.path.exists(self.path):
                os.unlink(self.path)
            self._listener.bind(self.path)
            self._listener.listen(4)
        except OSError:
            self._listener.close()
            raise
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> VhostUserServer:
        self._thread = threading.Thread(target=self.run, name=f"vhost-user {self.path}",
                                        daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.lock:
            self._drop(None)
        self._listener.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        try:
            os.unlink(self.path)
        except OSError:
            pass

    # -- the data path --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """A front-end is connected: the port's link is up."""
        return self.session is not None

    def deliver(self, frame: bytes) -> bool:
        """A frame for the guest: into its receive queue, or dropped (False) without one."""
        with self.lock:
            session = self.session
            if session is None:
                return False
            try:
                return session.deliver(frame)
            except VhostUserError as err:
                self._drop(f"receive path: {err}")
                return False

    # -- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        while not self._stopping:
            with selectors.DefaultSelector() as selector:
                selector.register(self._wake_r, selectors.EVENT_READ, "wake")
                with self.lock:
                    if self.connection is None:
                        selector.register(self._listener, selectors.EVENT_READ, "accept")
                    else:
                        selector.register(self.connection, selectors.EVENT_READ, "message")
                        if self.session is not None:
                            for fd, index in self.session.kick_fds().items():
                                selector.register(fd, selectors.EVENT_READ, index)
                for key, _ in selector.select(timeout=1.0):
                    if key.data == "wake":
                        os.read(self._wake_r, 64)
                    elif key.data == "accept":
                        self._accept()
                    elif key.data == "message":
                        self._message()
                    else:
                        self._kick(key.fd)

    def _accept(self) -> None:
        conn, _ = self._listener.accept()
        with self.lock:
            self.connection = conn
            self.session = Session()
            self.connections += 1
        log.info("vhost-user front-end connected on %s", self.path)

    def _message(self) -> None:
        announcements: list[bytes] = []
        with self.lock:
            conn, session = self.connection, self.session
            if conn is None or session is None:
                return
            try:
                message = channel.receive(conn)
                if message is None:
                    self._drop(None)
                    return
                header, payload, fds = message
                answer = session.handle(header, payload, fds)
                if answer is not None:
                    channel.reply(conn, header.request, answer)
                announcements, session.announcements = session.announcements, []
            except VhostUserError as err:
                self._drop(str(err))
            except OSError as err:
                self._drop(f"socket error: {err}")
        for frame in announcements:  # on the wire without the server's lock (lock order)
            self.on_transmit(frame)

    def _kick(self, fd: int) -> None:
        try:
            os.read(fd, 8)
        except OSError:
            pass
        frames: list[bytes] = []
        with self.lock:
            if self.session is None:
                return
            try:
                frames = list(self.session.transmitted())
            except VhostUserError as err:
                self._drop(f"transmit path: {err}")
        for frame in frames:
            self.on_transmit(frame)

    def _drop(self, reason: str | None) -> None:
        """End the connection and its session; a reason means it was refused."""
        if reason is not None:
            self.refusals.append(reason)
            log.warning("vhost-user front-end on %s refused: %s", self.path, reason)
        elif self.connection is not None:
            log.info("vhost-user front-end on %s disconnected", self.path)
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None


