"""CPUMAP, XSKMAP, PERF_EVENT_ARRAY and RINGBUF against the host kernel's: the same errno for
the same creation attributes and element commands.

Where the device's meaning differs the cases are left out on purpose (docs/event-streams.md):
an xskmap value is a receive queue, not a socket fd; perf event array slots cannot be filled
from user space; the device's NR_CPUS (8192) is not the host's. Skipped, saying why, where
bpf() cannot be used.
"""

from __future__ import annotations

import errno
import struct

import pytest

from offload.backends.kernel import KernelMap, kernel_available, possible_cpus
from offload.errors import ErrnoError
from offload.maps import ENOTSUPP, MapSpec, create_map
from offload.uapi import MapFlags, MapType

from .test_hash import code

T, F = MapType, MapFlags
CREATE = [
    (T.CPUMAP, 4, 4, 4, 0), (T.CPUMAP, 4, 8, 4, 0), (T.CPUMAP, 4, 12, 4, 0),
    (T.CPUMAP, 8, 4, 4, 0), (T.CPUMAP, 4, 4, 0, 0), (T.CPUMAP, 4, 4, 4, F.NUMA_NODE),
    (T.CPUMAP, 4, 4, 4, F.RDONLY), (T.CPUMAP, 4, 4, 4, F.RDONLY_PROG),
    (T.XSKMAP, 4, 4, 4, 0), (T.XSKMAP, 4, 8, 4, 0), (T.XSKMAP, 4, 4, 0, 0),
    (T.XSKMAP, 4, 4, 4, F.RDONLY), (T.XSKMAP, 4, 4, 4, F.WRONLY),
    (T.XSKMAP, 4, 4, 4, F.RDONLY_PROG), (T.XSKMAP, 2, 4, 4, 0),
    (T.PERF_EVENT_ARRAY, 4, 4, 2, 0), (T.PERF_EVENT_ARRAY, 4, 4, 0, 0),
    (T.PERF_EVENT_ARRAY, 4, 8, 2, 0), (T.PERF_EVENT_ARRAY, 4, 4, 2, F.PRESERVE_ELEMS),
    (T.PERF_EVENT_ARRAY, 4, 4, 2, F.RDONLY_PROG), (T.PERF_EVENT_ARRAY, 4, 4, 2, F.MMAPABLE),
    (T.RINGBUF, 0, 0, 4096, 0), (T.RINGBUF, 0, 0, 8192, 0), (T.RINGBUF, 0, 0, 12288, 0),
    (T.RINGBUF, 0, 0, 2048, 0), (T.RINGBUF, 0, 0, 0, 0), (T.RINGBUF, 4, 0, 4096, 0),
    (T.RINGBUF, 0, 4, 4096, 0), (T.RINGBUF, 0, 0, 4096, F.NUMA_NODE),
    (T.RINGBUF, 0, 0, 4096, F.RDONLY), (T.RINGBUF, 0, 0, 1 << 20, 0),
]


@pytest.fixture(scope="module")
def ncpus() -> int:
    usable, reason = kernel_available()
    if not usable:
        pytest.skip(f"host-kernel backend unavailable: {reason}")
    return possible_cpus()


def kernel_code(fn, *args) -> int:
    try:
        fn(*args)
    except ErrnoError as exc:
        return exc.errno
    return 0


def kernel_create(spec: MapSpec) -> int:
    try:
        KernelMap.create(spec).close()
    except ErrnoError as exc:
        return exc.errno
    return 0


@pytest.mark.parametrize("shape", CREATE,
                         ids=lambda s: f"{s[0].name}-{s[1]}-{s[2]}-{s[3]}-{int(s[4]):#x}")
def test_creation_errno_matches(ncpus, shape):
    spec = MapSpec("judge", *shape)
    assert code(create_map, spec, ncpus=ncpus) == kernel_create(spec)


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def _run(ours, theirs, steps) -> list[str]:
    """Apply each (label, method, args) to both maps; the labels whose errno differs."""
    differ = []
    for label, method, args in steps:
        mine = code(getattr(ours, method), *args)
        kernel = kernel_code(getattr(theirs, {"get_next_key": "next_key"}.get(method, method)),
                             *args)
        if mine != kernel:
            differ.append(f"{label}: device {mine}, kernel {kernel}")
    return differ


def test_cpumap_elements(ncpus):
    spec = MapSpec("judge", T.CPUMAP, 4, 8, min(ncpus + 1, 8))
    ours = create_map(spec, ncpus=ncpus)
    with KernelMap.create(spec) as theirs:
        steps = [
            ("lookup empty", "lookup", (u32(0),)),
            ("update", "update", (u32(0), u32(64, 0))),
            ("lookup", "lookup", (u32(0),)),
            ("noexist", "update", (u32(0), u32(64, 0), 1)),
            ("exist on empty", "update", (u32(1), u32(8, 0), 2)),
            ("qsize 16385", "update", (u32(1), u32(16385, 0))),
            ("no such cpu", "update", (u32(ncpus), u32(8, 0))),
            ("past the end", "update", (u32(spec.max_entries), u32(8, 0))),
            ("bad flags", "update", (u32(0), u32(8, 0), 4)),
            ("bad program fd", "update", (u32(0), u32(8, 999))),
            ("qsize 0", "update", (u32(1), u32(0, 0))),
            ("lookup emptied", "lookup", (u32(1),)),
            ("delete", "delete", (u32(0),)),
            ("delete again", "delete", (u32(0),)),
            ("delete past the end", "delete", (u32(spec.max_entries),)),
        ]
        assert not _run(ours, theirs, steps)
        theirs.update(u32(0), u32(32, 0))
        ours.update(u32(0), u32(32, 0))
        assert ours.lookup(u32(0)) == theirs.lookup(u32(0))


def test_xskmap_perf_and_ringbuf_elements(ncpus):
    xsk = MapSpec("judge", T.XSKMAP, 4, 4, 4)
    perf = MapSpec("judge", T.PERF_EVENT_ARRAY, 4, 4, 2)
    ring = MapSpec("judge", T.RINGBUF, 0, 0, 4096)
    cases = {
        xsk: [("lookup", "lookup", (u32(0),)), ("delete empty", "delete", (u32(0),)),
              ("delete past the end", "delete", (u32(4),)),
              ("update past the end", "update", (u32(4), u32(0))),
              ("bad flags", "update", (u32(0), u32(0), 3)),
              ("next", "get_next_key", (u32(1),))],
        perf: [("lookup", "lookup", (u32(0),)), ("delete empty", "delete", (u32(0),)),
               ("delete past the end", "delete", (u32(2),)),
               ("update past the end", "update", (u32(2), u32(0))),
               ("next", "get_next_key", (u32(0),))],
        ring: [("lookup", "lookup", (b"",)), ("update", "update", (b"", b"")),
               ("delete", "delete", (b"",)), ("next", "get_next_key", (None,))],
    }
    differ = []
    for spec, steps in cases.items():
        ours = create_map(spec, ncpus=ncpus)
        with KernelMap.create(spec) as theirs:
            differ += [f"{spec.type.name} {d}" for d in _run(ours, theirs, steps)]
            if spec.key_size:  # the walk: the same keys, and the end after the last
                walk = [None, u32(0), u32(spec.max_entries - 2), u32(spec.max_entries + 5)]
                assert [theirs.next_key(key) for key in walk] == \
                    [ours.get_next_key(key) for key in walk]
                assert theirs.next_key(u32(spec.max_entries - 1)) is None
                assert code(ours.get_next_key, u32(spec.max_entries - 1)) == errno.ENOENT
    assert not differ, differ
    assert code(create_map(ring).lookup, b"") == ENOTSUPP  # the kernel's errno, 524
