"""Keys for sealing snapshots: generation, key files and key ids.

Ed25519 keys (RFC 8032) sign snapshots; private keys are PEM PKCS#8, public keys PEM
SubjectPublicKeyInfo, as OpenSSL writes them. Symmetric keys - a shared HMAC-SHA256 key or an
AES-256-GCM key - are 32 random bytes stored as hex text (a raw 32-byte file is read too).
Secret key files are written with mode 0600 and, as OpenSSH does, refused when group or others
may read them. A key id - 16 hex digits derived by hashing - names a key in a sealed file's
header so a wrong key is reported as such, never as damage.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic_file import write_atomic
from .errors import SnapshotError

if TYPE_CHECKING:  # cryptography is imported where a key is used, not by plain seals
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

SYMMETRIC_KEY_SIZE = 32
_MAX_KEY_FILE = 1 << 14
_ID_DOMAIN = b"offload-migrate key id\0"


class KeyFileError(SnapshotError):
    """A key file that is missing, malformed, of the wrong kind or readable by others."""


def key_id(material: bytes) -> str:
    """16 hex digits naming a key: a one-way hash, so it reveals nothing of a secret key."""
    return hashlib.sha256(_ID_DOMAIN + material).hexdigest()[:16]


def public_key_id(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization
    return key_id(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


# ------------------------------------------------------------------ generation
def generate_signing_key(private_path: str | os.PathLike[str],
                         public_path: str | os.PathLike[str] | None = None) -> Ed25519PrivateKey:
    """A new Ed25519 key pair: the private key (0600) and its public key (0644, default
    ``<private>.pub``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    write_atomic(private_path, key.private_bytes(serialization.Encoding.PEM,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    public = Path(public_path) if public_path is not None else Path(f"{private_path}.pub")
    write_atomic(public, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    os.chmod(public, 0o644)
    return key


def generate_symmetric_key(path: str | os.PathLike[str]) -> bytes:
    """A new 32-byte key (for HMAC-SHA256 or AES-256-GCM) written as hex, mode 0600."""
    key = os.urandom(SYMMETRIC_KEY_SIZE)
    write_atomic(path, key.hex().encode("ascii") + b"\n")
    return key


# ------------------------------------------------------------------ loading
def _read(path: str | os.PathLike[str], secret: bool) -> bytes:
    try:
        with open(path, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            data = handle.read(_MAX_KEY_FILE + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {os.fspath(path)}: "
                           f"{exc.strerror or exc}.") from None
    if secret and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {os.fspath(path)} is accessible by group or others (mode "
                           f"{stat.S_IMODE(mode):04o}); run 'chmod 600' on it.")
    if len(data) > _MAX_KEY_FILE:
        raise KeyFileError(f"{os.fspath(path)} is too large to be a key file.")
    return data


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    data = _read(path, secret=True)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{os.fspath(path)} is not an unencrypted PEM private key: "
                           f"{exc}.") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{os.fspath(path)} holds a {type(key).__name__}; snapshots are "
                           f"signed with Ed25519 keys.")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    data = _read(path, secret=False)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{os.fspath(path)} is not a PEM public key: {exc}.") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{os.fspath(path)} holds a {type(key).__name__}; snapshots are "
                           f"verified with Ed25519 keys.")
    return key


def load_symmetric_key(path: str | os.PathLike[str]) -> bytes:
    """A 32-byte key from hex text (64 digits, surrounding whitespace ignored) or raw bytes."""
    data = _read(path, secret=True)
    if len(data) == SYMMETRIC_KEY_SIZE:  # raw; hex text of a key has 64 digits
        return data
    text = data.strip()
    try:
        key = binascii.unhexlify(text)
    except (binascii.Error, ValueError):
        raise KeyFileError(f"{os.fspath(path)} is neither {SYMMETRIC_KEY_SIZE} raw bytes nor "
                           f"{2 * SYMMETRIC_KEY_SIZE} hex digits.") from None
    if len(key) != SYMMETRIC_KEY_SIZE:
        raise KeyFileError(f"{os.fspath(path)} holds a {len(key)}-byte key; symmetric keys are "
                           f"{SYMMETRIC_KEY_SIZE} bytes.")
    return key
