"""Reading and writing vhost-user messages on a Unix socket, descriptors included.

Descriptors arrive as SCM_RIGHTS data with the first bytes of a message; at most MAX_FDS are
accepted (more, or truncated ancillary data, refuses the message and closes every descriptor
that did arrive). The payload is read with a deadline, so a front-end that sends a header and
stops cannot hold the back-end.
"""

from __future__ import annotations

import array
import os
import socket
import time

from .protocol import HEADER, MAX_FDS, Header, VhostUserError, encode

#: Seconds a front-end has to finish a message it started.
MESSAGE_DEADLINE = 5.0


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _descriptors(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            values = array.array("i")
            values.frombytes(data[:len(data) - len(data) % values.itemsize])
            fds.extend(values)
    return fds


def _read_exact(sock: socket.socket, count: int, deadline: float, what: str) -> bytes:
    chunks = []
    while count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise VhostUserError(f"the front-end stopped in the middle of {what}")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(count)
        except TimeoutError:
            raise VhostUserError(f"the front-end stopped in the middle of {what}") from None
        if not chunk:
            raise VhostUserError(f"the connection closed in the middle of {what}")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> tuple[Header, bytes, list[int]] | None:
    """The next message and its descriptors (the caller owns them), or None at a clean end."""
    sock.settimeout(None)
    try:
        data, ancdata, flags, _ = sock.recvmsg(HEADER.size,
                                               socket.CMSG_SPACE(MAX_FDS * 4))
    except ConnectionResetError:
        return None
    fds = _descriptors(ancdata)
    try:
        if not data:
            if fds:
                raise VhostUserError("descriptors arrived without a message")
            return None
        if flags & socket.MSG_CTRUNC:
            raise VhostUserError(f"a message came with more than {MAX_FDS} descriptors")
        deadline = time.monotonic() + MESSAGE_DEADLINE
        if len(data) < HEADER.size:
            data += _read_exact(sock, HEADER.size - len(data), deadline, "a message header")
        header = Header.decode(data)
        payload = _read_exact(sock, header.size, deadline, "a payload") if header.size else b""
        return header, payload, fds
    except BaseException:
        _close_all(fds)
        raise


def reply(sock: socket.socket, request: int, payload: bytes) -> None:
    sock.settimeout(MESSAGE_DEADLINE)
    sock.sendall(encode(request, payload, reply=True))


def send(sock: socket.socket, request: int, payload: bytes = b"", fds: list[int] | None = None,
         *, need_reply: bool = False) -> None:
    """A front-end's side (tests, tools): one message with descriptors."""
    message = encode(request, payload, need_reply=need_reply)
    if fds:
        sock.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                  array.array("i", fds).tobytes())])
    else:
        sock.sendall(message)
