"""Length-prefixed frames of the live-migration stream (docs/live-migration.md, "Frames").

A frame is ``length`` (u32, big-endian: the bytes after this field), ``type`` (u8), then
``length - 1`` bytes of payload. :class:`FrameDecoder` is fed bytes as they arrive and yields
complete frames; it refuses oversized or unknown frames before buffering them, and at the end
of the stream tells a clean end from one inside a frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from .errors import ProtocolViolation, StreamTruncated

HEADER = struct.Struct(">IB")
#: A frame's payload never exceeds this (a snapshot chunk or a delta of at most 1 MiB of
#: contents, plus framing); anything larger is refused before it is buffered.
MAX_PAYLOAD = 4 << 20


class FrameType(IntEnum):
    HELLO = 1
    WELCOME = 2
    REFUSE = 3
    SNAPSHOT = 4
    SNAPSHOT_END = 5
    PROGRESS = 6
    READY = 7
    DELTA = 8
    ROUND_END = 9
    ROUND_ACK = 10
    FINAL = 11
    COMMITTED = 12
    ABORT = 13


@dataclass(frozen=True, slots=True)
class Frame:
    type: FrameType
    payload: bytes


def encode_frame(kind: FrameType, payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolViolation(f"a {kind.name} frame of {len(payload)} bytes exceeds the "
                                f"{MAX_PAYLOAD}-byte frame limit.")
    return HEADER.pack(len(payload) + 1, kind) + payload


class FrameDecoder:
    """Bytes in, frames out; no I/O."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self._max = max_payload
        self.received = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        self.received += len(data)

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive."""
        if len(self._buf) < HEADER.size:
            return None
        length, kind = HEADER.unpack_from(self._buf)
        if length < 1 or length - 1 > self._max:
            raise ProtocolViolation(f"a frame declares {length} bytes; frames hold 1 to "
                                    f"{self._max + 1} bytes: this is not a migration stream "
                                    f"or it is damaged.")
        if kind not in FrameType._value2member_map_:
            raise ProtocolViolation(f"frame type {kind} is unknown to protocol this side "
                                    f"speaks.")
        end = 4 + length
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[HEADER.size:end])
        del self._buf[:end]
        return Frame(FrameType(kind), payload)

    def end_of_stream(self) -> None:
        """The peer closed its side: fine between frames, truncation inside one."""
        if self._buf:
            raise StreamTruncated(f"the stream ends inside a frame ({len(self._buf)} bytes of "
                                  f"it arrived, after {self.received} bytes in all).")
