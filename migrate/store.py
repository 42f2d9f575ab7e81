"""Snapshot files: written atomically and sealed, opened only after every seal check.

``save`` streams the sealed snapshot into a temporary file beside the target, fsyncs it and
renames it into place (migrate.atomic_file), so a crash leaves the old file or the new one.
``load`` checks integrity, signature or MAC and decryption before decoding anything.
``save_payload`` and ``open_verified`` do the same for an encoded payload passed through
chunk by chunk (a daemon's checkpoint out, a restore in), never decoding it here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

from .atomic_file import atomic_output
from .codec_limits import ChunkLimits, DecodeLimits
from .errors import SnapshotError
from .freshness import SourceStamp
from .payload_head import PayloadHead
from .seal import (
    Seal,
    SealInfo,
    Trust,
    VerifiedPayload,
    open_payload,
    open_sealed,
    seal_payload,
    verify_sealed,
    write_sealed,
)

if TYPE_CHECKING:
    from .snapshot import Snapshot


def save(path: str | os.PathLike[str], snapshot: Snapshot, seal: Seal = Seal(),
         chunks: ChunkLimits = ChunkLimits(), source: SourceStamp | None = None) -> SealInfo:
    """Write ``snapshot`` sealed to ``path`` atomically (mode 0600: contents may be secret),
    stamped with ``source`` when given."""
    with atomic_output(path, 0o600) as out:
        return write_sealed(out, snapshot, seal, chunks, source)


def save_payload(path: str | os.PathLike[str], payload: Iterable[bytes], seal: Seal = Seal(),
                 source: SourceStamp | None = None) -> tuple[SealInfo, PayloadHead]:
    """Seal an encoded payload into ``path`` atomically as its chunks arrive: the file
    appears, complete, only if every chunk came and sealing succeeded."""
    with atomic_output(path, 0o600) as out:
        return seal_payload(out, payload, seal, source)


@contextmanager
def open_verified(path: str | os.PathLike[str], trust: Trust = Trust(),
                  chunk_size: int = 1 << 16) -> Iterator[VerifiedPayload]:
    """The file's payload after every seal check, for one pass in chunks (the file stays
    open while the caller reads them)."""
    with _open(path) as stream:
        yield open_payload(stream, trust, chunk_size)


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SnapshotError(f"cannot open snapshot {os.fspath(path)}: "
                            f"{exc.strerror or exc}.") from exc


def verify(path: str | os.PathLike[str], trust: Trust = Trust()) -> SealInfo:
    with _open(path) as stream:
        return verify_sealed(stream, trust)


def load(path: str | os.PathLike[str], trust: Trust = Trust(),
         limits: DecodeLimits = DecodeLimits()) -> tuple[Snapshot, SealInfo]:
    with _open(path) as stream:
        return open_sealed(stream, trust, limits)
