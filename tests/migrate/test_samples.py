"""Sampled frames: the device's ring, the snapshot's samples records, seal and encryption."""

from __future__ import annotations

import io
from dataclasses import replace

import msgpack
import pytest

from migrate.checkpoint import checkpoint
from migrate.codec import ChunkLimits, SnapshotTooLarge, decode, encode
from migrate.records import samples_crc
from migrate.schema import SnapshotFormatError
from migrate.seal import Seal, Trust, open_sealed, write_sealed
from offload.caps.profiles import load_profile
from offload.device.pair import build_device
from offload.device.sampler import MAX_SAMPLE_BYTES, MAX_SAMPLES, FrameSampler
from offload.errors import ErrnoError

from .samples import fixture_snapshot

FRAMES = tuple(bytes([i]) * (60 + i) for i in range(10))


def records_of(data: bytes) -> list[dict]:
    return list(msgpack.Unpacker(io.BytesIO(data), raw=False))


def pack(records: list[dict]) -> bytes:
    return b"".join(msgpack.packb(r, use_bin_type=True) for r in records)


def test_the_ring_keeps_the_newest_frames_within_both_bounds():
    ring = FrameSampler(3)
    for frame in FRAMES[:5]:
        ring.add(frame)
    assert ring.recent() == FRAMES[2:5] and ring.seen == 5
    assert ring.recent(2) == FRAMES[3:5] and ring.recent(0) == ()
    small = FrameSampler(10, max_bytes=200)
    for frame in FRAMES:
        small.add(frame)
    assert small.bytes <= 200 and small.recent() == FRAMES[-2:]
    big = FrameSampler(1)
    big.add(bytes(MAX_SAMPLE_BYTES + 100))
    assert len(big.recent()[0]) == MAX_SAMPLE_BYTES
    for bad in (0, -1, MAX_SAMPLES + 1):
        with pytest.raises(ErrnoError, match="EINVAL"):
            FrameSampler(bad)


def test_a_device_samples_what_it_receives_only_when_asked():
    pair = build_device("a", load_profile("full"))
    pair.device.receive(FRAMES[0])
    assert pair.device.sampler is None and checkpoint(pair.device, samples=5).samples == ()
    pair.device.sample(4)
    for frame in FRAMES[1:7]:
        pair.device.receive(frame)
    assert checkpoint(pair.device, samples=3).samples == FRAMES[4:7]
    assert checkpoint(pair.device, samples=100).samples == FRAMES[3:7]
    assert checkpoint(pair.device).samples == ()
    pair.device.sample(0)
    assert pair.device.sampler is None


def test_samples_round_trip_in_bounded_chunks():
    snap = replace(fixture_snapshot("xdp_firewall"), samples=FRAMES)
    data = encode(snap, ChunkLimits(bytes=200))
    kinds = [r["kind"] for r in records_of(data)]
    assert kinds[-1] == "end" and kinds.count("samples") > 2
    assert kinds.index("samples") > max(i for i, k in enumerate(kinds) if k == "program")
    assert decode(data) == snap
    assert decode(encode(fixture_snapshot("xdp_firewall"))).samples == ()


@pytest.mark.parametrize("seal, trust", [
    (Seal(), Trust()),
    (Seal(encryption_key=bytes(32)), Trust(decryption_key=bytes(32))),
])
def test_samples_survive_seal_and_encryption(seal, trust):
    snap = replace(fixture_snapshot("xdp_firewall"), samples=FRAMES)
    out = io.BytesIO()
    write_sealed(out, snap, seal)
    opened, _ = open_sealed(io.BytesIO(out.getvalue()), trust)
    assert opened.samples == FRAMES
    if seal.encryption_key:
        assert FRAMES[9] not in out.getvalue()


def _with_samples_record(record: dict, *, before_program: bool = False) -> bytes:
    records = records_of(encode(fixture_snapshot("xdp_firewall")))
    end = records.pop()
    if before_program:
        at = next(i for i, r in enumerate(records) if r["kind"] == "program")
        records.insert(at, record)
    else:
        records.append(record)
    end["records"] = len(records) + 1
    return pack(records + [end])


def good(frames: list[bytes]) -> dict:
    return {"kind": "samples", "frames": frames, "crc": samples_crc(frames)}


@pytest.mark.parametrize("record, message", [
    ({"kind": "samples", "frames": [b"x"], "crc": 0}, "do not match their CRC-32"),
    (good([]), "is empty"),
    ({"kind": "samples", "frames": ["text"], "crc": 0}, "item 0 must be 1 to"),
    (good([b""]), "item 0 must be 1 to"),
    (good([bytes(MAX_SAMPLE_BYTES + 1)]), f"1 to {MAX_SAMPLE_BYTES} bytes"),
    ({"kind": "samples", "frames": [b"x"], "crc": samples_crc([b"x"]), "extra": 1}, "extra"),
    ({"kind": "samples", "frames": b"x", "crc": 0}, "must be a list"),
])
def test_hostile_samples_records_are_refused(record, message):
    with pytest.raises(SnapshotFormatError, match=message):
        decode(_with_samples_record(record))


def test_samples_before_a_program_or_too_many_are_refused():
    with pytest.raises(SnapshotFormatError, match="comes after the sampled frames"):
        decode(_with_samples_record(good([b"x"]), before_program=True))
    records = records_of(encode(fixture_snapshot("xdp_firewall")))
    end = records.pop()
    records += [good([b"y"] * 4000), good([b"z"] * 96), good([b"w"])]
    end["records"] = len(records) + 1
    with pytest.raises(SnapshotTooLarge, match=f"more than {MAX_SAMPLES} frames"):
        decode(pack(records + [end]))
