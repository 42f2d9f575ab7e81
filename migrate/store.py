"""Snapshot files: written atomically and sealed, opened only after every seal check.

``save`` streams the sealed snapshot into a temporary file beside the target, fsyncs it and
renames it into place (migrate.atomic_file), so a crash leaves the old file or the new one.
``load`` checks integrity, signature or MAC and decryption before decoding anything.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from .atomic_file import atomic_output
from .codec import ChunkLimits, DecodeLimits
from .errors import SnapshotError
from .freshness import SourceStamp
from .seal import Seal, SealInfo, Trust, open_sealed, verify_sealed, write_sealed
from .snapshot import Snapshot


def save(path: str | os.PathLike[str], snapshot: Snapshot, seal: Seal = Seal(),
         chunks: ChunkLimits = ChunkLimits(), source: SourceStamp | None = None) -> SealInfo:
    """Write ``snapshot`` sealed to ``path`` atomically (mode 0600: contents may be secret),
    stamped with ``source`` when given."""
    with atomic_output(path, 0o600) as out:
        return write_sealed(out, snapshot, seal, chunks, source)


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise SnapshotError(f"cannot open snapshot {os.fspath(path)}: "
                            f"{exc.strerror or exc}.") from None


def verify(path: str | os.PathLike[str], trust: Trust = Trust()) -> SealInfo:
    with _open(path) as stream:
        return verify_sealed(stream, trust)


def load(path: str | os.PathLike[str], trust: Trust = Trust(),
         limits: DecodeLimits = DecodeLimits()) -> tuple[Snapshot, SealInfo]:
    with _open(path) as stream:
        return open_sealed(stream, trust, limits)
