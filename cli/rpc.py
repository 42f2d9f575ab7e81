"""msgpack-RPC on a byte stream, without the stream (sans-I/O, like h11).

The messages are those of the msgpack-RPC specification: a request ``[0, msgid, method,
[params]]``, a response ``[1, msgid, error, result]``, back to back on the stream with no
other framing (msgpack values delimit themselves). ``params`` is always one map of named
parameters; ``error`` is nil or a map ``{errno, code, message, exit, data}``
(docs/control-socket.md). :class:`MessageReader` turns received bytes into messages and
refuses a malformed stream with :class:`RpcProtocolError`; the daemon and the client only move
bytes.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass, field
from typing import Any

import msgpack

from offload.errors import ErrnoError

from .exits import CliError, Exit, classify, errno_name

REQUEST = 0
RESPONSE = 1
#: One message at most (a snapshot travels in chunks well below this).
MAX_MESSAGE = 32 << 20
#: Chunk size for snapshot transfers.
CHUNK = 1 << 20


class RpcProtocolError(CliError):
    """Bytes on the control socket that are not msgpack-RPC."""

    errno = _errno.EPROTO


class RemoteError(CliError):
    """An error the daemon answered with: its errno name, message and exit class."""

    def __init__(self, name: str, code: int, message: str, exit_code: int,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.errno = code
        self.message = message
        self.exit_code = Exit(exit_code) if exit_code in Exit._value2member_map_ \
            else Exit.REFUSED
        self.data = data or {}


@dataclass(frozen=True, slots=True)
class Request:
    msgid: int
    method: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Response:
    msgid: int
    error: dict[str, Any] | None
    result: Any

    def unwrap(self) -> Any:
        """The result, or the error raised as :class:`RemoteError`."""
        if self.error is None:
            return self.result
        e = self.error
        return _raise(RemoteError(str(e.get("errno", "EIO")), int(e.get("code", _errno.EIO)),
                                  str(e.get("message", "the device gave no reason")),
                                  int(e.get("exit", Exit.REFUSED)), e.get("data") or {}))


def _raise(exc: Exception) -> Any:
    raise exc


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def encode_request(msgid: int, method: str, params: dict[str, Any]) -> bytes:
    return pack([REQUEST, msgid, method, [params]])


def encode_response(msgid: int, error: dict[str, Any] | None, result: Any) -> bytes:
    return pack([RESPONSE, msgid, error, result])


def error_payload(exc: BaseException, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error map for an exception: errno name and number, message, exit class."""
    code, exit_code = classify(exc)
    message = exc.detail if isinstance(exc, ErrnoError) else str(exc)
    return {"errno": errno_name(code), "code": code, "message": message,
            "exit": int(exit_code), "data": data or {}}


def _no_ext(code: int, data: bytes) -> Any:
    raise RpcProtocolError(f"msgpack extension type {code} is not used on the control socket.")


class MessageReader:
    """Bytes in, messages out; one reader per connection and direction."""

    def __init__(self) -> None:
        self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_MESSAGE,
                                          ext_hook=_no_ext)

    def feed(self, data: bytes) -> list[Request | Response]:
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise RpcProtocolError(f"a message larger than {MAX_MESSAGE} bytes arrived; the "
                                   "control socket takes smaller ones.") from None
        out: list[Request | Response] = []
        try:
            for value in self._unpacker:
                out.append(_message(value))
        except RpcProtocolError:
            raise
        except (ValueError, msgpack.UnpackException) as exc:
            raise RpcProtocolError(f"the stream is not msgpack: {exc}.") from None
        return out


def _message(value: Any) -> Request | Response:
    if not isinstance(value, list) or not value or value[0] not in (REQUEST, RESPONSE):
        raise RpcProtocolError("a message must be an array starting with 0 (request) or 1 "
                               "(response).")
    if value[0] == REQUEST:
        if len(value) != 4 or not isinstance(value[1], int) or not isinstance(value[2], str) \
                or not isinstance(value[3], list) or len(value[3]) > 1 \
                or (value[3] and not isinstance(value[3][0], dict)):
            raise RpcProtocolError("a request is [0, msgid, method, [params map]].")
        return Request(value[1], value[2], value[3][0] if value[3] else {})
    if len(value) != 4 or not isinstance(value[1], int) or \
            not (value[2] is None or isinstance(value[2], dict)):
        raise RpcProtocolError("a response is [1, msgid, error map or nil, result].")
    return Response(value[1], value[2], value[3])
