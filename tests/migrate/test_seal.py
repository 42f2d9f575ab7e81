from __future__ import annotations

import functools
import hashlib
import io
import os
import struct

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from migrate import seal as seal_module
from migrate.errors import SnapshotError
from migrate.keys import key_id
from migrate.seal import (
    CONTAINER_VERSION,
    END_MAGIC,
    FOOTER,
    PREFIX,
    Auth,
    CipherName,
    DecryptionError,
    IntegrityError,
    Seal,
    SealError,
    SignatureError,
    SignatureRequired,
    Trust,
    open_sealed,
    verify_sealed,
    write_sealed,
)
from migrate.snapshot import Snapshot

from .samples import fixture_snapshot, snapshots

SIGNER = Ed25519PrivateKey.generate()
OTHER_SIGNER = Ed25519PrivateKey.generate()
MAC_KEY = bytes(range(32))
ENC_KEY = bytes(range(32, 64))


def sealed(snapshot: Snapshot, how: Seal) -> bytes:
    out = io.BytesIO()
    write_sealed(out, snapshot, how)
    return out.getvalue()


@functools.cache
def sample() -> Snapshot:
    return fixture_snapshot("xdp_tailcall", "xdp_config")


SEALS = {
    "plain": (Seal(), Trust()),
    "signed": (Seal(signing_key=SIGNER), Trust((SIGNER.public_key(),), require_signature=True)),
    "mac": (Seal(mac_key=MAC_KEY), Trust(mac_key=MAC_KEY, require_signature=True)),
    "encrypted": (Seal(encryption_key=ENC_KEY), Trust(decryption_key=ENC_KEY)),
    "signed+encrypted": (Seal(signing_key=SIGNER, encryption_key=ENC_KEY),
                         Trust((SIGNER.public_key(),), decryption_key=ENC_KEY,
                               require_signature=True)),
    "mac+encrypted": (Seal(mac_key=MAC_KEY, encryption_key=ENC_KEY),
                      Trust(mac_key=MAC_KEY, decryption_key=ENC_KEY, require_signature=True)),
}


@pytest.mark.parametrize("mode", SEALS)
def test_each_seal_round_trips(mode: str) -> None:
    how, trust = SEALS[mode]
    data = sealed(sample(), how)
    snapshot, info = open_sealed(io.BytesIO(data), trust)
    assert snapshot == sample()
    assert info.authenticated == (how.signing_key is not None or how.mac_key is not None)
    assert (info.cipher == CipherName.AES_256_GCM) == (how.encryption_key is not None)
    if how.encryption_key is not None:  # nothing of the payload is readable
        assert b"xdp_handle_tcp" not in data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), st.sampled_from(sorted(SEALS)))
def test_round_trip_property(snapshot: Snapshot, mode: str) -> None:
    how, trust = SEALS[mode]
    assert open_sealed(io.BytesIO(sealed(snapshot, how)), trust)[0] == snapshot


# ---------------------------------------------------------------- refusals


def payload_start(data: bytes) -> int:
    return PREFIX.size + PREFIX.unpack_from(data)[2]


def refused(data: bytes, trust: Trust, error: type[SealError], match: str,
            decoded: list[int]) -> None:
    with pytest.raises(error, match=match):
        open_sealed(io.BytesIO(data), trust)
    assert decoded == []


@pytest.mark.parametrize("mode", SEALS)
def test_tampered_payload_is_an_integrity_error(mode: str, decoded: list[int]) -> None:
    how, trust = SEALS[mode]
    data = bytearray(sealed(sample(), how))
    data[payload_start(data) + 100] ^= 0x01
    refused(bytes(data), trust, IntegrityError, "SHA-256 digest does not match", decoded)


def test_tampered_header_is_an_integrity_error(decoded: list[int]) -> None:
    data = bytearray(sealed(sample(), Seal()))
    at = data.index(b"created_ns") + len(b"created_ns") + 3
    data[at] ^= 0x40
    refused(bytes(data), Trust(), IntegrityError, "digest does not match", decoded)


@pytest.mark.parametrize("cut", [1, 5, 12, 40, 500, 3000])
@pytest.mark.parametrize("mode", ["plain", "signed+encrypted"])
def test_truncated_file_is_an_integrity_error(mode: str, cut: int, decoded: list[int]) -> None:
    how, trust = SEALS[mode]
    data = sealed(sample(), how)
    refused(data[:-cut], trust, IntegrityError, "truncated|damaged", decoded)


def test_unsigned_when_required(decoded: list[int]) -> None:
    data = sealed(sample(), Seal(encryption_key=ENC_KEY))
    refused(data, Trust((SIGNER.public_key(),), decryption_key=ENC_KEY,
                        require_signature=True), SignatureRequired, "not signed", decoded)


def test_stripped_signature_is_unsigned(decoded: list[int]) -> None:
    """Rewriting a signed file as unsigned (digest recomputed) still needs a signature."""
    data = sealed(sample(), Seal(signing_key=SIGNER))
    start = payload_start(data)
    header = msgpack.unpackb(data[PREFIX.size:start])
    header.update(auth="none", auth_key_id=None)
    trailer_len, _ = FOOTER.unpack(data[-FOOTER.size:])
    payload = data[start:len(data) - FOOTER.size - trailer_len]
    forged = forge(header, payload, {})
    refused(forged, Trust((SIGNER.public_key(),), require_signature=True), SignatureRequired,
            "not signed", decoded)
    assert open_sealed(io.BytesIO(forged))[0] == sample()  # still fine for who asks nothing


def forge(header: dict, payload: bytes, extra: dict) -> bytes:
    head_bytes = msgpack.packb(header, use_bin_type=True)
    head = PREFIX.pack(b"\x89OMS\r\n\x1a\n", CONTAINER_VERSION, len(head_bytes)) + head_bytes
    trailer = msgpack.packb({"length": len(payload),
                             "sha256": hashlib.sha256(head + payload).digest(), **extra},
                            use_bin_type=True)
    return head + payload + trailer + FOOTER.pack(len(trailer), END_MAGIC)


def test_untrusted_signer(decoded: list[int]) -> None:
    data = sealed(sample(), Seal(signing_key=OTHER_SIGNER))
    refused(data, Trust((SIGNER.public_key(),)), SignatureError,
            "not among the 1 trusted public keys", decoded)


def test_bad_signature(decoded: list[int]) -> None:
    data = bytearray(sealed(sample(), Seal(signing_key=SIGNER)))
    trailer_len, _ = FOOTER.unpack(data[-FOOTER.size:])
    sig_at = data.rindex(b"signature", len(data) - FOOTER.size - trailer_len) + 11
    data[sig_at] ^= 0x80
    refused(bytes(data), Trust((SIGNER.public_key(),)), SignatureError, "does not verify",
            decoded)


def test_wrong_mac_key(decoded: list[int]) -> None:
    data = sealed(sample(), Seal(mac_key=MAC_KEY))
    refused(data, Trust(mac_key=bytes(32)), SignatureError, "sealed with MAC key", decoded)
    refused(data, Trust(require_signature=True), SignatureError, "give that key", decoded)


def test_wrong_or_missing_decryption_key(decoded: list[int]) -> None:
    data = sealed(sample(), Seal(encryption_key=ENC_KEY))
    refused(data, Trust(), DecryptionError, "give that key", decoded)
    refused(data, Trust(decryption_key=bytes(32)), DecryptionError,
            f"encrypted with key {key_id(ENC_KEY)}; the given key is", decoded)


def test_relabelled_key_fails_the_gcm_tag(decoded: list[int]) -> None:
    """A header claiming another key id (digest recomputed) is caught by the GCM tag."""
    data = sealed(sample(), Seal(encryption_key=ENC_KEY))
    start = payload_start(data)
    header = msgpack.unpackb(data[PREFIX.size:start])
    other = bytes(32)
    header["cipher_key_id"] = key_id(other)
    trailer_len, _ = FOOTER.unpack(data[-FOOTER.size:])
    forged = forge(header, data[start:len(data) - FOOTER.size - trailer_len], {})
    refused(forged, Trust(decryption_key=other), DecryptionError, "does not decrypt", decoded)


def test_not_a_snapshot_file() -> None:
    with pytest.raises(SnapshotError, match="not a sealed offload-migrate snapshot"):
        verify_sealed(io.BytesIO(b"\x00" * 64))


def test_seal_options_are_checked() -> None:
    with pytest.raises(SealError, match="not both"):
        Seal(signing_key=SIGNER, mac_key=MAC_KEY)
    with pytest.raises(SealError, match="32 bytes"):
        Seal(encryption_key=b"short")


def test_verify_reports_the_seal() -> None:
    data = sealed(sample(), Seal(signing_key=SIGNER, encryption_key=ENC_KEY))
    info = verify_sealed(io.BytesIO(data), Trust((SIGNER.public_key(),),
                                                 decryption_key=ENC_KEY))
    assert info.auth == Auth.ED25519 and info.authenticated
    assert info.cipher_key_id == key_id(ENC_KEY)
    assert info.payload_length == len(data) - payload_start(data) - FOOTER.size - \
        struct.unpack(">I", data[-FOOTER.size:-8])[0]


# ---------------------------------------------------------------- fuzzing
@functools.cache
def sealed_sample() -> bytes:
    return sealed(fixture_snapshot("xdp_counters"), Seal(signing_key=SIGNER,
                                                         encryption_key=ENC_KEY))


@settings(max_examples=120, deadline=None)
@given(st.lists(st.integers(0, 1 << 20), min_size=1, max_size=4), st.integers(0, 1 << 20))
def test_flips_and_truncations_of_sealed_files(bits: list[int], cut: int) -> None:
    data = bytearray(sealed_sample())
    for bit in bits:
        bit %= len(data) * 8
        data[bit // 8] ^= 1 << (bit % 8)
    data = data[:len(data) - cut % 64]
    assume(bytes(data) != sealed_sample())  # two flips of one bit cancel out
    with pytest.raises(SnapshotError):
        open_sealed(io.BytesIO(bytes(data)), Trust((SIGNER.public_key(),),
                                                   decryption_key=ENC_KEY))


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=512))
def test_random_files(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        open_sealed(io.BytesIO(b"\x89OMS\r\n\x1a\n" + data))
    with pytest.raises(SnapshotError):
        open_sealed(io.BytesIO(data))


def test_file_changed_between_passes(tmp_path, monkeypatch) -> None:
    """The decode pass hashes again: a file swapped after verification is refused."""
    data = sealed(sample(), Seal())
    path = tmp_path / "s"
    path.write_bytes(data)
    real_verify = seal_module._verify

    def verify_then_swap(stream, layout, trust):
        info = real_verify(stream, layout, trust)
        with open(path, "r+b") as f:
            f.seek(payload_start(data) + 200)
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 1]))
        return info

    monkeypatch.setattr(seal_module, "_verify", verify_then_swap)
    with open(path, "rb") as stream, pytest.raises(SnapshotError):
        open_sealed(stream)
