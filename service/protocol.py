"""msgpack-RPC on a byte stream, without the stream (sans-I/O, like h11).

The messages are those of the msgpack-RPC specification: a request ``[0, msgid, method,
[params]]``, a response ``[1, msgid, error, result]``, back to back on the stream with no
other framing (msgpack values delimit themselves). ``params`` is one map of named parameters,
which the method table checks (service/methods.py); ``error`` is nil or a map ``{errno, code,
kind, message, data}`` (docs/control-socket.md). :class:`MessageReader` turns received bytes
into messages and refuses a malformed stream with :class:`RpcProtocolError`; the daemon and
the client only move bytes.
"""

from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import Any

import msgpack

from offload.errors import ErrnoError

from .errors import ErrorKind, InvalidRequest, ServiceError, classify, errno_name

REQUEST = 0
RESPONSE = 1
#: One message at most (a snapshot travels in chunks well below this).
MAX_MESSAGE = 32 << 20
#: Chunk size for snapshot transfers.
CHUNK = 1 << 20


class RpcProtocolError(InvalidRequest):
    """Bytes on the control socket that are not msgpack-RPC."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=_errno.EPROTO)


class RemoteError(ServiceError):
    """An error the daemon answered with: its errno name and number, kind, message, data."""

    def __init__(self, name: str, code: int, message: str, kind: ErrorKind,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.errno = code
        self.kind = kind
        self.message = message
        self.data = data or {}


@dataclass(frozen=True, slots=True)
class Request:
    """``params`` as it arrived: an array holding one map, or empty, if the peer follows
    the specification - the method table refuses anything else, naming it."""

    msgid: int
    method: str
    params: Any = ()


@dataclass(frozen=True, slots=True)
class Response:
    msgid: int
    error: dict[str, Any] | None
    result: Any

    def unwrap(self) -> Any:
        """The result, or the error raised as :class:`RemoteError`."""
        if self.error is not None:
            raise remote_error(self.error)
        return self.result


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def encode_request(msgid: int, method: str, params: dict[str, Any]) -> bytes:
    return pack([REQUEST, msgid, method, [params]])


def encode_response(msgid: int, error: dict[str, Any] | None, result: Any) -> bytes:
    return pack([RESPONSE, msgid, error, result])


def error_payload(exc: BaseException, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The error map for an exception: errno name and number, kind, message, data (with
    ``field``, the parameter at fault, for a malformed request)."""
    code, kind = classify(exc)
    message = exc.detail if isinstance(exc, ErrnoError) else str(exc)
    data = dict(data or {})
    if isinstance(exc, InvalidRequest) and exc.field is not None:
        data["field"] = exc.field
    return {"errno": errno_name(code), "code": code, "kind": kind.value, "message": message,
            "data": data}


def remote_error(error: dict[str, Any]) -> RemoteError:
    """The error a peer answered with; fields it left out or mistyped read as a refusal."""
    name, code, message = error.get("errno"), error.get("code"), error.get("message")
    kind, data = error.get("kind"), error.get("data")
    return RemoteError(name if isinstance(name, str) else "EIO",
                       code if isinstance(code, int) and not isinstance(code, bool) else _errno.EIO,
                       message if isinstance(message, str) else "the device gave no reason",
                       ErrorKind(str(kind)) if kind in ErrorKind._value2member_map_ else ErrorKind.REFUSED,
                       data if isinstance(data, dict) else {})


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
        if len(value) != 4 or not isinstance(value[1], int) or isinstance(value[1], bool) \
                or not isinstance(value[2], str):
            raise RpcProtocolError("a request is [0, msgid, method, [params map]].")
        return Request(value[1], value[2], value[3])
    if len(value) != 4 or not isinstance(value[1], int) or \
            not (value[2] is None or isinstance(value[2], dict)):
        raise RpcProtocolError("a response is [1, msgid, error map or nil, result].")
    return Response(value[1], value[2], value[3])
