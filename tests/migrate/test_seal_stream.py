"""Sealing and opening over a stream of payload chunks: the same files as sealing a decoded
snapshot, every seal check first, and a second pass that notices a file changed under it."""

from __future__ import annotations

import io

import msgpack
import pytest

from migrate import store
from migrate.codec import encode
from migrate.freshness import SourceStamp
from migrate.keys import generate_signing_key, generate_symmetric_key, load_public_key
from migrate.payload_head import MAX_HEAD_BYTES, PayloadHead, peek_head
from migrate.schema import SnapshotFormatError
from migrate.seal import (
    DecryptionError,
    IntegrityError,
    Seal,
    SealError,
    SignatureRequired,
    Trust,
    open_payload,
    seal_payload,
)

from . import forge
from .samples import fixture_snapshot

STAMP = SourceStamp("0" * 32, "fixture", 7)


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.fixture(scope="module")
def snap():
    return fixture_snapshot("xdp_lb_v4", "xdp_redirect")


@pytest.fixture
def keys(tmp_path):
    signer = generate_signing_key(tmp_path / "sign")
    enc = generate_symmetric_key(tmp_path / "enc")
    trust = Trust((load_public_key(tmp_path / "sign.pub"),), decryption_key=enc)
    return Seal(signing_key=signer, encryption_key=enc), trust


@pytest.mark.parametrize("size", [1, 7, 1 << 16])
def test_a_sealed_stream_opens_as_the_snapshot(snap, keys, tmp_path, size):
    seal, trust = keys
    payload = encode(snap)
    stamp = SourceStamp("0" * 32, snap.device, 3)
    path = tmp_path / "s.snap"
    info, head = store.save_payload(path, iter(pieces(payload, size)), seal, stamp)
    assert head == PayloadHead(2, snap.device, snap.created_ns)
    loaded, opened = store.load(path, trust)
    assert loaded == snap
    assert opened.authenticated and opened.source == stamp and opened.sha256 == info.sha256
    with store.open_verified(path, trust, chunk_size=size * 3) as verified:
        assert verified.head == head and verified.size == len(payload)
        assert b"".join(verified.chunks) == payload


def test_the_stream_and_the_snapshot_seal_the_same_bytes(snap, tmp_path):
    store.save(tmp_path / "a", snap)
    store.save_payload(tmp_path / "b", [encode(snap)])
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_sealing_refuses_a_payload_it_cannot_bind(snap):
    payload = encode(snap)
    with pytest.raises(SealError, match="names device 'fixture'"):
        seal_payload(io.BytesIO(), [payload], source=STAMP)
    with pytest.raises(SealError, match="format 1"):
        seal_payload(io.BytesIO(), [forge.as_format_1(payload)])
    for bad in ([], [b""], [msgpack.packb({"kind": "map"})], [b"\xc1"], [payload[:40]]):
        out = io.BytesIO()
        with pytest.raises(SnapshotFormatError):
            seal_payload(out, bad)
        assert out.getvalue() == b""  # nothing written before the head was known


def test_a_header_record_past_the_limit_is_refused_without_reading_on():
    big = msgpack.packb({"kind": "header", "pad": b"x" * MAX_HEAD_BYTES})
    read = []

    def chunks():
        for piece in pieces(big, 1 << 16):
            read.append(len(piece))
            yield piece

    with pytest.raises(SnapshotFormatError):
        peek_head(chunks())
    assert sum(read) <= MAX_HEAD_BYTES + (1 << 16)


def test_every_seal_check_comes_before_the_first_chunk(snap, keys, tmp_path):
    seal, trust = keys
    path = tmp_path / "s.snap"
    store.save_payload(path, [encode(snap)], Seal())
    with pytest.raises(SignatureRequired):
        store.open_verified(path, trust).__enter__()
    store.save_payload(path, [encode(snap)], seal)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        store.open_verified(path, trust).__enter__()


@pytest.mark.parametrize("encrypted", [False, True])
def test_a_file_changed_between_the_passes_is_refused_at_the_end(snap, keys, tmp_path,
                                                                 encrypted):
    seal, trust = keys
    if not encrypted:
        seal, trust = Seal(signing_key=seal.signing_key), Trust(trust.trusted_keys)
    path = tmp_path / "s.snap"
    store.save_payload(path, [encode(snap)], seal)
    with open(path, "r+b") as stream:
        verified = open_payload(stream, trust, chunk_size=256)  # verified; head read
        stream.seek(-200, io.SEEK_END)  # inside the payload's last record, not the head
        byte = stream.read(1)
        stream.seek(-200, io.SEEK_END)
        stream.write(bytes([byte[0] ^ 0x40]))
        stream.flush()
        got = []
        with pytest.raises(DecryptionError if encrypted else IntegrityError):
            for chunk in verified.chunks:
                got.append(chunk)
        assert got  # it was read, and the refusal came only at the end


def test_a_header_disagreeing_with_its_payload_is_refused_before_any_chunk(snap):
    payload = encode(snap)
    parts = forge.split(_sealed(payload))
    header = dict(parts.header, created_ns=parts.header["created_ns"] + 1)
    with pytest.raises(IntegrityError, match="disagree: created"):
        open_payload(io.BytesIO(forge.build(2, header, parts.payload)))


def _sealed(payload: bytes) -> bytes:
    out = io.BytesIO()
    seal_payload(out, [payload])
    return out.getvalue()
