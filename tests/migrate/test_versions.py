"""Every snapshot format ever written stays readable: the golden files of each format version
(fixtures/snapshots/v<N>/, written once by that version's writer from real fixture devices) are
upgraded through ``codec.UPGRADES``, checked, and restored onto devices."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings

from fixtures.snapshots.generate import GOLDENS, TRAFFIC, device_for
from migrate.codec import (
    UPGRADES,
    decode,
    encode,
    index_snapshot,
    iter_records,
    upgrade_v1_to_v2,
)
from migrate.records import ChunkCorrupted
from migrate.restore import restore
from migrate.schema import SnapshotFormatError
from migrate.snapshot import FORMAT_VERSION, Snapshot
from migrate.store import load
from offload.caps import load_profile
from offload.device import build_device
from offload.maps.values import join_percpu

from .samples import snapshots

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "snapshots"
VERSIONS = sorted(int(p.name[1:]) for p in GOLDEN_DIR.glob("v*") if p.is_dir())
GOLDEN_FILES = sorted(GOLDEN_DIR.glob("v*/*.omsnap"))
#: flowmark's values hold bpf_ktime_get_ns() of each flow's SYN: not the same in two runs
TIMED = {"flowmark"}


def payload(path: Path) -> bytes:
    """The payload of an unencrypted sealed file (layout in docs/snapshot-format.md)."""
    data = path.read_bytes()
    (head_len,) = struct.unpack(">I", data[10:14])
    (trailer_len,) = struct.unpack(">I", data[-12:-8])
    return data[14 + head_len:len(data) - 12 - trailer_len]


def raw_records(data: bytes) -> list[dict]:
    return list(msgpack.Unpacker(io.BytesIO(data), raw=False))


def test_every_format_version_has_goldens_of_every_device() -> None:
    assert VERSIONS == list(range(1, FORMAT_VERSION + 1))
    for version in VERSIONS:
        assert sorted(p.stem for p in (GOLDEN_DIR / f"v{version}").glob("*.omsnap")) == \
            sorted(GOLDENS)
    assert set(UPGRADES) == set(range(1, FORMAT_VERSION))


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_goldens_hold_their_own_format_and_read_as_the_current_one(path: Path) -> None:
    version = int(path.parent.name[1:])
    records = raw_records(payload(path))
    assert records[0]["version"] == version
    chunks = [r for r in records if r["kind"] in ("entries", "links")]
    assert chunks, "every golden device has map contents"
    assert all(("crc" in r) == (version >= 2) for r in chunks)
    snapshot, info = load(path)
    assert info.payload_format == version
    assert snapshot.format_version == FORMAT_VERSION
    assert decode(encode(snapshot)) == snapshot
    # a daemon's index of the spooled payload upgrades each chunk again as it reads it
    assert index_snapshot(io.BytesIO(payload(path))) == snapshot


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_all_versions_of_a_golden_hold_the_same_device_state(name: str) -> None:
    snaps = [load(GOLDEN_DIR / f"v{v}" / f"{name}.omsnap")[0] for v in VERSIONS]
    first = snaps[0]
    for other in snaps[1:]:
        assert other.programs == first.programs and other.counters == first.counters
        assert other.features == first.features and other.capabilities == first.capabilities
        if name in TIMED:
            assert [sorted(k for k, _ in m.entries) for m in other.maps] == \
                [sorted(k for k, _ in m.entries) for m in first.maps]
        else:
            assert other.maps == first.maps


def _uapi(snapshot: Snapshot, name: str) -> list[tuple[bytes, bytes]]:
    state = snapshot.map(name)
    assert state.entries is not None
    out = []
    for key, value in state.entries:
        if isinstance(value, tuple):
            value = join_percpu(list(value), state.spec.value_size)
        out.append((key, value))
    return sorted(out)


def _outputs(pair, frames):
    results = []
    for frame in frames:
        action = pair.device.receive(frame)
        results.append((action, pair.driver.received(), list(pair.device.wire)))
        pair.device.wire.clear()
    return results


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_goldens_restore_and_behave_like_the_device_they_came_from(path: Path) -> None:
    snapshot, _ = load(path)
    target = build_device("target", load_profile("full"), ncpus=snapshot.cpus, seed=7)
    result = restore(snapshot, target.driver)
    assert result.plan.ok
    for state in snapshot.maps:
        if state.entries is not None and state.entries.materialised and \
                state.name in result.maps and not state.links:
            got = sorted(target.driver.map_items(result.maps[state.name]))
            assert got == _uapi(snapshot, state.name), state.name
    if path.stem not in TIMED:
        source = device_for(path.stem)  # the same fixture device, rebuilt
        assert _outputs(target, TRAFFIC) == _outputs(source, TRAFFIC)


def test_a_damaged_chunk_is_named_by_its_crc() -> None:
    data = payload(GOLDEN_DIR / f"v{FORMAT_VERSION}" / "counters.omsnap")
    records = raw_records(data)
    index = next(i for i, r in enumerate(records) if r["kind"] == "entries")
    values = bytearray(records[index]["values"])
    values[17] ^= 0x40
    records[index]["values"] = bytes(values)
    damaged = b"".join(msgpack.packb(r, use_bin_type=True) for r in records)
    with pytest.raises(ChunkCorrupted, match=f"record {index} \\(entries\\) of map "
                                             "'proto_stats'.*CRC-32"):
        decode(damaged)


def test_a_damaged_links_chunk_is_refused() -> None:
    data = payload(GOLDEN_DIR / f"v{FORMAT_VERSION}" / "tailcall.omsnap")
    records = raw_records(data)
    index = next(i for i, r in enumerate(records) if r["kind"] == "links")
    records[index]["targets"][0] = "xdp_handle_udp"
    with pytest.raises(ChunkCorrupted, match="keys and targets"):
        decode(b"".join(msgpack.packb(r, use_bin_type=True) for r in records))


def downgrade_to_v1(data: bytes) -> bytes:
    """What the format 1 writer wrote for the same snapshot: no CRCs, version 1."""
    out = []
    for record in raw_records(data):
        record.pop("crc", None)
        if record["kind"] == "header":
            record["version"] = 1
        out.append(msgpack.packb(record, use_bin_type=True))
    return b"".join(out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_format_1_upgrades_to_the_same_snapshot(snapshot: Snapshot) -> None:
    old = downgrade_to_v1(encode(snapshot))
    assert decode(old) == snapshot
    assert index_snapshot(io.BytesIO(old)) == snapshot


def test_the_upgrade_streams_and_leaves_malformed_records_to_the_schema() -> None:
    records = raw_records(downgrade_to_v1(encode(device_snapshot())))
    seen = []

    def source():
        for record in records:
            seen.append(record["kind"])
            yield record

    upgraded = upgrade_v1_to_v2(source())
    first = next(upgraded)
    assert first["version"] == 2 and seen == ["header"]  # one record in, one record out
    chunk = next(r for r in upgraded if r["kind"] == "entries")
    assert chunk["crc"] == zlib.crc32(chunk["keys"] + chunk["values"])
    bad = [dict(r) for r in records]
    entries = next(i for i, r in enumerate(bad) if r["kind"] == "entries")
    bad[entries]["keys"] = "not bytes"
    data = b"".join(msgpack.packb(r, use_bin_type=True) for r in bad)
    with pytest.raises(SnapshotFormatError, match="'keys' must be binary data"):
        decode(data)
    assert [r["kind"] for r in iter_records(io.BytesIO(data))][0] == "header"


def device_snapshot() -> Snapshot:
    return load(GOLDEN_DIR / f"v{FORMAT_VERSION}" / "firewall.omsnap")[0]
