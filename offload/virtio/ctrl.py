"""Control-virtqueue framing (virtio 1.2 section 5.1.6.5) and the BPF offload class.

Every command is one chain::

    driver-readable:  u8 class; u8 command; u8 command-specific-data[];
    device-writable:  u8 ack; u8 command-specific-result[];

as in ``struct virtio_net_ctrl`` (the result after the ack follows the virtio 1.3 form). The
BPF class (:data:`CtrlClass.BPF`, 64) carries a result header after the ack so that every
reply, however short the driver's buffer, says *why* a command failed::

    offset 0   u8   ack            VIRTIO_NET_OK (0) iff status == 0, else VIRTIO_NET_ERR (1)
    offset 1   le32 status         0 or a positive errno (EINVAL, ENOENT, E2BIG, ...)
    offset 5   le32 body_len       bytes of command-specific result that follow
    offset 9   le32 log_len        bytes of log text after the body
    offset 13  le32 log_true_size  size of the whole log before it was cut to fit
    offset 17  body[body_len], then log[log_len] (UTF-8)

:class:`Request` and :class:`Response` give each message class ``encode``/``decode``; the
message classes themselves are in :mod:`.bpf_maps` and :mod:`.bpf_progs`, each with the
``LAYOUT`` of its body (:mod:`.layout`), which the one codec (:mod:`.codec`) reads and writes.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, Self

from .codec import codec_of
from .layout import u32
from .wire import MAX_ERRNO, MAX_MESSAGE_SIZE, CtrlDecodeError, CtrlEncodeError, Reader, Writer


class CtrlClass(IntEnum):
    """``class`` of a control command (5.1.6.5); BPF is this project's."""

    RX = 0
    MAC = 1
    VLAN = 2
    ANNOUNCE = 3
    MQ = 4
    GUEST_OFFLOADS = 5
    NOTF_COAL = 6  # virtio 1.3; the 2019 RFC used 6 for its EBPF class
    STATS = 8  # virtio 1.3
    BPF = 64  # VIRTIO_NET_CTRL_BPF, needs VIRTIO_NET_F_BPF_OFFLOAD


class CtrlAck(IntEnum):
    """``virtio_net_ctrl_ack``."""

    OK = 0  # VIRTIO_NET_OK
    ERR = 1  # VIRTIO_NET_ERR


class BpfCommand(IntEnum):
    """``command`` values of the VIRTIO_NET_CTRL_BPF class."""

    CAPS = 0
    MAP_CREATE = 1
    MAP_FREE = 2
    MAP_LOOKUP = 3
    MAP_UPDATE = 4
    MAP_DELETE = 5
    MAP_GET_NEXT_KEY = 6
    MAP_LOOKUP_BATCH = 7
    MAP_UPDATE_BATCH = 8
    PROG_LOAD = 9
    PROG_UNLOAD = 10
    XDP_ATTACH = 11
    XDP_DETACH = 12
    MAP_FREEZE = 13
    PROG_TEST_RUN = 14


CTRL_HEADER_SIZE = 2  # class, command
RESULT_HEADER_SIZE = 17  # ack, status, body_len, log_len, log_true_size


def parse_header(data: bytes) -> tuple[int, int]:
    """(class, command) of a driver-readable control message."""
    if len(data) < CTRL_HEADER_SIZE:
        raise CtrlDecodeError("control command", "class", f"{len(data)} bytes are too short "
                              "for the class and command header")
    return data[0], data[1]


class Request:
    """A driver-to-device command of the BPF class; subclasses are frozen dataclasses whose
    ``LAYOUT`` gives the wire form of their fields."""

    __slots__ = ()
    COMMAND: ClassVar[BpfCommand]
    LAYOUT: ClassVar[tuple[Any, ...]] = ()

    def encode(self) -> bytes:
        """The driver-readable bytes: class, command, command-specific data."""
        codec = codec_of(type(self))
        w = Writer(codec.request_what)
        w.buf += bytes((CtrlClass.BPF, self.COMMAND))
        codec.encode(self, w)
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Self:
        codec = codec_of(cls)
        r = Reader(data, codec.request_what)
        if len(r.data) >= CTRL_HEADER_SIZE:
            klass, command = r.data[0], r.data[1]
            r.pos = CTRL_HEADER_SIZE
        else:
            klass, command = r.u8("class"), r.u8("command")
        if klass != CtrlClass.BPF:
            raise r.error("class", f"{klass} is not VIRTIO_NET_CTRL_BPF ({int(CtrlClass.BPF)})")
        if command != cls.COMMAND:
            raise r.error("command", f"{command} is not {cls.COMMAND.name} ({int(cls.COMMAND)})")
        values = codec.decode(r)
        r.end()
        return cls(**values)


@dataclass(frozen=True, slots=True)
class HandleRequest(Request):
    """A command whose only argument is an object's handle (free, freeze, unload)."""

    LAYOUT = (u32("handle"),)

    handle: int


@dataclass(frozen=True, slots=True)
class Response:
    """A device-to-driver result: status, command-specific fields, and a log excerpt.

    ``log_true_size`` is the length in bytes of the full log when ``log`` is only its tail
    (0 when ``log`` is complete), like ``log_true_size`` of BPF_PROG_LOAD.
    """

    COMMAND: ClassVar[BpfCommand]
    BODY_ON_ERROR: ClassVar[bool] = False  # the body reports partial progress on failure
    LAYOUT: ClassVar[tuple[Any, ...]] = ()

    status: int = 0
    log: str = ""
    log_true_size: int = 0

    @property
    def ack(self) -> CtrlAck:
        return CtrlAck.OK if self.status == 0 else CtrlAck.ERR

    def body(self) -> bytes:
        if self.status and not self.BODY_ON_ERROR:
            return b""
        codec = codec_of(type(self), _ENVELOPE)
        w = Writer(codec.response_what)
        codec.encode(self, w)
        return w.getvalue()

    def encode(self, limit: int | None = None) -> bytes:
        """The device-writable bytes, never more than ``limit``.

        The log is cut to its tail to fit. If even the body does not fit, the result becomes
        ENOSPC with a log saying how much room was needed; below 17 bytes only the ack
        (VIRTIO_NET_ERR) is written, and nothing at all when the buffer is empty.
        """
        limit = MAX_MESSAGE_SIZE if limit is None else min(limit, MAX_MESSAGE_SIZE)
        if not 0 <= self.status <= MAX_ERRNO:
            raise CtrlEncodeError(f"{self.COMMAND.name} response", "status",
                                  f"{self.status} is not 0 or an errno below {MAX_ERRNO + 1}")
        body = self.body()
        if RESULT_HEADER_SIZE + len(body) > limit:
            if limit < RESULT_HEADER_SIZE:
                return bytes([CtrlAck.ERR])[:limit]
            return encode_status(errno.ENOSPC, f"the {self.COMMAND.name} result needs "
                                 f"{RESULT_HEADER_SIZE + len(body)} bytes but the driver's "
                                 f"buffer holds {limit}", limit)
        return _envelope(self.status, body, self.log, self.log_true_size, limit)

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Self:
        """Parse what the device wrote (exactly the used length it reported)."""
        what = f"{cls.COMMAND.name} response"
        if len(data) == 1 and data[0] == CtrlAck.ERR:
            return cls(errno.EIO, "the device answered VIRTIO_NET_ERR without a result header "
                       "(the device-writable buffer was too small for one)")
        r = Reader(data, what)
        ack, status = r.u8("ack"), r.u32("status")
        if ack not in (CtrlAck.OK, CtrlAck.ERR):
            raise r.error("ack", f"{ack} is neither VIRTIO_NET_OK nor VIRTIO_NET_ERR")
        if status > MAX_ERRNO:
            raise r.error("status", f"{status} is not an errno")
        if (ack == CtrlAck.OK) != (status == 0):
            raise r.error("ack", f"ack {CtrlAck(ack).name} contradicts status {status}")
        body_len = r.length("body_len", MAX_MESSAGE_SIZE)
        log_len = r.length("log_len", MAX_MESSAGE_SIZE)
        true_size = r.u32("log_true_size")
        if true_size < log_len:
            raise r.error("log_true_size", f"{true_size} is smaller than log_len {log_len}")
        body = r.raw("body", body_len)
        log = r.text("log", log_len)
        r.end()
        true_size = 0 if true_size == log_len else true_size
        if status and not body_len:
            return cls(status, log, true_size)
        if status and not cls.BODY_ON_ERROR:
            raise r.error("body_len", f"a failed {cls.COMMAND.name} carries no result body")
        body_reader = Reader(body, what)
        values = codec_of(cls, _ENVELOPE).decode(body_reader)
        body_reader.end()
        return cls(status, log, true_size, **values)


#: The fields of every response that the result header carries, outside the body.
_ENVELOPE = ("status", "log", "log_true_size")


def _envelope(status: int, body: bytes, log: str, log_true_size: int, limit: int) -> bytes:
    log_bytes = log.encode()
    true_size = max(log_true_size, len(log_bytes))
    room = limit - RESULT_HEADER_SIZE - len(body)
    if len(log_bytes) > room:
        log_bytes = log_bytes[len(log_bytes) - room:] if room else b""
        while log_bytes and log_bytes[0] & 0xC0 == 0x80:  # do not start inside a character
            log_bytes = log_bytes[1:]
    w = Writer("control result")
    w.u8("ack", CtrlAck.OK if status == 0 else CtrlAck.ERR)
    w.u32("status", status)
    w.u32("body_len", len(body))
    w.u32("log_len", len(log_bytes))
    w.u32("log_true_size", true_size)
    w.raw("body", body)
    w.raw("log", log_bytes)
    return w.getvalue()


def encode_status(status: int, log: str = "", limit: int | None = None) -> bytes:
    """A bodiless result, for commands the device could not even decode."""
    limit = MAX_MESSAGE_SIZE if limit is None else min(limit, MAX_MESSAGE_SIZE)
    if not 0 < status <= MAX_ERRNO:
        raise CtrlEncodeError("control result", "status", f"{status} is not an errno")
    if limit < RESULT_HEADER_SIZE:
        return bytes([CtrlAck.ERR])[:limit]
    return _envelope(status, b"", log, 0, limit)
