"""The root of every error about snapshots: building, encoding, decoding, sealing, opening.

Each module defines its own subclasses next to the code that raises them (``SnapshotFormatError``
in the codec, ``IntegrityError`` in the seal, ...), so one ``except SnapshotError`` catches any
refusal of a snapshot while the type still says which check failed.
"""

from __future__ import annotations

from offload.errors import OffloadError


class SnapshotError(OffloadError):
    """A snapshot that cannot be built, written, read or trusted."""
