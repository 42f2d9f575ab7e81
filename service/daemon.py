"""``device serve``: a device daemon answering msgpack-RPC on a Unix socket.

One thread, one ``selectors`` loop: requests, traffic and counter sampling all run on it, so
nothing ever touches the device concurrently. Signals (SIGTERM, SIGINT) only set a flag and
wake the loop through ``signal.set_wakeup_fd``; the loop then closes every connection and
removes its socket file. A socket file left by a daemon that died is detected (nothing
accepts on it) and replaced; a live daemon's socket or a file that is not a socket is never
touched.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import signal
import socket
import stat
from collections.abc import Callable
from typing import Any

from offload.errors import OffloadError

from . import api
from .device_service import DeviceService, error_data
from .errors import Refused, ServiceError
from .methods import answer, lookup
from .params import parse_params, to_wire
from .protocol import MessageReader, Request, RpcProtocolError, encode_response, error_payload

LOG = logging.getLogger("offload_migrate.daemon")
TICK = 0.02  # seconds between traffic beats
#: Connections served at once; more wait in the listen backlog (socket.SOMAXCONN) until one
#: closes, rather than being refused.
MAX_CONNECTIONS = 512
ACCEPT_BURST = 64  # connections taken from the backlog per wake-up
MAX_OUTPUT = 64 << 20  # a client that stops reading is dropped past this backlog
SOCKET_MODE = 0o600
LOCK_WAIT = 10.0  # seconds a request waits for a migration's hold on the device


class SocketInUse(Refused):
    """Another daemon answers at the path, or the path is not a socket."""


def claim_socket(path: str) -> socket.socket:
    """A listening Unix socket at ``path``, replacing a stale socket file only."""
    if os.path.lexists(path):
        mode = os.lstat(path).st_mode
        if not stat.S_ISSOCK(mode):
            raise SocketInUse(errno.EEXIST, f"{path} exists and is not a socket; choose another "
                                            "--socket path.")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            os.unlink(path)  # stale: its daemon is gone
        else:
            raise SocketInUse(errno.EADDRINUSE, f"a daemon already answers at {path}; stop it "
                                                "first or choose another --socket path.")
        finally:
            probe.close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)
        try:
            listener.bind(path)
        finally:
            os.umask(old)
        listener.listen(socket.SOMAXCONN)
    except OSError as exc:
        listener.close()
        raise SocketInUse(exc.errno or errno.EIO, f"cannot listen at {path}: "
                                                  f"{exc.strerror or exc}.") from None
    listener.setblocking(False)
    return listener


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = MessageReader()
        self.output = bytearray()


class Daemon:
    """The loop around one :class:`DeviceService`."""

    def __init__(self, service: DeviceService, path: str, *, listen: str | None = None,
                 log: logging.Logger | None = None) -> None:
        self.service = service
        self.listen_address = listen
        self.migration_listener: socket.socket | None = None
        self.path = path
        self.log = log or LOG
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        self.connections: dict[int, _Connection] = {}
        self.listener: socket.socket | None = None
        self._inode: int | None = None
        self._accepting = False

    def serve(self, ready: Callable[[], None] | None = None) -> None:
        self.listener = claim_socket(self.path)
        self._inode = os.stat(self.path).st_ino
        self._listening(True)
        if self.listen_address is not None:
            from migrate.live import listen

            self.migration_listener = listen(self.listen_address)
            self.migration_listener.setblocking(False)
            self.selector.register(self.migration_listener, selectors.EVENT_READ, "migrate")
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self.selector.register(wake_r, selectors.EVENT_READ, "wake")
        previous = {sig: signal.signal(sig, self._on_signal)
                    for sig in (signal.SIGTERM, signal.SIGINT)}
        old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        try:
            if ready is not None:
                ready()
            while not (self.stopping or self.service.stopping):
                for key, mask in self.selector.select(TICK):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "migrate":
                        self._accept_migration()
                    elif key.data == "wake":
                        self._drain_wakeups(wake_r)
                    else:
                        self._service_connection(key.data, mask)
                if self.service.lock.acquire(blocking=False):  # no traffic while migrating in
                    try:
                        self.service.tick()
                    finally:
                        self.service.lock.release()
        finally:
            self.stopping = True
            signal.set_wakeup_fd(old_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._close_all()
            wake_r.close()
            wake_w.close()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stopping = True

    @staticmethod
    def _drain_wakeups(sock: socket.socket) -> None:
        try:
            while sock.recv(512):
                pass
        except BlockingIOError:
            pass

    def _accept(self) -> None:
        """Take waiting connections; at MAX_CONNECTIONS stop listening for more (they stay
        in the backlog) until one closes."""
        assert self.listener is not None
        for _ in range(ACCEPT_BURST):
            if len(self.connections) >= MAX_CONNECTIONS:
                self._listening(False)
                return
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the connection waits in the backlog
                self.log.warning("%s: cannot accept a client: %s", self.service.device.name,
                                 exc.strerror or exc)
                return
            sock.setblocking(False)
            conn = _Connection(sock)
            self.connections[sock.fileno()] = conn
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _listening(self, on: bool) -> None:
        """Watch the listener for new connections, or leave them in the backlog."""
        if self.listener is None or self.stopping or on == self._accepting:
            return
        if on:
            self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        else:
            self.selector.unregister(self.listener)
        self._accepting = on

    def _service_connection(self, conn: _Connection, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                return self._drop(conn)
            if data == b"":
                return self._drop(conn)
            if data:
                try:
                    requests = conn.reader.feed(data)
                except RpcProtocolError as err:
                    self.log.info("%s: dropped a client: %s", self.service.device.name, err)
                    return self._drop(conn)
                for message in requests:
                    if isinstance(message, Request) and message.method == "migrate.incoming":
                        return self._hand_over(conn, message)
                    if isinstance(message, Request):
                        conn.output += self._answer(message, conn)
        if conn.output:
            self._flush(conn)

    def _answer(self, request: Request, conn: _Connection | None = None) -> bytes:
        lock = self.service.lock
        if not lock.acquire(blocking=False):  # a migration holds the device
            if request.method == "status":
                return encode_response(request.msgid, None,
                                       to_wire(self.service.busy_status()))
            if not lock.acquire(timeout=LOCK_WAIT):
                error = Refused(errno.EBUSY, f"device {self.service.device.name} is busy "
                                             "with a migration; try again when it ends.")
                return encode_response(request.msgid, error_payload(error), None)
        self.log.debug("%s: %s", self.service.device.name, request.method)
        try:
            self.service.caller = conn
            result = answer(self.service, request.method, request.params)
        except Exception as exc:  # every failure becomes an error answer, never a dead daemon
            if not _expected(exc):
                self.log.error("%s: %s failed: %s: %s", self.service.device.name,
                               request.method, type(exc).__name__, exc)
            else:
                self.log.debug("%s: %s refused: %s", self.service.device.name,
                               request.method, exc)
            return encode_response(request.msgid, error_payload(exc, error_data(exc)), None)
        finally:
            lock.release()
        return encode_response(request.msgid, None, result)

    def _hand_over(self, conn: _Connection, request: Request) -> None:
        """``migrate.incoming``: answer, then the connection carries the migration stream."""
        self.connections.pop(conn.sock.fileno(), None)
        self.selector.unregister(conn.sock)
        self._listening(True)
        conn.sock.setblocking(True)
        conn.sock.settimeout(5.0)
        try:
            if conn.output:
                raise Refused(errno.EPROTO, "migrate.incoming must be the only request on "
                                            "its connection.")
            params = parse_params(lookup(request.method).params, request.params, request.method)
            self._check_incoming()
            conn.sock.sendall(encode_response(request.msgid, None,
                                              to_wire(api.MigrateIncomingResult())))
            self.service.accept_migration(conn.sock, "control socket", params.allow_fallback)
        except (OSError, ServiceError) as exc:
            try:
                conn.sock.sendall(encode_response(request.msgid, error_payload(exc), None))
            except OSError:
                pass
            conn.sock.close()

    def _check_incoming(self) -> None:
        if self.service.migrating():
            raise Refused(errno.EBUSY, f"device {self.service.device.name} is already "
                                       "migrating.")
        with self.service.lock:
            self.service.check_empty("migrate onto")

    def _accept_migration(self) -> None:
        assert self.migration_listener is not None
        try:
            sock, peer = self.migration_listener.accept()
        except BlockingIOError:
            return
        try:
            self._check_incoming()
            self.service.accept_migration(sock, f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple)
                                          else str(peer))
        except ServiceError as exc:
            self.log.warning("%s: refused a migration: %s", self.service.device.name, exc)
            sock.close()

    def _flush(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.output)
            del conn.output[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return self._drop(conn)
        if len(conn.output) > MAX_OUTPUT:
            return self._drop(conn)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.output else 0)
        self.selector.modify(conn.sock, events, conn)

    def _drop(self, conn: _Connection) -> None:
        self.service.forget(conn)  # its unfinished snapshot transfers end with it
        self.connections.pop(conn.sock.fileno(), None)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        if len(self.connections) < MAX_CONNECTIONS:
            self._listening(True)

    def _close_all(self) -> None:
        for conn in list(self.connections.values()):
            if conn.output:  # the answer to 'shutdown' goes out before the socket closes
                conn.sock.setblocking(True)
                conn.sock.settimeout(1.0)
                try:
                    conn.sock.sendall(conn.output)
                except OSError:
                    pass
            self._drop(conn)
        if self.migration_listener is not None:
            self.selector.unregister(self.migration_listener)
            self.migration_listener.close()
        if self.listener is not None:
            if self._accepting:
                self.selector.unregister(self.listener)
                self._accepting = False
            self.listener.close()
            try:
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.selector.close()


def _expected(exc: BaseException) -> bool:
    return isinstance(exc, OffloadError)
