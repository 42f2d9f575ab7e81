"""The sealed snapshot container: integrity always, then optional signature or MAC and
optional encryption, all checked before a single record is decoded.

Layout (docs/snapshot-format.md)::

    prefix   8-byte magic 89 'OMS' 0d 0a 1a 0a, u16 container version, u32 header length (BE)
    header   msgpack map: payload format, auth (none | ed25519 | hmac-sha256) and key id,
             cipher (none | aes-256-gcm), its key id and 12-byte nonce, creation time and
             (version 2) the source stamp: device id, name, generation
    payload  the snapshot's msgpack stream (migrate.codec) - or its AES-256-GCM ciphertext
             followed by the 16-byte tag, with prefix+header as associated data
    trailer  msgpack map: payload length, SHA-256 of prefix+header+payload, signature or MAC
    footer   u32 trailer length (BE), 8-byte end magic 'OMS-END\\n'

The signature (RFC 8032 Ed25519) or MAC (RFC 2104 HMAC-SHA256) covers a domain string of the
container version, the payload length and the SHA-256 digest, hence the header too. What a
reader demands is its :class:`Trust`: trusted keys or a MAC key mean a valid signature or MAC
is required (stripping one turns the header's auth into 'none', refused), a decryption key
means the payload must be encrypted. Container version 2 binds the header to the payload: the
payload's stored format, creation time and device name must be the header's. Opening reads the
file twice: first to check digest, signature and GCM tag (discarding plaintext), then to
decode or pass the payload on, hashing again so a file changed in between is refused rather
than half-read. Both directions stream: :class:`Sealer` seals a payload as its chunks arrive,
:func:`open_payload` hands a verified payload out chunk by chunk, so neither holds more than
a chunk whatever the snapshot's size.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack

from .codec_limits import ChunkLimits, DecodeLimits, FormatMismatch, UnsupportedVersion
from .errors import SnapshotError
from .freshness import SourceStamp
from .keys import SYMMETRIC_KEY_SIZE, key_id, public_key_id
from .payload_head import FORMAT_VERSION, PayloadHead, peek_head
from .schema import U64, Fields, SnapshotFormatError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from .snapshot import Snapshot

FILE_MAGIC = b"\x89OMS\r\n\x1a\n"
END_MAGIC = b"OMS-END\n"
#: The container version this code writes; it reads every version in READABLE.
CONTAINER_VERSION = 2
READABLE = (1, 2)
#: The oldest payload format a container of each version may hold (version 2 came with
#: format 2: a version 2 file holding format 1 was re-sealed by hand).
FIRST_FORMAT = {1: 1, 2: 2}
PREFIX = struct.Struct(">8sHI")
FOOTER = struct.Struct(">I8s")
MAX_HEADER = MAX_TRAILER = 4096
NONCE_SIZE = 12
TAG_SIZE = 16
_DOMAINS = {1: b"offload-migrate snapshot seal v1\0", 2: b"offload-migrate snapshot seal v2\0"}
_BLOCK = 1 << 16


class SealError(SnapshotError):
    """A sealed snapshot that fails one of the seal's checks."""


class IntegrityError(SealError):
    """The file is truncated or its bytes changed since it was written."""


class SignatureError(SealError):
    """A signature or MAC that does not verify, or a key that is not trusted."""


class SignatureRequired(SealError):
    """An unsigned snapshot where the reader requires a signature or MAC."""


class DecryptionError(SealError):
    """An encrypted snapshot without its key, or with a different key."""


class EncryptionRequired(DecryptionError):
    """An unencrypted snapshot where the reader holds a decryption key and so requires one."""


class DowngradeError(SealError):
    """A container that holds an older payload format than its version ever held."""


class Auth(StrEnum):
    NONE = "none"
    ED25519 = "ed25519"
    HMAC_SHA256 = "hmac-sha256"


class CipherName(StrEnum):
    NONE = "none"
    AES_256_GCM = "aes-256-gcm"


@dataclass(frozen=True, slots=True)
class Seal:
    """How to seal when writing: sign (Ed25519) or MAC (shared key), optionally encrypt."""

    signing_key: Ed25519PrivateKey | None = None
    mac_key: bytes | None = None
    encryption_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.signing_key is not None and self.mac_key is not None:
            raise SealError("choose one of a signature and a MAC, not both.")
        for name in ("mac_key", "encryption_key"):
            key = getattr(self, name)
            if key is not None and len(key) != SYMMETRIC_KEY_SIZE:
                raise SealError(f"the {name.replace('_', ' ')} must be {SYMMETRIC_KEY_SIZE} "
                                f"bytes, not {len(key)}.")


@dataclass(frozen=True, slots=True)
class Trust:
    """What a reader accepts: public keys it trusts, the shared MAC key, the decryption key.

    Giving a trusted key or a MAC key requires a valid signature or MAC by it;
    ``require_signature`` is the explicit form (it refuses unsigned files even with no key
    given). Giving a decryption key requires the payload to be encrypted with it. With none of
    them, any intact file opens, unauthenticated.
    """

    trusted_keys: tuple[Ed25519PublicKey, ...] = ()
    mac_key: bytes | None = None
    decryption_key: bytes | None = None
    require_signature: bool = False

    @property
    def signature_required(self) -> bool:
        return self.require_signature or bool(self.trusted_keys) or self.mac_key is not None

    @property
    def encryption_required(self) -> bool:
        return self.decryption_key is not None


@dataclass(frozen=True, slots=True)
class SealInfo:
    """What a sealed file says about itself, and what was verified."""

    payload_format: int
    auth: Auth
    auth_key_id: str | None
    cipher: CipherName
    cipher_key_id: str | None
    created_ns: int  # version 2: the snapshot's creation; version 1: when it was sealed
    payload_length: int
    sha256: bytes
    authenticated: bool = False  # a trusted signature or the MAC verified
    container_version: int = CONTAINER_VERSION
    source: SourceStamp | None = None  # version 2: the source device and its generation


def _aes_gcm(key: bytes, nonce: bytes, tag: bytes | None = None) -> Any:
    """AES-256-GCM from cryptography, imported here: plain seals (a digest, perhaps a MAC)
    need none of it, and a daemon that only restores them never loads it."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    return Cipher(algorithms.AES(key), modes.GCM(nonce, tag))


# ====================================================================== writing
def signing_input(version: int, length: int, digest: bytes) -> bytes:
    """What a signature or MAC covers: the version's domain string (version 2 adds the
    version itself), the payload length and the digest of prefix, header and payload."""
    if version == 1:
        return _DOMAINS[1] + struct.pack(">Q", length) + digest
    return _DOMAINS[version] + struct.pack(">HQ", version, length) + digest


class Sealer:
    """A sealed container written as its payload arrives, chunk by chunk: the digest, the
    GCM encryption and then the signature or MAC are computed as the bytes pass, so nothing
    holds more than the chunk in hand.

    ``head`` is what the payload's header record says (the seal header repeats and binds
    it); ``source`` stamps the file with the device it comes from and that device's
    generation (without one the file cannot pass freshness checks). :meth:`write` takes the
    payload's bytes in order, :meth:`finish` writes the trailer.
    """

    def __init__(self, out: BinaryIO, head: PayloadHead, seal: Seal = Seal(),
                 source: SourceStamp | None = None) -> None:
        if source is not None and source.name != head.device:
            raise SealError(f"the source stamp names device {source.name!r}; the snapshot is "
                            f"of {head.device!r}.")
        first = FIRST_FORMAT[CONTAINER_VERSION]
        if not first <= head.format <= FORMAT_VERSION:
            raise SealError(f"the payload has format {head.format}; a version "
                            f"{CONTAINER_VERSION} container holds formats {first} to "
                            f"{FORMAT_VERSION}.")
        self.head, self.seal, self.source, self.length = head, seal, source, 0
        self.auth = (Auth.ED25519 if seal.signing_key else
                     Auth.HMAC_SHA256 if seal.mac_key else Auth.NONE)
        self.auth_id = (public_key_id(seal.signing_key.public_key()) if seal.signing_key else
                        key_id(seal.mac_key) if seal.mac_key else None)
        nonce = os.urandom(NONCE_SIZE) if seal.encryption_key else None
        self.cipher = CipherName.AES_256_GCM if nonce else CipherName.NONE
        self.cipher_key_id = key_id(seal.encryption_key) if seal.encryption_key else None
        header = {"format": head.format, "auth": str(self.auth), "auth_key_id": self.auth_id,
                  "cipher": str(self.cipher), "cipher_key_id": self.cipher_key_id,
                  "nonce": nonce, "created_ns": head.created_ns,
                  "source": source.as_dict() if source is not None else None}
        header_bytes = msgpack.packb(header, use_bin_type=True)
        prefix = PREFIX.pack(FILE_MAGIC, CONTAINER_VERSION, len(header_bytes))
        self.digest = hashlib.sha256(prefix + header_bytes)
        self.encryptor: Any = None
        if seal.encryption_key is not None and nonce is not None:
            self.encryptor = _aes_gcm(seal.encryption_key, nonce).encryptor()
            self.encryptor.authenticate_additional_data(prefix + header_bytes)
        self.out = out
        out.write(prefix + header_bytes)

    def write(self, data: bytes) -> int:
        """The payload's next bytes (the codec's ``Writable``)."""
        stored = self.encryptor.update(data) if self.encryptor is not None else data
        self.digest.update(stored)
        self.out.write(stored)
        self.length += len(stored)
        return len(data)

    def finish(self) -> SealInfo:
        """The tag (when encrypting), then the trailer and footer."""
        if self.encryptor is not None:
            tail = self.encryptor.finalize() + self.encryptor.tag
            self.digest.update(tail)
            self.out.write(tail)
            self.length += len(tail)
        trailer: dict[str, Any] = {"length": self.length, "sha256": self.digest.digest()}
        message = signing_input(CONTAINER_VERSION, self.length, trailer["sha256"])
        if self.seal.signing_key is not None:
            trailer["signature"] = self.seal.signing_key.sign(message)
        elif self.seal.mac_key is not None:
            trailer["mac"] = hmac.new(self.seal.mac_key, message, hashlib.sha256).digest()
        trailer_bytes = msgpack.packb(trailer, use_bin_type=True)
        self.out.write(trailer_bytes + FOOTER.pack(len(trailer_bytes), END_MAGIC))
        return SealInfo(self.head.format, self.auth, self.auth_id, self.cipher,
                        self.cipher_key_id, self.head.created_ns, self.length,
                        trailer["sha256"], authenticated=self.auth != Auth.NONE,
                        source=self.source)


def write_sealed(out: BinaryIO, snapshot: Snapshot, seal: Seal = Seal(),
                 chunks: ChunkLimits = ChunkLimits(),
                 source: SourceStamp | None = None) -> SealInfo:
    """Write ``snapshot`` sealed to ``out`` (a stream; files go through ``migrate.store``),
    stamped with ``source`` when given (a daemon's checkpoint gives one)."""
    if snapshot.format_version != FORMAT_VERSION:
        raise SnapshotError(f"only format {FORMAT_VERSION} snapshots can be written, not "
                            f"format {snapshot.format_version}.")
    from .codec import write_snapshot  # the encoder: only where a snapshot is written

    sealer = Sealer(out, PayloadHead(snapshot.format_version, snapshot.device,
                                     snapshot.created_ns), seal, source)
    write_snapshot(sealer, snapshot, chunks)
    return sealer.finish()


def seal_payload(out: BinaryIO, payload: Iterable[bytes], seal: Seal = Seal(),
                 source: SourceStamp | None = None) -> tuple[SealInfo, PayloadHead]:
    """Seal an encoded payload that arrives in chunks (a daemon's checkpoint), without
    decoding it: its header record gives what the seal header binds, the rest passes through
    as it comes. Every reader decodes it under the codec's limits after checking the seal.
    Returns the seal and the payload's head."""
    head, chunks = peek_head(payload)
    sealer = Sealer(out, head, seal, source)
    for chunk in chunks:
        sealer.write(chunk)
    return sealer.finish(), head


# ====================================================================== reading
@dataclass(frozen=True, slots=True)
class _Layout:
    head: bytes  # prefix + header bytes (the associated data)
    header: dict[str, Any]
    trailer: dict[str, Any]
    payload_start: int
    payload_length: int
    nonce: bytes | None
    info: SealInfo


def _unpack_map(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0,
                               max_bin_len=MAX_HEADER, max_str_len=MAX_HEADER,
                               max_array_len=64, max_map_len=64)
    except (ValueError, TypeError, msgpack.UnpackException):
        raise IntegrityError(f"the snapshot's {what} is damaged.") from None


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise IntegrityError(f"the snapshot file is truncated: its {what} is incomplete.")
    return data


def _layout(stream: BinaryIO) -> _Layout:
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    if size < PREFIX.size:
        raise IntegrityError(f"the snapshot file is truncated: {size} bytes is shorter than its "
                             f"{PREFIX.size}-byte prefix.")
    magic, version, header_len = PREFIX.unpack(_read_exact(stream, PREFIX.size, "prefix"))
    if magic != FILE_MAGIC:
        raise SnapshotFormatError("this is not a sealed offload-migrate snapshot (wrong magic "
                                  "bytes at the start of the file).")
    if version not in READABLE:
        raise UnsupportedVersion(f"the snapshot container has version {version}; this reader "
                                 f"knows versions {', '.join(map(str, READABLE))}.")
    if header_len > MAX_HEADER or PREFIX.size + header_len + FOOTER.size > size:
        raise IntegrityError(f"the snapshot's seal header length ({header_len} bytes) does not "
                             f"fit the file: it is truncated or damaged.")
    header_bytes = _read_exact(stream, header_len, "seal header")
    stream.seek(size - FOOTER.size)
    trailer_len, end = FOOTER.unpack(_read_exact(stream, FOOTER.size, "footer"))
    if end != END_MAGIC:
        raise IntegrityError("the snapshot file is truncated or damaged: its end marker is "
                             "missing.")
    payload_start = PREFIX.size + header_len
    payload_length = size - FOOTER.size - trailer_len - payload_start
    if trailer_len > MAX_TRAILER or payload_length < 0:
        raise IntegrityError("the snapshot file is damaged: the trailer length does not fit.")
    stream.seek(payload_start + payload_length)
    trailer_raw = _unpack_map(_read_exact(stream, trailer_len, "trailer"), "seal trailer")
    head = PREFIX.pack(magic, version, header_len) + header_bytes
    header, info, nonce = _parse_header(_unpack_map(header_bytes, "seal header"), version)
    trailer = _parse_trailer(trailer_raw, info.auth)
    if trailer["length"] != payload_length:
        raise IntegrityError(f"the snapshot file is truncated or damaged: the trailer records "
                             f"{trailer['length']} payload bytes, the file holds "
                             f"{payload_length}.")
    info = replace(info, payload_length=payload_length, sha256=trailer["sha256"])
    return _Layout(head, header, trailer, payload_start, payload_length, nonce, info)


def _damaged(what: str) -> Callable[[SnapshotFormatError], IntegrityError]:
    return lambda exc: IntegrityError(f"the snapshot's {what} is damaged: {exc}")


def _parse_header(raw: Any, version: int) -> tuple[dict[str, Any], SealInfo, bytes | None]:
    try:
        f = Fields(raw, "the seal header")
        auth = f.str("auth", 32)
        cipher = f.str("cipher", 32)
        if auth not in Auth.__members__.values() or cipher not in CipherName.__members__.values():
            raise f.fail("auth", f"names an unknown method ({auth!r} / {cipher!r})")
        source = None
        if version >= 2:
            stamp = f._get("source")
            source = None if stamp is None else SourceStamp.parse(stamp, "its 'source'")
        info = SealInfo(f.int("format", 0, U64), Auth(auth), _opt_id(f, "auth_key_id"),
                        CipherName(cipher), _opt_id(f, "cipher_key_id"), f.int("created_ns"),
                        0, b"", container_version=version, source=source)
        nonce = None if f.record.get("nonce") is None else f.bytes("nonce", NONCE_SIZE)
        f._get("nonce", None)
        f.done()
    except SnapshotFormatError as exc:
        raise _damaged("seal header")(exc) from None
    if version >= 2 and not FIRST_FORMAT[version] <= info.payload_format <= FORMAT_VERSION:
        if info.payload_format > FORMAT_VERSION:
            raise UnsupportedVersion(f"the snapshot has format {info.payload_format}; this "
                                     f"reader knows formats up to {FORMAT_VERSION}: upgrade "
                                     f"offload-migrate to read it.")
        raise DowngradeError(f"the seal header names payload format {info.payload_format}, "
                             f"which container version {version} never holds (its first is "
                             f"format {FIRST_FORMAT[version]}): the file was re-sealed.")
    if (info.cipher == CipherName.AES_256_GCM) != (nonce is not None and
                                                  len(nonce) == NONCE_SIZE) or \
            (info.cipher == CipherName.AES_256_GCM) != (info.cipher_key_id is not None) or \
            (info.auth == Auth.NONE) != (info.auth_key_id is None):
        raise IntegrityError("the snapshot's seal header is damaged: its methods, key ids and "
                             "nonce do not agree.")
    return dict(raw), info, nonce


def _opt_id(f: Fields, key: str) -> str | None:
    if f.record.get(key) is None:
        f._get(key, None)
        return None
    return f.str(key, 16, empty=False)


def _parse_trailer(raw: Any, auth: Auth) -> dict[str, Any]:
    try:
        f = Fields(raw, "the seal trailer")
        out: dict[str, Any] = {"length": f.int("length"), "sha256": f.bytes("sha256", 32)}
        if len(out["sha256"]) != 32:
            raise f.fail("sha256", "must hold 32 bytes")
        if auth == Auth.ED25519:
            out["signature"] = f.bytes("signature", 64, default=b"")
        elif auth == Auth.HMAC_SHA256:
            out["mac"] = f.bytes("mac", 32, default=b"")
        f.done()
    except SnapshotFormatError as exc:
        raise _damaged("seal trailer")(exc) from None
    return out


def _stored(stream: BinaryIO, start: int, length: int, size: int = _BLOCK) -> Iterator[bytes]:
    """The bytes at ``start``, each block read at its own offset (the consumer may use the
    stream in between)."""
    while length:
        stream.seek(start)
        block = stream.read(min(size, length))
        if not block:
            raise IntegrityError("the snapshot file shrank while it was being read.")
        start += len(block)
        length -= len(block)
        yield block


def _payload(stream: BinaryIO, layout: _Layout, digest: Any,
             key: bytes | None, size: int = _BLOCK) -> Iterator[bytes]:
    """The payload's stored bytes, hashed into ``digest``; decrypted with ``key`` if given.

    The final step of decryption checks the GCM tag (DecryptionError when it does not match).
    """
    start, length = layout.payload_start, layout.payload_length
    if key is None:
        for block in _stored(stream, start, length, size):
            digest.update(block)
            yield block
        return
    if length < TAG_SIZE:
        raise IntegrityError("the encrypted payload is shorter than its authentication tag.")
    stream.seek(start + length - TAG_SIZE)
    tag = _read_exact(stream, TAG_SIZE, "authentication tag")
    if layout.nonce is None:  # _parse_header pairs the cipher with its nonce
        raise IntegrityError("the snapshot's seal header names a cipher without a nonce.")
    dec = _aes_gcm(key, layout.nonce, tag).decryptor()
    dec.authenticate_additional_data(layout.head)
    for block in _stored(stream, start, length - TAG_SIZE, size):
        digest.update(block)
        yield dec.update(block)
    digest.update(tag)
    from cryptography.exceptions import InvalidTag
    try:
        yield dec.finalize()
    except InvalidTag:
        raise DecryptionError(f"the snapshot does not decrypt with key "
                              f"{layout.info.cipher_key_id}: the key is wrong or the "
                              f"ciphertext was altered.") from None


def _check_auth(layout: _Layout, trust: Trust) -> bool:
    info, trailer = layout.info, layout.trailer
    message = signing_input(info.container_version, layout.payload_length, trailer["sha256"])
    if info.auth == Auth.NONE:
        if trust.signature_required:
            raise SignatureRequired("the snapshot is not signed, and the trust policy requires "
                                    "a signature or MAC by a given key (--trust, --hmac, "
                                    "--require-signature): it was sealed without one, or its "
                                    "signature was stripped.")
        return False
    if info.auth == Auth.ED25519:
        keys = {public_key_id(k): k for k in trust.trusted_keys}
        key = keys.get(info.auth_key_id or "")
        if key is None:
            if not trust.signature_required:
                return False
            raise SignatureError(f"the snapshot is signed by key {info.auth_key_id}, which is "
                                 f"not among the {len(keys)} trusted public keys.")
        from cryptography.exceptions import InvalidSignature
        try:
            key.verify(trailer["signature"], message)
        except InvalidSignature:
            raise SignatureError(f"the snapshot's signature by key {info.auth_key_id} does not "
                                 f"verify: the file was altered or re-signed.") from None
        return True
    if trust.mac_key is None:
        if not trust.signature_required:
            return False
        raise SignatureError(f"the snapshot is sealed with the shared MAC key "
                             f"{info.auth_key_id}; give that key to verify it.")
    if key_id(trust.mac_key) != info.auth_key_id:
        raise SignatureError(f"the snapshot is sealed with MAC key {info.auth_key_id}; the "
                             f"given key is {key_id(trust.mac_key)}.")
    expected = hmac.new(trust.mac_key, message, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, trailer["mac"]):
        raise SignatureError(f"the snapshot's MAC (key {info.auth_key_id}) does not verify: "
                             f"the file was altered.")
    return True


def _verify(stream: BinaryIO, layout: _Layout, trust: Trust) -> SealInfo:
    digest = hashlib.sha256(layout.head)
    for _ in _payload(stream, layout, digest, None):
        pass
    if not hmac.compare_digest(digest.digest(), layout.trailer["sha256"]):
        raise IntegrityError("the snapshot's SHA-256 digest does not match: the file was "
                             "altered or damaged.")
    authenticated = _check_auth(layout, trust)
    info = layout.info
    if info.cipher == CipherName.NONE and trust.encryption_required:
        raise EncryptionRequired("the snapshot is not encrypted, and a decryption key was given, "
                                 "which requires AES-256-GCM: it was sealed without encryption, "
                                 "or replaced by a file that was.")
    if info.cipher == CipherName.AES_256_GCM:
        key = trust.decryption_key
        if key is None:
            raise DecryptionError(f"the snapshot is encrypted with key {info.cipher_key_id}; "
                                  f"give that key to open it.")
        if key_id(key) != info.cipher_key_id:
            raise DecryptionError(f"the snapshot is encrypted with key {info.cipher_key_id}; "
                                  f"the given key is {key_id(key)}.")
        for _ in _payload(stream, layout, hashlib.sha256(), key):
            pass
    return replace(info, authenticated=authenticated)


def verify_sealed(stream: BinaryIO, trust: Trust = Trust()) -> SealInfo:
    """Check layout, digest, signature or MAC, and the GCM tag, in that order; decode nothing.

    The stream must be seekable (a file).
    """
    return _verify(stream, _layout(stream), trust)


class _Reader:
    """Blocks as a readable stream for the codec."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks, self._buf = blocks, b""

    def read(self, n: int) -> bytes:
        while not self._buf:
            block = next(self._blocks, None)
            if block is None:
                return b""
            self._buf = block
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def open_sealed(stream: BinaryIO, trust: Trust = Trust(),
                limits: DecodeLimits = DecodeLimits()) -> tuple[Snapshot, SealInfo]:
    """Verify everything first (:func:`verify_sealed`), then decode in a second pass that
    hashes again, so a file changed in between is refused as a whole."""
    from .codec import read_snapshot  # the decoder: a client that only forwards needs none

    layout = _layout(stream)
    info = _verify(stream, layout, trust)
    digest = hashlib.sha256(layout.head)
    key = trust.decryption_key if info.cipher == CipherName.AES_256_GCM else None
    blocks = _payload(stream, layout, digest, key)
    bound = info.container_version >= 2
    try:
        snapshot = read_snapshot(_Reader(blocks), limits,
                                 expected_format=info.payload_format if bound else None)
    except FormatMismatch as exc:
        raise IntegrityError(f"the seal header and the payload disagree: {exc}") from None
    for _ in blocks:  # whatever the codec left unread still counts for the digest
        pass
    if not hmac.compare_digest(digest.digest(), info.sha256):
        raise IntegrityError("the snapshot file changed while it was being opened.")
    if bound:
        _check_binding(snapshot, info)
    return snapshot, info


def _check_binding(snapshot: Snapshot, info: SealInfo) -> None:
    """Version 2: what the header says of the payload is what the payload holds."""
    _check_head(PayloadHead(info.payload_format, snapshot.device, snapshot.created_ns), info)


def _check_head(head: PayloadHead, info: SealInfo) -> None:
    if head.format != info.payload_format:
        raise IntegrityError(f"the seal header and the payload disagree: the payload has "
                             f"format {head.format}, its envelope says format "
                             f"{info.payload_format}.")
    if head.created_ns != info.created_ns:
        raise IntegrityError(f"the seal header and the payload disagree: created "
                             f"{info.created_ns} ns against {head.created_ns} ns.")
    if info.source is not None and info.source.name != head.device:
        raise IntegrityError(f"the seal header and the payload disagree: the source stamp "
                             f"names device {info.source.name!r}, the payload "
                             f"{head.device!r}.")


@dataclass(frozen=True, slots=True)
class VerifiedPayload:
    """A sealed file's payload after every seal check, to be read once, chunk by chunk.

    ``size`` counts the plaintext bytes ``chunks`` yields; ``head`` is the payload's header
    record (bound to the seal header in version 2). ``chunks`` reads the file a second time,
    hashing again: it raises :class:`IntegrityError` (or :class:`DecryptionError`) after its
    last chunk when the bytes are not the ones verified, so a consumer acts on the payload
    only once the iteration has ended normally.
    """

    info: SealInfo
    head: PayloadHead
    size: int
    chunks: Iterator[bytes]


def open_payload(stream: BinaryIO, trust: Trust = Trust(),
                 chunk_size: int = _BLOCK) -> VerifiedPayload:
    """Verify everything first (:func:`verify_sealed`), then hand out the payload for a
    second pass in chunks of ``chunk_size`` bytes, holding no more than one of them and the
    payload's header record. Nothing is decoded beyond that record."""
    if chunk_size <= 0:
        raise ValueError("the chunk size must be positive.")
    layout = _layout(stream)
    info = _verify(stream, layout, trust)
    key = trust.decryption_key if info.cipher == CipherName.AES_256_GCM else None
    size = layout.payload_length - (TAG_SIZE if key is not None else 0)
    digest = hashlib.sha256(layout.head)

    def checked() -> Iterator[bytes]:
        yield from _payload(stream, layout, digest, key, chunk_size)
        if not hmac.compare_digest(digest.digest(), info.sha256):
            raise IntegrityError("the snapshot file changed while it was being read: its "
                                 "bytes are not the ones verified.")

    head, chunks = peek_head(checked())
    if info.container_version >= 2:
        _check_head(head, info)
    return VerifiedPayload(info, head, size, chunks)
