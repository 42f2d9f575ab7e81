"""Checkpoint a device's offloaded state and bring it to another device.

``snapshot`` is the model, ``codec`` its chunked msgpack format, ``seal`` the sealed file
container (integrity, signature or MAC, encryption, the trust policy), ``freshness`` the
source stamp and the checks on a snapshot's age, ``keys`` the key files, ``store`` the
atomic snapshot files, ``compat`` the per-object compatibility plan against a target's
Capabilities. docs/snapshot-format.md describes the bytes on disk.
"""

from typing import TYPE_CHECKING

from offload.lazy_exports import lazy_exports
from offload.uapi import XdpMode

if TYPE_CHECKING:
    from .codec import (
        UPGRADES,
        ChunkLimits,
        DecodeLimits,
        SnapshotTooLarge,
        SnapshotTruncated,
        UnsupportedVersion,
        read_snapshot,
        write_snapshot,
    )
    from .compat import (
        Finding,
        Outcome,
        Plan,
        Report,
        check_features,
        check_map,
        check_program,
        plan,
    )
    from .entries import EntriesError, EntryChunk, MapEntries
    from .errors import SnapshotError
    from .freshness import (
        Freshness,
        FreshnessUnknown,
        GenerationTooOld,
        RollbackRefused,
        SnapshotTooOld,
        SourceStamp,
        StaleSnapshot,
    )
    from .keys import KeyFileError
    from .schema import SnapshotFormatError
    from .seal import (
        DecryptionError,
        DowngradeError,
        EncryptionRequired,
        IntegrityError,
        Seal,
        SealError,
        SealInfo,
        SignatureError,
        SignatureRequired,
        Trust,
    )
    from .snapshot import (
        FORMAT_VERSION,
        ActionCounter,
        AttachPoint,
        MapLink,
        MapState,
        ProgramState,
        Snapshot,
        VerifierStats,
    )

#: Each name this package offers, and the module that defines it. They are imported on first
#: use, not with the package: a client that only seals and forwards payloads (save, restore)
#: then never loads the decoder, the planner and the offload layers behind them.
_EXPORTS: dict[str, str] = {
    "ActionCounter": "snapshot",
    "AttachPoint": "snapshot",
    "ChunkLimits": "codec",
    "DecodeLimits": "codec",
    "DecryptionError": "seal",
    "DowngradeError": "seal",
    "EncryptionRequired": "seal",
    "EntriesError": "entries",
    "EntryChunk": "entries",
    "FORMAT_VERSION": "snapshot",
    "Finding": "compat",
    "Freshness": "freshness",
    "FreshnessUnknown": "freshness",
    "GenerationTooOld": "freshness",
    "IntegrityError": "seal",
    "KeyFileError": "keys",
    "MapEntries": "entries",
    "MapLink": "snapshot",
    "MapState": "snapshot",
    "Outcome": "compat",
    "Plan": "compat",
    "ProgramState": "snapshot",
    "Report": "compat",
    "RollbackRefused": "freshness",
    "Seal": "seal",
    "SealError": "seal",
    "SealInfo": "seal",
    "SignatureError": "seal",
    "SignatureRequired": "seal",
    "Snapshot": "snapshot",
    "SnapshotError": "errors",
    "SnapshotFormatError": "schema",
    "SnapshotTooLarge": "codec",
    "SnapshotTooOld": "freshness",
    "SnapshotTruncated": "codec",
    "SourceStamp": "freshness",
    "StaleSnapshot": "freshness",
    "Trust": "seal",
    "UPGRADES": "codec",
    "UnsupportedVersion": "codec",
    "VerifierStats": "snapshot",
    "check_features": "compat",
    "check_map": "compat",
    "check_program": "compat",
    "plan": "compat",
    "read_snapshot": "codec",
    "write_snapshot": "codec",
}


__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "FORMAT_VERSION", "UPGRADES", "ActionCounter", "AttachPoint", "ChunkLimits", "DecodeLimits",
    "DecryptionError", "DowngradeError", "EncryptionRequired", "EntriesError", "EntryChunk",
    "Finding", "Freshness", "FreshnessUnknown", "GenerationTooOld", "IntegrityError",
    "KeyFileError", "MapEntries", "MapLink", "MapState", "Outcome", "Plan", "ProgramState",
    "Report", "RollbackRefused", "Seal", "SealError", "SealInfo", "SignatureError",
    "SignatureRequired", "Snapshot", "SnapshotError", "SnapshotFormatError", "SnapshotTooLarge",
    "SnapshotTooOld", "SnapshotTruncated", "SourceStamp", "StaleSnapshot", "Trust",
    "UnsupportedVersion", "VerifierStats", "XdpMode", "check_features", "check_map",
    "check_program", "plan", "read_snapshot", "write_snapshot",
]
