"""Reading and writing classic pcap files (the libpcap format, draft-ietf-opsawg-pcap).

A 24-byte file header - magic 0xA1B2C3D4 (microsecond timestamps) or 0xA1B23C4D
(nanoseconds), written in the writer's byte order, so either order is read - then records of a
16-byte header (seconds, fraction, captured length, original length) and the captured bytes.
Only LINKTYPE_ETHERNET (1) captures are replayed to a device. pcapng is a different format and
is refused by name.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import BinaryIO

from .errors import UsageError

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
PCAPNG_MAGIC = 0x0A0D0D0A
LINKTYPE_ETHERNET = 1
FILE_HEADER = 24
RECORD_HEADER = 16
MAX_FRAME = 1 << 18  # larger than any snap length tools use (262144)
MAX_FRAMES = 1 << 20


class PcapError(UsageError):
    """A file that is not a readable Ethernet pcap capture."""


def parse_pcap(data: bytes, name: str = "the capture") -> list[bytes]:
    """The frames of a pcap capture held in ``data``."""
    if len(data) < FILE_HEADER:
        raise PcapError(f"{name} is too short for a pcap file header ({len(data)} bytes).")
    (magic_le,) = struct.unpack_from("<I", data)
    if magic_le == PCAPNG_MAGIC:
        raise PcapError(f"{name} is pcapng; convert it to pcap first (editcap -F pcap).")
    for order in ("<", ">"):
        (magic,) = struct.unpack_from(order + "I", data)
        if magic in (MAGIC_US, MAGIC_NS):
            break
    else:
        raise PcapError(f"{name} is not a pcap file (magic {data[:4].hex()}).")
    _, _, _, _, snaplen, linktype = struct.unpack_from(order + "HHiIII", data, 4)
    if linktype & 0xFFFF != LINKTYPE_ETHERNET:
        raise PcapError(f"{name} captures link type {linktype & 0xFFFF}; only Ethernet (1) "
                        "frames can be sent to a device.")
    frames: list[bytes] = []
    offset = FILE_HEADER
    while offset < len(data):
        if offset + RECORD_HEADER > len(data):
            raise PcapError(f"{name} ends inside the header of record {len(frames) + 1}.")
        _, _, incl, _ = struct.unpack_from(order + "IIII", data, offset)
        offset += RECORD_HEADER
        if incl > MAX_FRAME:
            raise PcapError(f"record {len(frames) + 1} of {name} claims {incl} bytes, more "
                            f"than any capture holds ({MAX_FRAME}).")
        if offset + incl > len(data):
            raise PcapError(f"{name} ends inside record {len(frames) + 1} ({incl} bytes "
                            "announced).")
        if len(frames) == MAX_FRAMES:
            raise PcapError(f"{name} holds more than {MAX_FRAMES} frames.")
        frames.append(data[offset:offset + incl])
        offset += incl
    return frames


def read_pcap(path: str | os.PathLike[str]) -> list[bytes]:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FRAMES * 64 + FILE_HEADER)
    except OSError as exc:
        raise PcapError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}.") from None
    return parse_pcap(data, os.fspath(path))


def encode_pcap(frames: Iterable[bytes], snaplen: int = 65535) -> bytes:
    """A microsecond pcap file of ``frames`` (little-endian), timestamps one ms apart."""
    out = [struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET)]
    for n, frame in enumerate(frames):
        out.append(struct.pack("<IIII", n // 1000, n % 1000 * 1000, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)


class PcapWriter:
    """Records appended to an open binary file as they come (a capture's memory stays that
    of one record): the file header first, then each frame with its time and its length on
    the wire, cut to ``snaplen``; microsecond timestamps, little-endian."""

    def __init__(self, handle: BinaryIO, snaplen: int = 65535) -> None:
        self.handle = handle
        self.snaplen = snaplen
        self.frames = 0
        handle.write(struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def write(self, frame: bytes, when: float, length: int | None = None) -> None:
        data = frame[:self.snaplen]
        micros = max(0, round(when * 1_000_000))
        seconds, fraction = divmod(micros, 1_000_000)
        self.handle.write(struct.pack("<IIII", seconds & 0xFFFFFFFF, fraction, len(data),
                                      max(len(data), length or 0)))
        self.handle.write(data)
        self.frames += 1
