"""How to build a hash map's key index from a restore's chunks: the alternatives side by side.

A HASH map keeps a dict from key to slot (offload/maps/hash.py); a restore fills it chunk by
chunk (4096 keys per batched update). Each candidate below builds the index of N 8-byte keys
from the same chunks; the candidates run alternating, CPU seconds (``time.process_time``),
median (min-max) of ``--runs``. Keys are random (what a flow table holds) or 0..N-1 (what
bench/snapshots.py writes), because integer keys hash to themselves and sequential ones fill
a dict in order. The last rows are a program's lookup of a fresh key object, as bytes and as
an int converted once, and the LRU map's recency list built by key and by slot.

    .venv/bin/python bench/key_index.py [--entries 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import struct
import sys
import time
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

KEY = 8
CHUNK = 4096


def chunks_of(blob: bytes) -> list[bytes]:
    step = CHUNK * KEY
    return [blob[i:i + step] for i in range(0, len(blob), step)]


def _struct_split() -> Callable[[bytes], tuple[bytes, ...]]:
    formats: dict[int, struct.Struct] = {}

    def split(chunk: bytes) -> tuple[bytes, ...]:
        n = len(chunk) // KEY
        unpack = formats.get(n)
        if unpack is None:
            unpack = formats[n] = struct.Struct(f"{KEY}s" * n)
        return unpack.unpack_from(chunk)
    return split


def _setdefault(chunks: list[bytes], cut: Callable[[bytes], Sequence[Any]]) -> dict:
    """setdefault inserts only absent keys, over the keys ``cut`` gives each chunk."""
    index: dict = {}
    first = 0
    for chunk in chunks:
        keys = cut(chunk)
        before = len(index)
        deque(map(index.setdefault, keys, range(first, first + len(keys))), maxlen=0)
        if len(index) != before + len(keys):
            raise ValueError("repeated key")
        first += len(keys)
    return index


def setdefault_struct(chunks: list[bytes]) -> dict:
    """Today's bulk path: one struct split, setdefault inserts only absent keys."""
    return _setdefault(chunks, _struct_split())


def _zip_update(chunks: list[bytes], cut: Callable[[bytes], Sequence[bytes]]) -> dict:
    """A chunk's own dict from zip over the keys ``cut`` gives, checked disjoint, merged."""
    index: dict = {}
    first = 0
    for chunk in chunks:
        keys = cut(chunk)
        new = dict(zip(keys, range(first, first + len(keys))))
        if len(new) != len(keys) or not index.keys().isdisjoint(new):
            raise ValueError("repeated key")
        index.update(new)
        first += len(keys)
    return index


def zip_update_struct(chunks: list[bytes]) -> dict:
    """A chunk's own dict from zip, checked disjoint, merged."""
    return _zip_update(chunks, _struct_split())


def zip_update_slices(chunks: list[bytes]) -> dict:
    """As above, keys cut by slicing the bytes."""
    return _zip_update(chunks, lambda chunk: [chunk[i:i + KEY]
                                              for i in range(0, len(chunk), KEY)])


def zip_update_memoryview(chunks: list[bytes]) -> dict:
    """As above, keys copied out of memoryview slices."""
    def cut(chunk: bytes) -> list[bytes]:
        view = memoryview(chunk)
        return list(map(bytes, [view[i:i + KEY] for i in range(0, len(chunk), KEY)]))
    return _zip_update(chunks, cut)


def setdefault_int(chunks: list[bytes]) -> dict:
    """8-byte keys held as ints from array('Q')."""
    return _setdefault(chunks, lambda chunk: array("Q", chunk))


def split_only(chunks: list[bytes]) -> list:
    """The struct split alone: what is not the dict."""
    split = _struct_split()
    return [split(chunk) for chunk in chunks]


def lru_by_key(chunks: list[bytes]) -> OrderedDict:
    """The LRU recency list before: keys, plus a key -> list dict."""
    split, recent, owner = _struct_split(), OrderedDict(), {}
    for chunk in chunks:
        keys = split(chunk)
        recent.update(dict.fromkeys(keys))
        owner.update(dict.fromkeys(keys, 0))
    return recent


def lru_by_slot(chunks: list[bytes]) -> OrderedDict:
    """The LRU recency list now: a run of slot numbers."""
    recent: OrderedDict[int, None] = OrderedDict()
    first = 0
    for chunk in chunks:
        n = len(chunk) // KEY
        recent.update(zip(range(first, first + n), repeat(None)))
        first += n
    return recent


BUILDS = [setdefault_struct, zip_update_struct, zip_update_slices, zip_update_memoryview,
          setdefault_int, split_only, lru_by_key, lru_by_slot]


def lookups(entries: int, runs: int) -> dict[str, list[float]]:
    """ns per lookup of a fresh key object (as the packet path reads one), bytes vs int."""
    blob = os.urandom(entries * KEY)
    keys = struct.unpack(f"{KEY}s" * entries, blob)
    by_bytes = dict(zip(keys, range(entries)))
    by_int = dict(zip(array("Q", blob), range(entries)))
    probes = [bytes(bytearray(keys[i])) for i in range(0, entries, max(1, entries // 100_000))]
    out: dict[str, list[float]] = {"lookup, bytes key": [], "lookup, int.from_bytes key": []}
    for _ in range(runs):
        fresh = [bytes(bytearray(p)) for p in probes]  # no cached hash, as from the packet
        start = time.process_time()
        get = by_bytes.get
        for key in fresh:
            get(key)
        out["lookup, bytes key"].append((time.process_time() - start) / len(fresh) * 1e9)
        fresh = [bytes(bytearray(p)) for p in probes]
        start = time.process_time()
        get, convert = by_int.get, int.from_bytes
        for key in fresh:
            get(convert(key, "little"))
        out["lookup, int.from_bytes key"].append((time.process_time() - start) / len(fresh)
                                                 * 1e9)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    kinds = {"random": os.urandom(args.entries * KEY),
             "sequential": array("Q", range(args.entries)).tobytes()}
    print(f"{args.entries:,} keys of {KEY} bytes in chunks of {CHUNK}; CPU seconds, median "
          f"(min-max) of {args.runs}; Python {sys.version.split()[0]}")
    print("| build | random keys | sequential keys |")
    print("| --- | ---: | ---: |")
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):
        for kind, blob in kinds.items():
            chunks = chunks_of(blob)
            for build in BUILDS:
                gc.collect()
                start = time.process_time()
                built = build(chunks)
                samples.setdefault((build.__name__, kind), []).append(
                    time.process_time() - start)
                del built
    for build in BUILDS:
        cells = []
        for kind in kinds:
            values = samples[(build.__name__, kind)]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f}-"
                         f"{max(values):.3f})")
        print(f"| `{build.__name__}` | {cells[0]} | {cells[1]} |")
    for name, values in lookups(args.entries, args.runs).items():
        print(f"| {name} (ns) | {statistics.median(values):.0f} ({min(values):.0f}-"
              f"{max(values):.0f}) | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
