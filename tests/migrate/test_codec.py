from __future__ import annotations

import io
import struct
import tracemalloc

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings

from migrate import codec
from migrate.codec import (
    ChunkLimits,
    DecodeLimits,
    SnapshotTooLarge,
    SnapshotTruncated,
    UnsupportedVersion,
    decode,
    encode,
    iter_records,
    read_snapshot,
    write_snapshot,
)
from migrate.entries import EntryChunk, MapEntries
from migrate.errors import SnapshotError
from migrate.records import chunk_crc, links_crc
from migrate.schema import SnapshotFormatError
from migrate.snapshot import FORMAT_VERSION, MapState, Snapshot
from offload.maps.spec import MapSpec
from offload.uapi import MapType

from .samples import fixture_snapshot, snapshots


def records_of(data: bytes) -> list[dict]:
    return list(msgpack.Unpacker(io.BytesIO(data), raw=False))


def pack(records: list[dict]) -> bytes:
    return b"".join(msgpack.packb(r, use_bin_type=True) for r in records)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_round_trip(snapshot: Snapshot) -> None:
    assert decode(encode(snapshot)) == snapshot


def test_fixture_round_trip_keeps_everything() -> None:
    snap = fixture_snapshot("xdp_tailcall", "xdp_config", "xdp_lpm", "xdp_redirect",
                            "xdp_firewall_v4")
    back = decode(encode(snap))
    assert back == snap
    prog = back.program("xdp_firewall")
    assert prog.spec.instructions == snap.program("xdp_firewall").spec.instructions
    assert prog.spec.line_info and prog.spec.line_info == snap.program("xdp_firewall").spec.line_info
    assert back.map("jump_table").links[0].target == "xdp_handle_tcp"
    assert back.map("xdp_conf.rodata").frozen
    assert back.map("handled").entries.cpus == 2
    assert back.map("handled").spec.type.is_percpu


def test_records_are_in_the_documented_order() -> None:
    kinds = [r["kind"] for r in records_of(encode(fixture_snapshot("xdp_tailcall")))]
    assert kinds[0] == "header" and kinds[-1] == "end"
    assert kinds[1:4] == ["map", "links", "map_end"]
    assert kinds.count("program") == 4 and kinds[-5:-1] == ["program"] * 4


def test_large_map_streams_in_bounded_chunks() -> None:
    n = 200_000
    spec = MapSpec("flows", MapType.HASH, 8, 16, n)
    made = 0

    def batches():  # as a live device would hand out batched lookups
        nonlocal made
        for start in range(0, n, 10_000):
            keys = b"".join((i + 1).to_bytes(8, "little") for i in range(start, start + 10_000))
            values = b"".join(i.to_bytes(16, "little") for i in range(start, start + 10_000))
            made += 10_000
            yield EntryChunk(10_000, keys, values)

    snap = fixture_snapshot("xdp_pass")
    streamed = Snapshot(snap.device, snap.capabilities, snap.features, snap.programs,
                        (MapState(spec, MapEntries.streamed(8, 16, batches())),), cpus=1)
    out = io.BytesIO()
    stats = write_snapshot(out, streamed, ChunkLimits(entries=4096, bytes=64 << 10))
    assert made == n and stats.entries == n
    chunks = [r for r in records_of(out.getvalue()) if r["kind"] == "entries"]
    assert all(r["count"] <= 2730 for r in chunks)  # 64 KiB / 24-byte entries
    assert all(len(r["keys"]) + len(r["values"]) <= 64 << 10 for r in chunks)
    assert sum(r["count"] for r in chunks) == n
    assert len(out.getvalue()) < n * 24 + 200 * len(chunks) + 4096  # ~24 bytes per entry
    back = read_snapshot(io.BytesIO(out.getvalue()))
    entries = back.map("flows").entries
    assert len(entries) == n
    # The reader keeps the decoded chunks instead of joining them into a second copy.
    assert max(c.count for c in entries.chunks) <= 2730
    pairs = iter(entries)
    assert next(pairs) == ((1).to_bytes(8, "little"), (0).to_bytes(16, "little"))


def test_writing_a_streamed_map_never_materialises_it() -> None:
    spec = MapSpec("m", MapType.ARRAY, 4, 8, 50_000)
    live = []

    def batches():
        for start in range(0, 50_000, 5_000):
            chunk = EntryChunk(5_000, b"".join(struct.pack("<I", i) for i in
                                               range(start, start + 5_000)), bytes(40_000))
            live.append(chunk)
            yield chunk
            live.pop()  # the writer let go of it

    snap = Snapshot("d", fixture_snapshot("xdp_pass").capabilities, 0,
                    maps=(MapState(spec, MapEntries.streamed(4, 8, batches())),))
    tracemalloc.start()
    write_snapshot(io.BytesIO(), snap)  # BytesIO keeps the output, but not a second copy
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * 50_000 * 12 + (4 << 20)


def test_truncated_stream_is_a_typed_error() -> None:
    data = encode(fixture_snapshot("xdp_counters"))
    with pytest.raises(SnapshotTruncated, match="ends inside record"):
        decode(data[:-3])
    without_trailer = pack(records_of(data)[:-1])
    with pytest.raises(SnapshotTruncated, match="without its end record"):
        decode(without_trailer)
    with pytest.raises(SnapshotTruncated, match="empty"):
        decode(b"")


def test_trailing_data_and_wrong_counts_are_refused() -> None:
    data = encode(fixture_snapshot("xdp_counters"))
    with pytest.raises(SnapshotFormatError, match="data follows"):
        decode(data + msgpack.packb({"kind": "end"}))
    records = records_of(data)
    records[-1]["entries"] += 1
    with pytest.raises(SnapshotFormatError, match="trailer counts"):
        decode(pack(records))


def _mutate(snapshot: Snapshot, fn) -> bytes:
    """Records changed by ``fn``, content CRCs recomputed: what a faulty writer would produce
    (damage after writing is the CRC's business, tested in tests/migrate/test_versions.py)."""
    records = records_of(encode(snapshot))
    fn(records)
    for r in records:
        if isinstance(r, dict) and r.get("kind") == "entries" and "crc" in r:
            r["crc"] = chunk_crc(r["keys"], r["values"])
        elif isinstance(r, dict) and r.get("kind") == "links" and "crc" in r:
            r["crc"] = links_crc(r["keys"], r["targets"])
    return pack(records)


@pytest.mark.parametrize(("mutation", "message"), [
    (lambda r: r[0].update(magic=b"NOPE"), "not a snapshot"),
    (lambda r: r[0].update(cpus=0), "'cpus' must be an integer in 1"),
    (lambda r: r[0].update(extra=1), "unexpected fields 'extra'"),
    (lambda r: r[0]["caps"].update(isa=7), "'isa' must be an integer in 1..4"),
    (lambda r: r[0]["caps"]["map_types"].append(999), "must be one of MapType"),
    (lambda r: r[1]["spec"].update(type=2.5), "must be one of MapType"),
    (lambda r: r[1]["spec"].update(key_size="4"), "'key_size' must be an integer"),
    (lambda r: r[2].update(keys=r[2]["keys"][:-1]), "'keys' holds"),
    (lambda r: r[2].update(values=r[2]["values"] + b"x"), "'values' holds"),
    (lambda r: r[2].update(keys=struct.pack("<I", 256) + r[2]["keys"][4:]),
     "index 256, beyond max_entries 256"),
    (lambda r: r[3].update(entries=4), "declares 4 entries"),
    (lambda r: r[4].update(bytecode=b"\xff" * 8), "not valid eBPF bytecode"),
    (lambda r: r[4]["map_refs"][0].__setitem__(1, "nope"), "does not hold"),
    (lambda r: r[4]["map_refs"][0].__setitem__(0, 1), "does not hold an lddw"),
    (lambda r: r[4]["counters"].append([9, 1, 1]), "must be one of XdpAction"),
    (lambda r: r[4].update(attach={"hook": "xdp"}), "lacks the field"),
    (lambda r: r.insert(4, {"kind": "bogus"}), "kind 'bogus'"),
    (lambda r: r.insert(4, [1, 2]), "kind None"),
])
def test_schema_violations_name_the_field(mutation, message) -> None:
    data = _mutate(fixture_snapshot("xdp_counters"), mutation)
    with pytest.raises(SnapshotFormatError, match=message):
        decode(data)


def test_duplicate_names_and_dangling_links_are_refused() -> None:
    snap = fixture_snapshot("xdp_tailcall")

    def dup_map(r):
        r[1:1] = r[1:4]

    with pytest.raises(SnapshotFormatError, match="appears twice"):
        decode(_mutate(snap, dup_map))

    def dangling(r):
        r[2]["targets"][0] = "ghost"

    with pytest.raises(SnapshotFormatError, match="links to program 'ghost'"):
        decode(_mutate(snap, dangling))


def test_hard_limits_refuse_before_allocating() -> None:
    # A bin that claims 4 GiB, an array that claims 2**32 - 1 items, a deep nest.
    for hostile in (b"\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\x91" * 100_000,
                    b"\xdf\xff\xff\xff\xff"):
        tracemalloc.start()
        with pytest.raises(SnapshotError):
            decode(hostile)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 16 << 20
    small = DecodeLimits(max_record_bytes=1 << 12)
    with pytest.raises(SnapshotTooLarge, match="larger than the decoder's limit"):
        decode(encode(fixture_snapshot("xdp_firewall_v4")), small)
    with pytest.raises(SnapshotTooLarge, match="more than 1 maps"):
        decode(encode(fixture_snapshot("xdp_firewall_v4")), DecodeLimits(max_maps=1))
    with pytest.raises(SnapshotTooLarge, match="bytes of contents"):
        decode(encode(fixture_snapshot("xdp_firewall_v4")), DecodeLimits(max_content_bytes=10))


def test_newer_format_is_unsupported() -> None:
    data = _mutate(fixture_snapshot("xdp_pass"), lambda r: r[0].update(version=99))
    with pytest.raises(UnsupportedVersion, match=f"format 99.*up to {FORMAT_VERSION}"):
        decode(data)
    data = _mutate(fixture_snapshot("xdp_pass"), lambda r: r[0].update(version=0))
    with pytest.raises(UnsupportedVersion, match="cannot upgrade"):
        decode(data)


def test_upgrade_chain_runs_older_formats_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """A made-up format 0 that called the device 'host': the chain renames it on the fly."""
    snap = fixture_snapshot("xdp_counters")

    def to_v0(r):
        r[0]["version"] = 0
        r[0]["host"] = r[0].pop("device")

    old = _mutate(snap, to_v0)

    def upgrade_v0_to_v1(records):
        for record in records:
            if record.get("kind") == "header":
                record = dict(record, version=1, device=record["host"])
                del record["host"]
            yield record

    monkeypatch.setitem(codec.UPGRADES, 0, upgrade_v0_to_v1)
    assert decode(old) == snap

    def broken(records):
        for record in records:
            yield record["missing"]

    monkeypatch.setitem(codec.UPGRADES, 0, broken)
    with pytest.raises(SnapshotFormatError, match="could not be upgraded.*KeyError"):
        decode(old)


def test_iter_records_yields_raw_records() -> None:
    data = encode(fixture_snapshot("xdp_pass"))
    kinds = [r["kind"] for r in iter_records(io.BytesIO(data))]
    assert kinds[0] == "header" and kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"program"}  # xdp_pass has no maps


def test_writer_refuses_inconsistent_snapshots() -> None:
    snap = fixture_snapshot("xdp_counters", cpus=2)
    bad = Snapshot(snap.device, snap.capabilities, snap.features, snap.programs, snap.maps,
                   cpus=4)
    with pytest.raises(SnapshotError, match="holds values for 2 CPUs"):
        encode(bad)
    with pytest.raises(SnapshotError, match=f"only format {FORMAT_VERSION}"):
        encode(Snapshot("d", snap.capabilities, 0, format_version=FORMAT_VERSION + 1))


def test_format_covers_every_model_field() -> None:
    """A field added to a spec must reach the format (and a format version bump)."""
    from dataclasses import fields

    from offload.caps.capabilities import Capabilities
    from offload.program import ProgramSpec

    assert {f.name for f in fields(ProgramSpec)} == {
        "name", "type", "instructions", "license", "section", "flags", "map_refs",
        "line_info", "functions", "core", "expected_attach_type"}  # expected_attach_type:
    # written only when set (a devmap or cpumap entry's program), refused as unknown by a
    # reader that predates it
    assert {f.name for f in fields(MapSpec)} == {
        "name", "type", "key_size", "value_size", "max_entries", "flags", "pinning", "inner",
        "contents", "frozen", "spin_lock_off"}  # contents: superseded by the map's current
    # entries; spin_lock_off: written only for a map with a lock, which a reader that predates
    # it refuses as an unknown field
    assert {f.name for f in fields(Capabilities)} == {
        "name", "isa_version", "helpers", "map_types", "prog_types", "limits", "features",
        "check_xdp_action", "description", "btf", "memory"}
