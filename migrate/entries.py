"""Map contents as packed chunks: the form that streams from a device to a file and back.

Every key of a map has ``key_size`` bytes and every value ``value_size`` bytes per CPU, so a run
of entries is two byte strings: the keys back to back, the values back to back (entry-major;
for per-CPU maps each entry holds ``cpus`` values in CPU order). Packing keeps a million
8-byte-key, 16-byte-value entries at 24 MB instead of a million Python objects, lets the codec
write a chunk without re-encoding it, and lets a reader keep the chunks it decoded as they are:
contents are never joined into one second copy.

:class:`MapEntries` holds materialised chunks (what a decoded snapshot has), chunks stored
elsewhere and read again on each pass (:class:`StoredChunks`: what a daemon's restore keeps, so
only the maps it fills hold the contents), or wraps a one-shot iterable of chunks (what a save
from a live device passes, so batches from the device go straight to the file).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import SnapshotError


class EntriesError(SnapshotError):
    """Map contents whose byte lengths do not match the map's key and value sizes."""


@dataclass(frozen=True, slots=True)
class EntryChunk:
    """``count`` entries: ``keys`` is count*key_size bytes, ``values`` count*value_size*cpus."""

    count: int
    keys: bytes
    values: bytes

    def check(self, key_size: int, value_size: int, cpus: int) -> None:
        if len(self.keys) != self.count * key_size:
            raise EntriesError(f"a chunk of {self.count} entries has {len(self.keys)} key bytes;"
                               f" {key_size}-byte keys need {self.count * key_size}.")
        need = self.count * value_size * cpus
        if len(self.values) != need:
            per = f"{value_size}-byte values" + (f" on {cpus} CPUs" if cpus > 1 else "")
            raise EntriesError(f"a chunk of {self.count} entries has {len(self.values)} value "
                               f"bytes; {per} need {need}.")


class StoredChunks(ABC):
    """Chunks kept outside memory (a spool file) and read again, one at a time, on every
    iteration; their total count and size are known without reading them."""

    @property
    @abstractmethod
    def count(self) -> int:
        """Entries in all chunks."""

    @property
    @abstractmethod
    def nbytes(self) -> int:
        """Key and value bytes in all chunks."""

    @abstractmethod
    def __iter__(self) -> Iterator[EntryChunk]:
        """The chunks, each checked as it is read."""


def _entry_size(key_size: int, value_size: int, cpus: int) -> int:
    return key_size + value_size * cpus


@dataclass(frozen=True, slots=True, eq=False)
class MapEntries:
    """The contents of one map as chunks of packed entries.

    ``cpus`` is 1 for ordinary maps and the source's CPU count for per-CPU maps. ``chunks`` is a
    tuple once materialised, or :class:`StoredChunks` read again on each pass;
    :meth:`streamed` wraps an iterable that may be consumed only once.
    """

    key_size: int
    value_size: int
    cpus: int = 1
    chunks: Iterable[EntryChunk] = field(default=())

    def __post_init__(self) -> None:
        if self.key_size < 0 or self.value_size < 0 or self.cpus < 1:
            raise EntriesError(f"invalid entry layout: key_size {self.key_size}, value_size "
                               f"{self.value_size}, cpus {self.cpus}.")
        if isinstance(self.chunks, tuple):
            for chunk in self.chunks:
                chunk.check(self.key_size, self.value_size, self.cpus)

    # ------------------------------------------------------------- construction
    @classmethod
    def from_pairs(cls, key_size: int, value_size: int,
                   pairs: Iterable[tuple[bytes, bytes | tuple[bytes, ...]]],
                   cpus: int = 1) -> MapEntries:
        """Pack ``(key, value)`` pairs; per-CPU values are tuples of ``cpus`` byte strings."""
        keys = bytearray()
        values = bytearray()
        count = 0
        for key, value in pairs:
            parts = value if isinstance(value, tuple) else (value,)
            if len(parts) != cpus:
                raise EntriesError(f"entry {count} has {len(parts)} values; the map keeps one "
                                   f"per CPU for {cpus} CPUs.")
            if len(key) != key_size:
                raise EntriesError(f"entry {count} has a {len(key)}-byte key; the map's keys "
                                   f"are {key_size} bytes.")
            for part in parts:
                if len(part) != value_size:
                    raise EntriesError(f"entry {count} has a {len(part)}-byte value; the map's "
                                       f"values are {value_size} bytes.")
                values += part
            keys += key
            count += 1
        chunks = (EntryChunk(count, bytes(keys), bytes(values)),) if count else ()
        return cls(key_size, value_size, cpus, chunks)

    @classmethod
    def streamed(cls, key_size: int, value_size: int, chunks: Iterable[EntryChunk],
                 cpus: int = 1) -> MapEntries:
        """Contents produced while writing (for example batched lookups on a live device)."""
        return cls(key_size, value_size, cpus, _checked(chunks, key_size, value_size, cpus))

    # ------------------------------------------------------------------ reading
    @property
    def materialised(self) -> bool:
        """Whether the contents can be read more than once (counted, compared, restored)."""
        return isinstance(self.chunks, (tuple, StoredChunks))

    def _readable(self) -> tuple[EntryChunk, ...] | StoredChunks:
        if not isinstance(self.chunks, (tuple, StoredChunks)):
            raise EntriesError("these map contents are a one-shot stream; they can be written "
                               "once but not counted or compared.")
        return self.chunks

    def __len__(self) -> int:
        chunks = self._readable()
        if isinstance(chunks, StoredChunks):
            return chunks.count
        return sum(chunk.count for chunk in chunks)

    @property
    def nbytes(self) -> int:
        chunks = self._readable()
        if isinstance(chunks, StoredChunks):
            return chunks.nbytes
        return sum(len(c.keys) + len(c.values) for c in chunks)

    def __iter__(self) -> Iterator[tuple[bytes, bytes | tuple[bytes, ...]]]:
        ks, vs, cpus = self.key_size, self.value_size, self.cpus
        for chunk in self._readable():
            for i in range(chunk.count):
                key = chunk.keys[i * ks:(i + 1) * ks]
                base = i * vs * cpus
                if cpus == 1:
                    yield key, chunk.values[base:base + vs]
                else:
                    yield key, tuple(chunk.values[base + c * vs:base + (c + 1) * vs]
                                     for c in range(cpus))

    def rechunk(self, max_entries: int, max_bytes: int) -> Iterator[EntryChunk]:
        """Chunks of at most ``max_entries`` entries and ``max_bytes`` bytes (at least one
        entry each), sliced without copying the contents as a whole."""
        size = _entry_size(self.key_size, self.value_size, self.cpus)
        if size > max_bytes:
            raise EntriesError(f"one entry takes {size} bytes, more than the chunk limit of "
                               f"{max_bytes} bytes.")
        step = max(1, min(max_entries, max_bytes // size if size else max_entries))
        vsize = self.value_size * self.cpus
        for chunk in self.chunks:
            for start in range(0, chunk.count, step):
                n = min(step, chunk.count - start)
                if start == 0 and n == chunk.count:
                    yield chunk
                    continue
                yield EntryChunk(n, chunk.keys[start * self.key_size:(start + n) * self.key_size],
                                 chunk.values[start * vsize:(start + n) * vsize])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MapEntries):
            return NotImplemented
        if (self.key_size, self.value_size, self.cpus) != \
                (other.key_size, other.value_size, other.cpus) or len(self) != len(other):
            return False
        return (_same_stream((c.keys for c in self._readable()), (c.keys for c in other._readable()))
                and _same_stream((c.values for c in self._readable()),
                                 (c.values for c in other._readable())))

    __hash__ = None  # type: ignore[assignment]  # unhashable: equal by contents

    def __repr__(self) -> str:
        count = str(len(self)) if self.materialised else "streamed"
        return (f"MapEntries(key_size={self.key_size}, value_size={self.value_size}, "
                f"cpus={self.cpus}, entries={count})")


def _checked(chunks: Iterable[EntryChunk], key_size: int, value_size: int,
             cpus: int) -> Iterator[EntryChunk]:
    for chunk in chunks:
        chunk.check(key_size, value_size, cpus)
        yield chunk


def _same_stream(a: Iterable[bytes], b: Iterable[bytes]) -> bool:
    """Whether two sequences of byte strings concatenate to the same bytes, without joining."""
    ia, ib = iter(a), iter(b)
    bufa, bufb = memoryview(b""), memoryview(b"")
    while True:
        while not bufa:
            nxt = next(ia, None)
            if nxt is None:
                break
            bufa = memoryview(nxt)
        while not bufb:
            nxt = next(ib, None)
            if nxt is None:
                break
            bufb = memoryview(nxt)
        if not bufa or not bufb:
            return not bufa and not bufb
        n = min(len(bufa), len(bufb))
        if bufa[:n] != bufb[:n]:
            return False
        bufa, bufb = bufa[n:], bufb[n:]

