"""Taking sealed files apart and putting them back together as an attacker would: any
header, any payload, any trailer, the digest recomputed (docs/snapshot-format.md)."""

from __future__ import annotations

import hashlib
import io
import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from migrate.seal import END_MAGIC, FILE_MAGIC, FOOTER, PREFIX


@dataclass
class Parts:
    version: int
    header: dict[str, Any]
    payload: bytes
    trailer: dict[str, Any]


def split(data: bytes) -> Parts:
    _, version, head_len = PREFIX.unpack_from(data)
    start = PREFIX.size + head_len
    trailer_len, _ = FOOTER.unpack(data[-FOOTER.size:])
    end = len(data) - FOOTER.size - trailer_len
    return Parts(version, msgpack.unpackb(data[PREFIX.size:start], raw=False),
                 data[start:end], msgpack.unpackb(data[end:-FOOTER.size], raw=False))


def build(version: int, header: dict[str, Any], payload: bytes,
          extra: dict[str, Any] | None = None, *, sign: Any = None) -> bytes:
    """A container with the digest recomputed; ``sign(length, digest, head)`` may add
    trailer fields (a signature by a key the attacker holds)."""
    head_bytes = msgpack.packb(header, use_bin_type=True)
    head = PREFIX.pack(FILE_MAGIC, version, len(head_bytes)) + head_bytes
    digest = hashlib.sha256(head + payload).digest()
    trailer = {"length": len(payload), "sha256": digest, **(extra or {})}
    if sign is not None:
        trailer.update(sign(len(payload), digest, head))
    trailer_bytes = msgpack.packb(trailer, use_bin_type=True)
    return head + payload + trailer_bytes + FOOTER.pack(len(trailer_bytes), END_MAGIC)


def as_format_1(payload: bytes) -> bytes:
    """The payload rewritten as format 1 wrote it: version 1, no chunk CRCs."""
    out = io.BytesIO()
    for record in msgpack.Unpacker(io.BytesIO(payload), raw=False):
        if record.get("kind") == "header":
            record["version"] = 1
        record.pop("crc", None)
        out.write(msgpack.packb(record, use_bin_type=True))
    return out.getvalue()


def v1_signature(key: Any) -> Any:
    """Signs as container version 1 did (its domain string, length, digest)."""
    def sign(length: int, digest: bytes, head: bytes) -> dict[str, bytes]:
        message = b"offload-migrate snapshot seal v1\0" + struct.pack(">Q", length) + digest
        return {"signature": key.sign(message)}
    return sign
