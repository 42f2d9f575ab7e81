"""bpf_redirect_map through cpumaps and xskmaps, bpf_perf_event_output, bpf_ringbuf_output
and bpf_ringbuf_query: both engines give the same answers, the answers are the kernel's, and
where the host kernel can be used it judges the same programs (perf events opened on each CPU
and read from their rings, ring buffers through their positions).
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import mmap
import os
import platform
import struct

import pytest

from offload.backends.builtin import BuiltinBackend
from offload.backends.kernel import KernelBackend, kernel_available, possible_cpus
from offload.caps.profiles import load_profile
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.runtime.xdp_env import REDIRECT_CPU, REDIRECT_XSK
from offload.uapi import MapType, ProgType, XdpAction

CAPS = load_profile("full")
ENGINES = ("fast", "reference")
FRAME = bytes(range(60))
NCPUS = 2
RESULTS = 9  # an ARRAY of 16 u64: what the program's helper calls returned
PROG = 100


def _builtin(engine: str) -> BuiltinBackend:
    return BuiltinBackend(CAPS, engine=engine, ncpus=NCPUS, seed=1,
                          clock=itertools.count(1000, 10).__next__)


def _load(backend, maps: dict[int, MapSpec], text: str) -> None:
    for handle, spec in maps.items():
        backend.create_map(handle, spec)
    backend.create_map(RESULTS, MapSpec("results", MapType.ARRAY, 4, 128, 1))
    backend.load_program(PROG, assemble(text), prog_type=ProgType.XDP, name="t",
                         license="GPL")


def _results(backend) -> tuple[int, ...]:
    raw = backend.map(RESULTS).lookup(bytes(4))
    return struct.unpack("<16q", raw)


def _save(slot: int) -> str:
    """Store r0 into the results array at u64 ``slot`` (r6 = ctx is kept)."""
    return (f"mov %r7, %r0\nstw [%r10-4], 0\nlddw %r1, map_fd({RESULTS})\nmov %r2, %r10\n"
            f"add %r2, -4\ncall 1\njeq %r0, 0, +1\nstxdw [%r0+{8 * slot}], %r7\n")


# ---------------------------------------------------------------- redirects
CPUS, XSKS = 1, 2
REDIRECT_MAPS = {CPUS: MapSpec("cpus", MapType.CPUMAP, 4, 4, 4),
                 XSKS: MapSpec("xsks", MapType.XSKMAP, 4, 4, 4)}
#: (map, key, flags) -> (r0, the target's (kind, cpu or queue, qsize) or None)
REDIRECTS = [
    (CPUS, 1, 0, XdpAction.REDIRECT, (REDIRECT_CPU, 1, 8)),
    (CPUS, (1 << 32) | 1, 0, XdpAction.REDIRECT, (REDIRECT_CPU, 1, 8)),  # a u32 key
    (CPUS, 0, XdpAction.PASS, XdpAction.PASS, None),  # empty: the flags' action
    (CPUS, 7, XdpAction.DROP, XdpAction.DROP, None),  # past the end
    (CPUS, 1, 4, XdpAction.ABORTED, None),  # flags beyond the action bits
    (XSKS, 2, 0, XdpAction.REDIRECT, (REDIRECT_XSK, 3, 0)),
    (XSKS, 1, XdpAction.TX, XdpAction.TX, None),
    (XSKS, 9, 0, XdpAction.ABORTED, None),
]


def _redirect_program(handle: int, key: int, flags: int) -> str:
    return (f"lddw %r1, map_fd({handle})\nlddw %r2, {key:#x}\nmov %r3, {flags}\ncall 51\n"
            "exit\n")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("handle", "key", "flags", "retval", "target"), REDIRECTS)
def test_redirect_map_names_its_target(engine, handle, key, flags, retval, target):
    backend = _builtin(engine)
    _load(backend, REDIRECT_MAPS, _redirect_program(handle, key, flags))
    backend.map(CPUS).update(struct.pack("<I", 1), struct.pack("<I", 8))
    backend.map(XSKS).update(struct.pack("<I", 2), struct.pack("<I", 3))
    out = backend.run_xdp(PROG, FRAME)
    seen = out.redirect_target
    assert out.retval == retval and out.error is None
    assert (None if seen is None else (seen.kind, seen.ifindex, seen.qsize)) == target
    assert out.redirect_ifindex is None  # not an interface


def test_a_socket_lookup_reads_the_queue_id_on_both_engines():
    text = ("mov %r6, %r1\nstw [%r10-8], 2\nlddw %r1, map_fd(2)\nmov %r2, %r10\n"
            "add %r2, -8\ncall 1\njeq %r0, 0, +2\nldxw %r0, [%r0+0]\nexit\nmov %r0, 99\nexit\n")
    seen = []
    for engine in ENGINES:
        backend = _builtin(engine)
        _load(backend, REDIRECT_MAPS, text)
        first = backend.run_xdp(PROG, FRAME).retval
        backend.map(XSKS).update(struct.pack("<I", 2), struct.pack("<I", 3))
        seen.append((first, backend.run_xdp(PROG, FRAME).retval))
    assert seen == [(99, 3), (99, 3)]


# ---------------------------------------------------------------- perf event output
PERF = 3
PERF_MAPS = {PERF: MapSpec("samples", MapType.PERF_EVENT_ARRAY, 4, 4, 4)}
CURRENT = 0xFFFFFFFF
#: flags of each call; the program outputs the 8 stack bytes 0x1122334455667788 each time
PERF_FLAGS = [CURRENT, 0, 1, 3, 4, (14 << 32) | CURRENT, (60 << 32) | CURRENT,
              (61 << 32) | CURRENT, 1 << 52]


def _perf_program(flags: list[int]) -> str:
    text = "mov %r6, %r1\n"
    for slot, value in enumerate(flags):
        text += ("lddw %r1, 0x1122334455667788\nstxdw [%r10-16], %r1\nmov %r1, %r6\n"
                 f"lddw %r2, map_fd({PERF})\nlddw %r3, {value:#x}\nmov %r4, %r10\n"
                 f"add %r4, -16\nmov %r5, 8\ncall 25\n{_save(slot)}")
    return text + "mov %r0, 2\nexit\n"


def _perf_expected(cpu: int) -> tuple[list[int], list[bytes]]:
    data = struct.pack("<Q", 0x1122334455667788)
    results, records = [], []
    for flags in PERF_FLAGS:
        index, packet = flags & 0xFFFFFFFF, flags >> 32
        if flags & ~((0xFFFFF << 32) | 0xFFFFFFFF):
            results.append(-errno.EINVAL)
        elif packet > len(FRAME):
            results.append(-errno.EFAULT)
        else:
            index = cpu if index == CURRENT else index
            if index >= 4:
                results.append(-errno.E2BIG)
            elif index >= NCPUS:
                results.append(-errno.ENOENT)
            elif index != cpu:
                results.append(-errno.EOPNOTSUPP)
            else:
                results.append(0)
                records.append(data + FRAME[:packet])
    return results, records


@pytest.mark.parametrize("cpu", [0, 1])
def test_perf_event_output_on_both_engines(cpu):
    results, records = _perf_expected(cpu)
    for engine in ENGINES:
        backend = _builtin(engine)
        _load(backend, PERF_MAPS, _perf_program(PERF_FLAGS[:8]))
        out = backend.run_xdp(PROG, FRAME, rx_queue_index=cpu)
        assert out.error is None and out.retval == XdpAction.PASS
        assert list(_results(backend))[:8] == results[:8], engine
        events = backend.map(PERF).take_events()
        assert [e.data for e in events] == records and {e.stream for e in events} <= {cpu}


# ---------------------------------------------------------------- ring buffer
RING = 4
RING_MAPS = {RING: MapSpec("ring", MapType.RINGBUF, 0, 0, 4096)}
#: 512-byte records cost 520, rounded to 8: seven fill the 4 KiB ring after the first two,
#: the eighth is -EAGAIN, a small one still fits
RB_SIZES = (5, 0) + (500,) * 8 + (64,)
RB_QUERIES = (0, 1, 2, 3, 4)  # available bytes, size, consumer, producer, no such flag


def _ring_program() -> str:
    text = "mov %r6, %r1\n" + "".join(f"stdw [%r10-{8 * i}], {i}\n" for i in range(1, 65))
    for slot, size in enumerate(RB_SIZES):
        text += (f"lddw %r1, map_fd({RING})\nmov %r2, %r10\nadd %r2, -512\nmov %r3, {size}\n"
                 f"mov %r4, 0\ncall 130\n{_save(slot)}")
    for slot, query in enumerate(RB_QUERIES, start=len(RB_SIZES)):
        text += f"lddw %r1, map_fd({RING})\nmov %r2, {query}\ncall 134\n{_save(slot)}"
    return text + "mov %r0, 2\nexit\n"


def _stack_bytes(size: int) -> bytes:
    """What the program's stack holds from fp-512: slot i (from fp) holds the number i."""
    image = b"".join(struct.pack("<Q", i) for i in range(64, 0, -1))
    return image[:size]


def test_ringbuf_output_and_query_on_both_engines():
    used = 16 + 8 + 7 * 512 + 72
    expected = (0, 0) + (0,) * 7 + (-errno.EAGAIN, 0) + (used, 4096, 0, used, 0)
    for engine in ENGINES:
        backend = _builtin(engine)
        _load(backend, RING_MAPS, _ring_program())
        out = backend.run_xdp(PROG, FRAME)
        assert out.error is None
        assert _results(backend)[:len(expected)] == expected, engine
        assert [e.data for e in backend.map(RING).take_events()] == \
            [_stack_bytes(n) for n in (5, 0) + (500,) * 7 + (64,)]


# ---------------------------------------------------------------- the host kernel as judge
def _kernel() -> KernelBackend:
    usable, reason = kernel_available()
    if not usable:
        pytest.skip(f"host-kernel backend unavailable: {reason}")
    if possible_cpus() < NCPUS:
        pytest.skip(f"the host has {possible_cpus()} CPU(s); the cases need {NCPUS}")
    return KernelBackend(CAPS)  # the kernel creates what the full profile offers


def test_the_kernel_agrees_on_ring_buffers():
    with _kernel() as kernel:
        _load(kernel, RING_MAPS, _ring_program())
        out = kernel.run_xdp(PROG, FRAME)
        assert out.retval == XdpAction.PASS
        theirs = _results(kernel)
    backend = _builtin("fast")
    _load(backend, RING_MAPS, _ring_program())
    backend.run_xdp(PROG, FRAME)
    assert _results(backend) == theirs


def _run_on_cpu(kernel: KernelBackend, cpu: int) -> int:
    """A test run on ``cpu`` (the host's interfaces have one receive queue, so the CPU is
    chosen by affinity, not by the queue); the program's return value."""
    from offload.backends.kernel.xdp_run import run_xdp

    saved = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError as exc:
        pytest.skip(f"cannot run on CPU {cpu}: {exc}")
    try:
        return run_xdp(kernel.programs[PROG], FRAME).retval
    finally:
        os.sched_setaffinity(0, saved)


SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}.get(platform.machine())
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_RAW = 1, 10, 1 << 10
PERF_RECORD_SAMPLE = 9
PAGES = 8


class PerfRing:
    """A BPF output event on one CPU and its mmap'ed ring (perf_event_open(2))."""

    def __init__(self, cpu: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        attr = bytearray(64)  # PERF_ATTR_SIZE_VER0
        struct.pack_into("<IIQQQQQI", attr, 0, PERF_TYPE_SOFTWARE, 64, PERF_COUNT_SW_BPF_OUTPUT,
                         1, PERF_SAMPLE_RAW, 0, 0, 1)
        buf = (ctypes.c_char * len(attr)).from_buffer(attr)
        fd = libc.syscall(SYS_PERF_EVENT_OPEN, buf, -1, cpu, -1, 0)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "perf_event_open")
        self.fd = fd
        self.page = mmap.PAGESIZE
        self.ring = mmap.mmap(fd, self.page * (1 + PAGES))

    def records(self) -> list[bytes]:
        head = struct.unpack_from("<Q", self.ring, 1024)[0]
        size = self.page * PAGES
        data = self.ring[self.page:self.page + size]
        out, pos = [], 0
        while pos < head:
            kind, _, length = struct.unpack_from("<IHH", data, pos % size)
            if kind == PERF_RECORD_SAMPLE:
                raw = struct.unpack_from("<I", data, (pos + 8) % size)[0]
                out.append(bytes(data[(pos + 12) % size:(pos + 12) % size + raw]))
            pos += length
        return out

    def close(self) -> None:
        self.ring.close()
        os.close(self.fd)


@pytest.mark.parametrize("cpu", [0, 1])
def test_the_kernel_agrees_on_perf_event_output(cpu):
    if SYS_PERF_EVENT_OPEN is None:
        pytest.skip(f"no perf_event_open number known for {platform.machine()}")
    with _kernel() as kernel:
        _load(kernel, PERF_MAPS, _perf_program(PERF_FLAGS[:8]))
        try:
            rings = [PerfRing(c) for c in range(NCPUS)]
        except OSError as exc:
            pytest.skip(f"perf_event_open is unavailable: {exc}")
        try:
            for c, ring in enumerate(rings):  # libbpf's perf buffer: slot i, CPU i's event
                kernel.map(PERF).update(struct.pack("<I", c), struct.pack("<I", ring.fd))
            assert _run_on_cpu(kernel, cpu) == XdpAction.PASS
            theirs = list(_results(kernel))[:8]
            kernel_records = rings[cpu].records()
        finally:
            for ring in rings:
                ring.close()
    results, records = _perf_expected(cpu)
    assert theirs == results[:8]
    # the kernel pads raw samples to 8 bytes (with the u32 size): the data comes first
    assert [r[:len(mine)] for r, mine in zip(kernel_records, records)] == records
    assert [len(r) for r in kernel_records] == [((len(m) + 4 + 7) & ~7) - 4 for m in records]
