"""The codec's limits and its refusals of a format, apart from the codec itself.

A sealed file's reader checks a payload's format and passes limits on before any record is
decoded; keeping these here lets it (and the client that only verifies and forwards a payload)
do so without importing the decoder and the snapshot model behind it. ``migrate.codec``
re-exports every name.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SnapshotError
from .schema import SnapshotFormatError


class UnsupportedVersion(SnapshotError):
    """A snapshot format this reader cannot read or upgrade."""


class FormatMismatch(SnapshotFormatError):
    """A payload whose stored format is not the one its envelope names."""


class SnapshotTooLarge(SnapshotFormatError):
    """A record or the whole snapshot exceeds the decoder's limits."""


@dataclass(frozen=True, slots=True)
class ChunkLimits:
    """How the writer cuts map contents: at most this many entries and bytes per record."""

    entries: int = 4096
    bytes: int = 1 << 20


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Hard limits of the reader; the defaults admit anything this writer produces."""

    max_record_bytes: int = 16 << 20  # Unpacker max_buffer_size: one record at a time
    max_bin_len: int = 9 << 20  # bytecode of 1M slots, or one chunk
    max_str_len: int = 1 << 16
    max_array_len: int = 1 << 20
    max_map_len: int = 64
    max_maps: int = 4096
    max_programs: int = 4096
    max_content_bytes: int = 8 << 30  # keys and values of all maps together
    read_size: int = 1 << 16
