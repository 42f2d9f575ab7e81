"""Snapshots to a msgpack stream and back, in bounded chunks, with hard decoding limits.

A payload is a sequence of msgpack maps (docs/snapshot-format.md): a header, then per map a
``map`` record, its contents as ``entries`` (or ``links``) records of at most ``chunk_entries``
entries and ``chunk_bytes`` bytes, and a ``map_end`` with the count; then one ``program`` record
per program; then an ``end`` trailer with the totals. Writing never holds more than one chunk
of encoded bytes; reading feeds the Unpacker block by block under fixed limits (buffer, bin,
string, array and map lengths, no ext types), checks every record against the schema and the
records before it, and returns a :class:`Snapshot` only once the trailer matched.
:func:`index_snapshot` reads a seekable file the same way but keeps map contents in the file:
each ``entries`` record is checked, then only its place is kept, and the snapshot's contents
read it again (and check it again) whenever they are iterated - so a daemon restoring a spooled
upload holds one chunk at a time beside the maps it fills.

Older formats pass through :data:`UPGRADES` first: ``UPGRADES[n]`` turns the raw records of
format ``n`` into those of ``n + 1`` (a generator over records, so upgrades stream too).
Format 2 added a CRC-32 to every ``entries`` and ``links`` chunk; :func:`upgrade_v1_to_v2`
computes it for format 1 records, whose bytes the seal's SHA-256 already vouched for. Two
fields are written only when they say something (so files without them read as before): the
device's BTF description in the capabilities (``btf``, when not ``uapi``) and a program's
CO-RE binding (``core``, when it has CO-RE relocations).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, BinaryIO, Protocol

import msgpack

from offload.device.sampler import MAX_SAMPLES
from offload.maps.spec import MapSpec
from offload.uapi import MapType

from .codec_limits import (
    ChunkLimits,
    DecodeLimits,
    FormatMismatch,
    SnapshotTooLarge,
    UnsupportedVersion,
)
from .entries import EntriesError, EntryChunk, MapEntries, StoredChunks
from .errors import SnapshotError
from .records import (
    chunk_crc,
    entries_record,
    header_record,
    links_crc,
    links_record,
    map_record,
    parse_caps,
    parse_counters,
    parse_entries,
    parse_links,
    parse_map,
    parse_program,
    parse_samples,
    program_record,
    samples_record,
    trailer_record,
)
from .schema import MAX_NAME, U64, Fields, SnapshotFormatError
from .snapshot import (
    FORMAT_VERSION,
    LINK_MAP_TYPES,
    MAGIC,
    MapLink,
    MapState,
    ProgramState,
    Snapshot,
)

Record = dict[str, Any]
Upgrade = Callable[[Iterator[Record]], Iterator[Record]]


def upgrade_v1_to_v2(records: Iterator[Record]) -> Iterator[Record]:
    """Format 1 -> 2: the header says 2, each contents chunk gains the CRC-32 of its bytes.

    Records that are not what format 1 allows are passed on untouched for the schema to
    refuse with its precise message (a CRC is computed only over well-typed fields).
    """
    for record in records:
        if isinstance(record, dict):
            kind = record.get("kind")
            if kind == "header":
                record = dict(record, version=2)
            elif kind == "entries" and "crc" not in record and \
                    isinstance(record.get("keys"), bytes) and \
                    isinstance(record.get("values"), bytes):
                record = dict(record, crc=chunk_crc(record["keys"], record["values"]))
            elif kind == "links" and "crc" not in record and \
                    isinstance(record.get("keys"), bytes) and \
                    isinstance(record.get("targets"), list) and \
                    all(isinstance(t, str) for t in record["targets"]):
                record = dict(record, crc=links_crc(record["keys"], record["targets"]))
        yield record


#: ``{n: upgrade}``: each turns the records of format ``n`` into format ``n + 1``.
UPGRADES: dict[int, Upgrade] = {1: upgrade_v1_to_v2}


class SnapshotTruncated(SnapshotFormatError):
    """The stream ended before the snapshot's trailer."""




@dataclass(frozen=True, slots=True)
class WriteStats:
    records: int
    bytes: int
    entries: int


class Writable(Protocol):
    """Where :func:`write_snapshot` writes: a binary file, or anything with its ``write``."""

    def write(self, data: bytes, /) -> object: ...


class Readable(Protocol):
    """What :func:`read_snapshot` reads: a binary file, or anything with its ``read``."""

    def read(self, size: int, /) -> bytes: ...


# ====================================================================== writing
def write_snapshot(stream: Writable, snapshot: Snapshot,
                   chunks: ChunkLimits = ChunkLimits()) -> WriteStats:
    """Write ``snapshot`` to ``stream`` record by record (map contents chunk by chunk)."""
    if snapshot.magic != MAGIC or snapshot.format_version != FORMAT_VERSION:
        raise SnapshotError(f"only format {FORMAT_VERSION} snapshots can be written, not "
                            f"format {snapshot.format_version}.")
    packer = msgpack.Packer(use_bin_type=True)
    records = written = entries = 0

    def put(record: Record) -> None:
        nonlocal records, written
        data = packer.pack(record)
        stream.write(data)
        records += 1
        written += len(data)

    put(header_record(snapshot.device, snapshot.capabilities, snapshot.features, snapshot.cpus,
                      snapshot.created_ns, snapshot.tool_version, snapshot.counters,
                      snapshot.format_version))
    for state in snapshot.maps:
        put(map_record(state))
        count = 0
        if state.spec.type in LINK_MAP_TYPES:
            step = max(1, min(chunks.entries, chunks.bytes // (state.spec.key_size + MAX_NAME)))
            for i in range(0, len(state.links), step):
                batch = state.links[i:i + step]
                put(links_record(b"".join(link.key for link in batch),
                                 [link.target for link in batch]))
                count += len(batch)
        else:
            assert state.entries is not None
            cpus = snapshot.cpus if state.spec.type.is_percpu else 1
            if state.entries.cpus != cpus:
                raise SnapshotError(f"map {state.name!r} holds values for "
                                    f"{state.entries.cpus} CPUs; the snapshot has "
                                    f"{cpus if state.spec.type.is_percpu else 1} per entry.")
            for chunk in state.entries.rechunk(chunks.entries, chunks.bytes):
                put(entries_record(_as_bytes(chunk)))
                count += chunk.count
        put({"kind": "map_end", "entries": count})
        entries += count
    for prog in snapshot.programs:
        put(program_record(prog))
    part: list[bytes] = []
    size = 0
    for frame in snapshot.samples:  # chunks of at most chunks.bytes, as map contents
        if part and size + len(frame) > chunks.bytes:
            put(samples_record(part))
            part, size = [], 0
        part.append(frame)
        size += len(frame)
    if part:
        put(samples_record(part))
    put(trailer_record(len(snapshot.maps), len(snapshot.programs), entries, records + 1))
    return WriteStats(records, written, entries)


def _as_bytes(chunk: EntryChunk) -> EntryChunk:
    if isinstance(chunk.keys, bytes) and isinstance(chunk.values, bytes):
        return chunk
    return EntryChunk(chunk.count, bytes(chunk.keys), bytes(chunk.values))


def encode(snapshot: Snapshot, chunks: ChunkLimits = ChunkLimits()) -> bytes:
    """The payload as bytes (small snapshots, tests); files stream with :func:`write_snapshot`."""
    buf = io.BytesIO()
    write_snapshot(buf, snapshot, chunks)
    return buf.getvalue()


# ====================================================================== reading
class _Records:
    """Raw msgpack objects from a stream, one at a time, within ``limits``."""

    def __init__(self, stream: Readable, limits: DecodeLimits) -> None:
        self._stream = stream
        self._limits = limits
        self._unpacker = msgpack.Unpacker(
            raw=False, use_list=True, strict_map_key=True, max_ext_len=0,
            max_buffer_size=limits.max_record_bytes, max_bin_len=limits.max_bin_len,
            max_str_len=limits.max_str_len, max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len)
        self._fed = 0
        self.count = 0
        #: where the record returned last lies in the stream: (start, end) offsets
        self.span = (0, 0)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        while True:
            try:
                obj = self._unpacker.unpack()
            except msgpack.OutOfData:
                self._feed()
                continue
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise SnapshotFormatError(f"record {self.count} is not valid msgpack within "
                                          f"the decoder's limits: {exc}.") from None
            self.count += 1
            end = self._unpacker.tell()
            self.span = (self.span[1], end)
            return obj

    def _feed(self) -> None:
        data = self._stream.read(self._limits.read_size)
        if not data:
            if self._fed > self._unpacker.tell():
                raise SnapshotTruncated(f"the snapshot ends inside record {self.count} (after "
                                        f"{self._fed} bytes).")
            raise StopIteration
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            raise SnapshotTooLarge(f"record {self.count} is larger than the decoder's limit "
                                   f"of {self._limits.max_record_bytes} bytes.") from None
        self._fed += len(data)


def iter_records(stream: Readable, limits: DecodeLimits = DecodeLimits(),
                 expected_format: int | None = None) -> Iterator[Record]:
    """The payload's raw records, upgraded to the current format (no schema checks yet).

    ``expected_format``: the format an authenticated envelope says the payload has; any other
    stored format is refused before an upgrade could hide it.
    """
    return _open(_Records(stream, limits), expected_format)[0]


def _open(raw: _Records, expected_format: int | None) -> tuple[Iterator[Record], int]:
    """The upgraded, guarded records of ``raw`` and the format they were stored in."""
    first = next(raw, None)
    if first is None:
        raise SnapshotTruncated("the snapshot is empty: no header record.")
    header = Fields(first, "record 0 (header)")
    if header.record.get("kind") != "header" or header.record.get("magic") != MAGIC:
        raise SnapshotFormatError("this is not a snapshot: the first record is not a header "
                                  f"with magic {MAGIC!r}.")
    version = header.int("version", 0, U64)
    if expected_format is not None and version != expected_format:
        raise FormatMismatch(f"the payload has format {version}, its envelope says format "
                             f"{expected_format}.")
    records: Iterator[Record] = chain([first], raw)
    if version > FORMAT_VERSION:
        raise UnsupportedVersion(f"the snapshot has format {version}; this reader knows formats "
                                 f"up to {FORMAT_VERSION}: upgrade offload-migrate to read it.")
    for step in range(version, FORMAT_VERSION):
        if step not in UPGRADES:
            raise UnsupportedVersion(f"the snapshot has format {version}, which this reader "
                                     f"cannot upgrade (no upgrade from format {step}).")
        records = UPGRADES[step](records)
    return _guarded(records), version


def _guarded(records: Iterator[Record]) -> Iterator[Record]:
    """Upgrades see hostile records too: anything they raise becomes a format error."""
    try:
        yield from records
    except SnapshotError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise SnapshotFormatError(f"the snapshot could not be upgraded to format "
                                  f"{FORMAT_VERSION}: {type(exc).__name__}: {exc}.") from None


class _Assembler:
    """Checks records in order and builds the snapshot: the reader's state machine."""

    def __init__(self, limits: DecodeLimits, spool: _Spool | None = None,
                 raw: _Records | None = None) -> None:
        self.limits = limits
        #: where map contents stay when they are not kept in memory (index_snapshot), and
        #: the reader that places each record in it
        self.spool = spool
        self.raw = raw
        self.header: dict[str, Any] = {}
        self.maps: dict[str, MapState] = {}
        self.programs: dict[str, ProgramState] = {}
        self.samples: list[bytes] = []
        self.entries = 0
        self.content_bytes = 0
        self.index = 0
        self.done = False

    def where(self, kind: str) -> str:
        return f"record {self.index} ({kind})"

    def read(self, records: Iterator[Record]) -> Snapshot:
        it = iter(records)
        for record in it:
            kind = record.get("kind") if isinstance(record, dict) else None
            if self.index == 0:
                self._header(Fields(record, self.where("header")))
            elif kind in ("map", "program") and self.samples:
                raise SnapshotFormatError(f"{self.where(str(kind))} comes after the sampled "
                                          f"frames, which follow every map and program.")
            elif kind == "map":
                self._map(Fields(record, self.where("map")), it)
            elif kind == "program":
                self._program(Fields(record, self.where("program")))
            elif kind == "samples":
                self._samples(Fields(record, self.where("samples")))
            elif kind == "end":
                self._trailer(Fields(record, self.where("end")))
                self.index += 1
                break
            else:
                raise SnapshotFormatError(f"{self.where('?')} has kind {kind!r} where a map, a "
                                          f"program, samples or the end was expected.")
            self.index += 1
        if not self.done:
            raise SnapshotTruncated(f"the snapshot ends after {self.index} records without "
                                    f"its end record.")
        if next(it, None) is not None:
            raise SnapshotFormatError(f"data follows the end record (record {self.index}).")
        return self._snapshot()

    def _header(self, f: Fields) -> None:
        f.str("kind")
        f.bytes("magic", 16)
        caps = f.sub("caps")
        self.header = dict(
            format_version=f.int("version", 1, FORMAT_VERSION),
            device=f.str("device", MAX_NAME), created_ns=f.int("created_ns"),
            tool_version=f.str("tool", MAX_NAME), features=f.int("features"),
            cpus=f.int("cpus", 1, 1 << 14), capabilities=parse_caps(caps),
            counters=parse_counters(f, "counters"))
        f.done()

    def _map(self, f: Fields, it: Iterator[Record]) -> None:
        f.str("kind")
        spec, frozen = parse_map(f)
        where = f"map {spec.name!r}"
        if spec.name in self.maps:
            raise SnapshotFormatError(f"{self.where('map')}: {where} appears twice.")
        if len(self.maps) >= self.limits.max_maps:
            raise SnapshotTooLarge(f"the snapshot holds more than {self.limits.max_maps} maps.")
        cpus = self.header["cpus"] if spec.type.is_percpu else 1
        chunks: list[EntryChunk] = []
        spans: list[tuple[int, int, int]] = []
        nbytes = 0
        links: list[MapLink] = []
        count = 0
        for record in it:
            self.index += 1
            kind = record.get("kind") if isinstance(record, dict) else None
            rf = Fields(record, f"{self.where(str(kind))} of {where}")
            if kind == "map_end":
                rf.str("kind")
                declared = rf.int("entries", 0, spec.max_entries)
                rf.done()
                if declared != count:
                    raise SnapshotFormatError(f"{rf.where}: it declares {declared} entries; "
                                              f"{count} came before it.")
                break
            if kind == "entries" and spec.type not in LINK_MAP_TYPES:
                rf.str("kind")
                chunk = parse_entries(rf, spec, self.header["cpus"], self.limits.max_bin_len)
                if self.spool is None or self.raw is None:
                    chunks.append(chunk)
                else:  # checked; read again from the file when the contents are used
                    spans.append((*self.raw.span, chunk.count))
                    nbytes += len(chunk.keys) + len(chunk.values)
                count += chunk.count
                self._grow(len(chunk.keys) + len(chunk.values))
                del chunk
            elif kind == "links" and spec.type in LINK_MAP_TYPES:
                rf.str("kind")
                part = parse_links(rf, spec, self.limits.max_bin_len, self.limits.max_array_len)
                links += part
                count += len(part)
                self._grow(sum(len(link.key) + len(link.target) for link in part))
            else:
                expected = "links" if spec.type in LINK_MAP_TYPES else "entries"
                raise SnapshotFormatError(f"{rf.where}: expected {expected} or map_end for a "
                                          f"{spec.type.name} map.")
            if count > spec.max_entries:
                raise SnapshotFormatError(f"{rf.where}: {where} holds more than its "
                                          f"max_entries {spec.max_entries}.")
        else:
            raise SnapshotTruncated(f"the snapshot ends inside the contents of {where}.")
        try:
            entries = MapEntries(spec.key_size, spec.value_size, cpus, tuple(chunks)) \
                if self.spool is None else MapEntries(
                    spec.key_size, spec.value_size, cpus,
                    _SpooledChunks(self.spool, spec, self.header["cpus"], tuple(spans),
                                   sum(n for _, _, n in spans), nbytes))
            self.maps[spec.name] = MapState(spec, entries, tuple(links), frozen)
        except EntriesError as exc:  # pragma: no cover - parse_entries checked the lengths
            raise SnapshotFormatError(f"{where}: {exc}") from None
        self.entries += count

    def _grow(self, nbytes: int) -> None:
        self.content_bytes += nbytes
        if self.content_bytes > self.limits.max_content_bytes:
            raise SnapshotTooLarge(f"the maps hold more than the decoder's limit of "
                                   f"{self.limits.max_content_bytes} bytes of contents.")

    def _program(self, f: Fields) -> None:
        f.str("kind")
        prog = parse_program(f, {name: m.spec for name, m in self.maps.items()})
        if prog.name in self.programs:
            raise SnapshotFormatError(f"{f.where}: program {prog.name!r} appears twice.")
        if len(self.programs) >= self.limits.max_programs:
            raise SnapshotTooLarge(f"the snapshot holds more than {self.limits.max_programs} "
                                   f"programs.")
        self.programs[prog.name] = prog

    def _samples(self, f: Fields) -> None:
        """Sampled frames come after every program and before the end, at most MAX_SAMPLES."""
        f.str("kind")
        room = MAX_SAMPLES - len(self.samples)
        if room <= 0:
            raise SnapshotTooLarge(f"{f.where}: the snapshot samples more than {MAX_SAMPLES} "
                                   f"frames.")
        frames = parse_samples(f, room)
        self._grow(sum(len(frame) for frame in frames))
        self.samples += frames

    def _trailer(self, f: Fields) -> None:
        f.str("kind")
        got = {"maps": len(self.maps), "programs": len(self.programs), "entries": self.entries,
               "records": self.index + 1}
        for key, value in got.items():
            declared = f.int(key)
            if declared != value:
                raise SnapshotFormatError(f"{f.where}: the trailer counts {declared} {key}; the "
                                          f"snapshot holds {value}.")
        f.done()
        self._check_links()
        self.done = True

    def _check_links(self) -> None:
        for state in self.maps.values():
            for link in state.links:
                if state.spec.type == MapType.PROG_ARRAY:
                    if link.target not in self.programs:
                        raise SnapshotFormatError(f"map {state.name!r} links to program "
                                                  f"{link.target!r}, which the snapshot does "
                                                  f"not hold.")
                    continue
                target = self.maps.get(link.target)
                if target is None or target.spec.type in LINK_MAP_TYPES:
                    raise SnapshotFormatError(f"map {state.name!r} links to {link.target!r}, "
                                              f"which is not a map the snapshot holds that "
                                              f"can be an inner map.")

    def _snapshot(self) -> Snapshot:
        return Snapshot(programs=tuple(self.programs.values()), maps=tuple(self.maps.values()),
                        samples=tuple(self.samples), magic=MAGIC, **self.header)


@dataclass(frozen=True, slots=True)
class _Spool:
    """The file an indexed snapshot's contents stay in, the format its records were stored
    in, and the limits they were read within."""

    file: BinaryIO
    version: int
    limits: DecodeLimits


class _SpooledChunks(StoredChunks):
    """One map's ``entries`` records, by place in the spool file; each is unpacked, upgraded
    and checked again (schema, CRC, keys) as it is read, one at a time."""

    def __init__(self, spool: _Spool, spec: MapSpec, cpus: int,
                 spans: tuple[tuple[int, int, int], ...], count: int, nbytes: int) -> None:
        self._spool = spool
        self._spec = spec
        self._cpus = cpus
        self._spans = spans
        self._count = count
        self._nbytes = nbytes

    @property
    def count(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __iter__(self) -> Iterator[EntryChunk]:
        spool, limits = self._spool, self._spool.limits
        for start, end, count in self._spans:
            spool.file.seek(start)
            data = spool.file.read(end - start)
            try:
                record = msgpack.unpackb(
                    data, raw=False, use_list=True, strict_map_key=True, max_ext_len=0,
                    max_bin_len=limits.max_bin_len, max_str_len=limits.max_str_len,
                    max_array_len=limits.max_array_len, max_map_len=limits.max_map_len)
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise SnapshotFormatError(f"the spooled contents of map {self._spec.name!r} "
                                          f"changed after they were checked: {exc}.") from None
            records: Iterator[Record] = iter([record])
            for step in range(spool.version, FORMAT_VERSION):
                records = UPGRADES[step](records)
            where = f"the spooled contents of map {self._spec.name!r}"
            f = Fields(next(_guarded(records)), where)
            f.str("kind")
            chunk = parse_entries(f, self._spec, self._cpus, limits.max_bin_len)
            if chunk.count != count:
                raise SnapshotFormatError(f"{where} changed after they were checked.")
            yield chunk


def index_snapshot(file: BinaryIO, limits: DecodeLimits = DecodeLimits(),
                   expected_format: int | None = None) -> Snapshot:
    """Decode a payload from a seekable file with every check of :func:`read_snapshot`, but
    leave map contents in the file: they are read again, a chunk at a time, each time they
    are iterated. The file must stay open and unchanged while the snapshot is used."""
    file.seek(0)
    raw = _Records(file, limits)
    records, version = _open(raw, expected_format)
    return _Assembler(limits, _Spool(file, version, limits), raw).read(records)


def read_snapshot(stream: Readable, limits: DecodeLimits = DecodeLimits(),
                  expected_format: int | None = None) -> Snapshot:
    """Decode a payload; a :class:`SnapshotError` subclass for anything malformed."""
    return _Assembler(limits).read(iter_records(stream, limits, expected_format))


def decode(data: bytes, limits: DecodeLimits = DecodeLimits()) -> Snapshot:
    return read_snapshot(io.BytesIO(data), limits)

