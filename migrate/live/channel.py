"""The socket edge: a protocol :class:`Connection` over a connected stream socket.

All reads go through :meth:`Channel.receive` with the read timeout set on the socket, so no
read waits forever; a closed socket, an error or a timeout becomes the matching
:class:`MigrationError` subclass. Nothing else in the package touches a socket.
"""

from __future__ import annotations

import socket
import time

from .errors import ConnectionLost, MigrationTimeout
from .messages import Message
from .protocol import Connection

READ_SIZE = 1 << 16


class Channel:
    def __init__(self, sock: socket.socket, connection: Connection, timeout: float) -> None:
        self.sock = sock
        self.connection = connection
        self.timeout = timeout
        self._closed = False
        sock.settimeout(timeout)

    @property
    def bytes_sent(self) -> int:
        return self.connection.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.connection.bytes_received

    def send(self, message: Message) -> None:
        data = self.connection.send(message)
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise MigrationTimeout(f"the {self.connection.peer.value} took no data for "
                                   f"{self.timeout:g} s.") from None
        except OSError as exc:
            raise ConnectionLost(f"sending to the {self.connection.peer.value} failed: "
                                 f"{exc.strerror or exc}.") from None

    def receive(self) -> Message:
        """The next message, waiting at most the timeout for each read."""
        while (message := self.connection.next_message()) is None:
            self._read(self.timeout)
        return message

    def poll(self) -> Message | None:
        """A message that has already arrived, without waiting (None if there is none)."""
        message = self.connection.next_message()
        if message is None and self._read(0.0, block=False):
            message = self.connection.next_message()
        return message

    def _read(self, timeout: float, block: bool = True) -> bool:
        try:
            if not block:
                self.sock.setblocking(False)
            data = self.sock.recv(READ_SIZE)
        except BlockingIOError:
            return False
        except TimeoutError:
            raise MigrationTimeout(f"nothing arrived from the {self.connection.peer.value} for "
                                   f"{timeout:g} s (state {self.connection.state.value}).") \
                from None
        except OSError as exc:
            raise ConnectionLost(f"the connection to the {self.connection.peer.value} failed: "
                                 f"{exc.strerror or exc}.") from None
        finally:
            if not block:
                self.sock.settimeout(self.timeout)
        if not data:
            self.connection.receive_eof()
            raise ConnectionLost(f"the {self.connection.peer.value} closed the connection.")
        self.connection.receive_data(data)
        return True

    def close(self, linger: float = 0.0) -> None:
        """Close; with ``linger``, first let the peer read what was sent (half-close, then
        discard what it still sends until it closes or ``linger`` seconds pass), so closing
        with unread data does not reset the connection under the last message."""
        if self._closed:
            return
        self._closed = True
        try:
            if linger > 0:
                self.sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + linger
                while (left := deadline - time.monotonic()) > 0:
                    self.sock.settimeout(left)
                    if not self.sock.recv(READ_SIZE):
                        break
        except OSError:
            pass
        finally:
            try:
                self.sock.close()
            except OSError:
                pass
