"""Checkpoint a device's offloaded state and bring it to another device.

``snapshot`` is the model, ``codec`` its chunked msgpack format, ``seal`` the sealed file
container (integrity, signature or MAC, encryption, the trust policy), ``freshness`` the
source stamp and the checks on a snapshot's age, ``keys`` the key files, ``store`` the
atomic snapshot files, ``compat`` the per-object compatibility plan against a target's
Capabilities. docs/snapshot-format.md describes the bytes on disk.
"""

from offload.uapi import XdpMode

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
from .compat import Finding, Outcome, Plan, Report, check_features, check_map, check_program, plan
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
