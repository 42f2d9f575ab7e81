"""A payload's first record - its header - read from the front of a stream of chunks.

Whoever passes a payload on without decoding it (the client sealing a daemon's checkpoint,
or sending a verified file to a daemon) still needs what the header says: the stored format,
the device and the creation time, which the seal header repeats and binds. :func:`peek_head`
reads them from the first bytes and hands back a stream of every chunk, the ones it looked
at included, so nothing is held beyond the header record itself (at most
:data:`MAX_HEAD_BYTES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

import msgpack

from .schema import MAX_NAME, U64, Fields, SnapshotFormatError

#: Identifies a snapshot payload (the first field of its header record).
MAGIC = b"OMSNAP"
#: The snapshot format this code writes; readers upgrade older ones (``codec.UPGRADES``).
#: Format 2 gives every chunk of map contents a CRC-32 (docs/snapshot-format.md, "Versions").
#: Defined here, with the header, so whoever only passes payloads on need not import the
#: snapshot model.
FORMAT_VERSION = 2

#: The header record holds the device's capabilities and counters: far below this.
MAX_HEAD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class PayloadHead:
    """What a payload's header record says of it, as stored (before any upgrade)."""

    format: int
    device: str
    created_ns: int


def parse_head(record: object) -> PayloadHead:
    """The fields a seal binds, from a payload's first record; the rest is the decoder's."""
    f = Fields(record, "record 0 (header)")
    if f.record.get("kind") != "header" or f.record.get("magic") != MAGIC:
        raise SnapshotFormatError(f"this is not a snapshot: the first record is not a header "
                                  f"with magic {MAGIC!r}.")
    return PayloadHead(f.int("version", 0, U64), f.str("device", MAX_NAME),
                       f.int("created_ns"))


def peek_head(chunks: Iterable[bytes]) -> tuple[PayloadHead, Iterator[bytes]]:
    """The payload's head, and the payload's chunks from its first byte on."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_ext_len=0, read_size=4096,
                                max_buffer_size=MAX_HEAD_BYTES, max_bin_len=MAX_NAME,
                                max_str_len=1 << 16, max_array_len=1 << 16,
                                max_map_len=64)
    it = iter(chunks)
    seen: list[bytes] = []
    fed = 0
    while True:
        try:
            record = unpacker.unpack()
            break
        except msgpack.OutOfData:
            pass
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise SnapshotFormatError(f"the payload's header record is not valid msgpack "
                                      f"within the reader's limits: {exc}.") from None
        chunk = next(it, None)
        if chunk is None:
            raise SnapshotFormatError("the payload ends inside its header record." if fed else
                                      "the payload is empty: no header record.")
        seen.append(chunk)
        # Feed at most what the header may take: a large first chunk is not copied whole.
        room = MAX_HEAD_BYTES - fed
        if room <= 0:
            raise SnapshotFormatError(f"the payload's header record is larger than "
                                      f"{MAX_HEAD_BYTES} bytes.")
        part = chunk[:room]
        unpacker.feed(part)
        fed += len(part)
    return parse_head(record), chain(seen, it)
