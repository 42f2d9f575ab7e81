"""The trust policy against an attacker who holds a signed snapshot but no trusted key: a
stripped signature, a re-seal as an older format or container, a signature of their own, a
stripped encryption. Every one is refused before a record is decoded."""

from __future__ import annotations

import functools
import io

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from migrate import seal as seal_module
from migrate.seal import (
    DecryptionError,
    Seal,
    SealError,
    SignatureError,
    SignatureRequired,
    Trust,
    open_sealed,
    write_sealed,
)
from migrate.snapshot import Snapshot

from .forge import as_format_1, build, split, v1_signature
from .samples import fixture_snapshot

SIGNER = Ed25519PrivateKey.generate()
ATTACKER = Ed25519PrivateKey.generate()
MAC_KEY = bytes(range(32))
ENC_KEY = bytes(range(32, 64))
TRUST = Trust((SIGNER.public_key(),))


@functools.cache
def sample() -> Snapshot:
    return fixture_snapshot("xdp_firewall")


def sealed(how: Seal) -> bytes:
    out = io.BytesIO()
    write_sealed(out, sample(), how)
    return out.getvalue()




def refused(data: bytes, trust: Trust, error: type[SealError], match: str,
            decoded: list[int]) -> None:
    with pytest.raises(error, match=match):
        open_sealed(io.BytesIO(data), trust)
    assert decoded == []


def unsigned(header: dict) -> dict:
    return {**header, "auth": "none", "auth_key_id": None}


def test_stripped_signature_is_refused_when_a_key_is_trusted(decoded: list[int]) -> None:
    parts = split(sealed(Seal(signing_key=SIGNER)))
    forged = build(parts.version, unsigned(parts.header), parts.payload)
    refused(forged, TRUST, SignatureRequired, "not signed", decoded)
    refused(forged, Trust(mac_key=MAC_KEY), SignatureRequired, "not signed", decoded)
    assert open_sealed(io.BytesIO(forged))[0] == sample()  # no trust asked: still readable


def test_a_mac_of_the_attackers_own_is_no_signature(decoded: list[int]) -> None:
    parts = split(sealed(Seal(signing_key=SIGNER)))
    import hashlib
    import hmac

    from migrate.keys import key_id
    own = bytes(32)
    header = {**parts.header, "auth": "hmac-sha256", "auth_key_id": key_id(own)}

    def mac(length: int, digest: bytes, head: bytes) -> dict:
        message = seal_module.signing_input(parts.version, length, digest)
        return {"mac": hmac.new(own, message, hashlib.sha256).digest()}

    forged = build(parts.version, header, parts.payload, sign=mac)
    refused(forged, TRUST, SignatureError, "MAC key", decoded)


def test_resealed_as_format_1_is_refused(decoded: list[int]) -> None:
    """The payload rewritten as format 1 (no chunk CRCs) in a version 1 container: unsigned,
    signed by the attacker, or with the original signature bytes - none is accepted."""
    parts = split(sealed(Seal(signing_key=SIGNER)))
    old = as_format_1(parts.payload)
    header = {key: parts.header[key] for key in ("auth", "auth_key_id", "cipher",
                                                 "cipher_key_id", "nonce", "created_ns")}
    header["format"] = 1
    stripped = build(1, unsigned(header), old)
    refused(stripped, TRUST, SignatureRequired, "not signed", decoded)
    from migrate.keys import public_key_id
    own = build(1, {**header, "auth_key_id": public_key_id(ATTACKER.public_key())}, old,
                sign=v1_signature(ATTACKER))
    refused(own, TRUST, SignatureError, "not among", decoded)
    kept = build(1, header, old, {"signature": parts.trailer["signature"]})
    refused(kept, TRUST, SignatureError, "does not verify", decoded)
    assert open_sealed(io.BytesIO(stripped))[0].programs == sample().programs  # untrusted read


def test_stripped_encryption_is_refused(decoded: list[int]) -> None:
    """An attacker without the AES key cannot read the file, but can replace it with a plain
    one: a reader holding the key requires the cipher."""
    plain = split(sealed(Seal()))
    refused(build(plain.version, plain.header, plain.payload), Trust(decryption_key=ENC_KEY),
            DecryptionError, "not encrypted", decoded)


def v2_signature(key):
    def sign(length: int, digest: bytes, head: bytes) -> dict:
        return {"signature": key.sign(seal_module.signing_input(2, length, digest))}
    return sign


def test_a_version_2_container_never_holds_format_1(decoded: list[int]) -> None:
    """Even signed by the trusted key: format 1 came before container version 2, so such a
    file was put together by hand."""
    from migrate.seal import DowngradeError
    parts = split(sealed(Seal(signing_key=SIGNER)))
    forged = build(2, {**parts.header, "format": 1}, as_format_1(parts.payload),
                   sign=v2_signature(SIGNER))
    for trust in (TRUST, Trust()):
        refused(forged, trust, DowngradeError, "never holds", decoded)


def test_the_header_is_bound_to_the_payload() -> None:
    """A version 2 header that names another payload format, creation time or device than
    the payload holds is refused, whoever sealed it."""
    from migrate.seal import IntegrityError
    parts = split(sealed(Seal(signing_key=SIGNER)))
    cases = {"format": (as_format_1(parts.payload), {"format": 2}),
             "created": (parts.payload, {"created_ns": parts.header["created_ns"] + 1}),
             "device": (parts.payload, {"source": {"device_id": "ab" * 16, "name": "other",
                                                   "generation": 3}})}
    for payload, change in cases.values():
        forged = build(2, {**parts.header, **change}, payload, sign=v2_signature(SIGNER))
        with pytest.raises(IntegrityError, match="disagree"):
            open_sealed(io.BytesIO(forged), TRUST)


def test_genuine_version_1_files_stay_readable_under_the_policy() -> None:
    """A file sealed and signed by container version 1 is authentic: accepted with the key,
    and carries no source stamp."""
    parts = split(sealed(Seal(signing_key=SIGNER)))
    header = {k: v for k, v in parts.header.items() if k != "source"}
    old = build(1, header, parts.payload, sign=v1_signature(SIGNER))
    snapshot, info = open_sealed(io.BytesIO(old), TRUST)
    assert snapshot == sample() and info.authenticated
    assert (info.container_version, info.source) == (1, None)
    v2_signed = build(1, header, parts.payload, sign=v2_signature(SIGNER))
    with pytest.raises(SignatureError, match="does not verify"):
        open_sealed(io.BytesIO(v2_signed), TRUST)  # a signature of one version fits no other


def test_source_stamp_round_trips_under_the_signature() -> None:
    from migrate.freshness import SourceStamp
    stamp = SourceStamp("0123456789abcdef" * 2, sample().device, 41)
    out = io.BytesIO()
    info = write_sealed(out, sample(), Seal(signing_key=SIGNER), source=stamp)
    assert info.source == stamp
    _, opened = open_sealed(io.BytesIO(out.getvalue()), TRUST)
    assert opened.source == stamp and opened.container_version == 2
    parts = split(out.getvalue())
    bumped = build(2, {**parts.header, "source": {**stamp.as_dict(), "generation": 99}},
                   parts.payload, {"signature": parts.trailer["signature"]})
    with pytest.raises(SignatureError, match="does not verify"):
        open_sealed(io.BytesIO(bumped), TRUST)
    with pytest.raises(SealError, match="names device"):
        write_sealed(io.BytesIO(), sample(), Seal(), source=SourceStamp(stamp.device_id, "x", 1))
