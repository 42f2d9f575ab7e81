"""BPF_MAP_TYPE_PERF_EVENT_ARRAY (kernel/bpf/arraymap.c): one output stream per CPU.

Creation is the kernel's fd-array check: key_size and value_size 4, max_entries at least 1
(libbpf sizes a map declared with 0 to the number of CPUs before creating it; the guest driver
does the same), no BPF_F_RDONLY_PROG/BPF_F_WRONLY_PROG, BPF_F_PRESERVE_ELEMS allowed.

In the kernel user space puts a perf event (a BPF output event opened on one CPU) in slot
*i* and reads its ring. On a device there is no perf event to open: the device itself is the
reader, and slot *i* is the device's stream for CPU *i* from the map's creation on. So user
space cannot install or remove events (BPF_MAP_UPDATE_ELEM is EOPNOTSUPP, BPF_MAP_DELETE_ELEM
finds no event: ENOENT), lookups are ENOTSUPP as in the kernel, and output behaves as with
libbpf's perf buffer attached: ``BPF_F_CURRENT_CPU`` or the index of the running CPU writes,
an index past ``max_entries`` is -E2BIG, a slot with no CPU behind it -ENOENT, another CPU's
slot -EOPNOTSUPP (the kernel's "event not on this CPU"), and a full stream drops the record
(-ENOSPC, counted as lost, as perf counts lost samples).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import BPF_F_CURRENT_CPU, BPF_F_INDEX_MASK, UpdateFlags
from .array import next_index
from .base import Map, enotsupp
from .events import Event, EventBuffer
from .fd_array import check_fd_array_spec
from .spec import MapSpec

#: Per-CPU stream size: 64 pages, what perf-buffer users commonly map.
PERF_STREAM_BYTES = 64 * 4096
PERF_HEADER_SIZE = 8  # struct perf_event_header


def sample_cost(size: int) -> int:
    """Bytes a PERF_RECORD_SAMPLE with ``size`` raw bytes takes in a perf ring: the header,
    then the u32 raw size and the data, padded to 8 bytes."""
    return PERF_HEADER_SIZE + ((4 + size + 7) & ~7)


class PerfEventArrayMap(Map):
    """Slots that name output streams; the streams are the device's."""

    batch_lookup = batch_update = batch_delete = False
    program_writes = False

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        streams = min(self.max_entries, self.ncpus)
        # CIRC_SPACE: at most size - 1 bytes, in multiples of 8 at most size - 8
        self.streams = [EventBuffer(PERF_STREAM_BYTES - 8) for _ in range(streams)]

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        check_fd_array_spec(spec)

    # -- uAPI --------------------------------------------------------------------------------
    def _index(self, key: bytes) -> int:
        index = int.from_bytes(key, "little")
        if index >= self.max_entries:
            raise ErrnoError(errno.E2BIG, f"Index {index} is past the end of the array "
                                          f"(max_entries {self.max_entries}).")
        return index

    def _count(self) -> int:
        return 0

    def _lookup(self, key: bytes) -> bytes | None:
        raise enotsupp("Perf event array slots cannot be read from user space.")

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        if flags != UpdateFlags.ANY:
            raise ErrnoError(errno.EINVAL, "PERF_EVENT_ARRAY updates only accept BPF_ANY.")
        self._index(key)
        raise ErrnoError(errno.EOPNOTSUPP, "The device reads its perf event streams itself "
                                           "(one per CPU, open from creation): there is no perf "
                                           "event to install; read them with 'offload-migrate "
                                           "events'.")

    def _delete(self, key: bytes) -> None:
        index = self._index(key)
        raise ErrnoError(errno.ENOENT, f"Slot {index} holds no perf event installed from user "
                                       "space.")

    def _next_key(self, key: bytes | None) -> bytes | None:
        return next_index(key, self.max_entries)

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(())

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        raise ErrnoError(errno.EINVAL, f"cannot pass map_type {int(self.spec.type)} into func "
                                       "bpf_map_lookup_elem")

    def _exact(self, key: bytes) -> tuple[bytes, bytes] | None:
        return None

    # -- programs ----------------------------------------------------------------------------
    def output(self, data: bytes, flags: int, *, cpu: int, time_ns: int = 0) -> int:
        """The perf part of bpf_perf_event_output(): ``flags`` holds the index (the caller
        has taken the context length out and checked the rest); 0 or a negative errno."""
        index = flags & BPF_F_INDEX_MASK
        if index == BPF_F_CURRENT_CPU:
            index = cpu
        if index >= self.max_entries:
            return -errno.E2BIG
        if index >= len(self.streams):
            return -errno.ENOENT
        if index != cpu:
            return -errno.EOPNOTSUPP
        stream = self.streams[index]
        event = Event(self.spec.name, "perf", index, cpu, stream.produced, time_ns, bytes(data))
        if not stream.push(sample_cost(len(data)), event):
            return -errno.ENOSPC
        return 0

    # -- the reader ----------------------------------------------------------------------------
    def take_events(self) -> list[Event]:
        """Every stream's records, oldest first (by time, then stream); taking them frees
        their room."""
        events: list[Event] = []
        for stream in self.streams:
            events.extend(stream.take())
        events.sort(key=lambda e: (e.time_ns, e.stream, e.seq))
        return events

    @property
    def pending(self) -> int:
        return sum(len(s) for s in self.streams)

    @property
    def lost(self) -> int:
        return sum(s.lost for s in self.streams)

    def stream_stats(self) -> dict[str, int]:
        return {"pending": self.pending, "lost": self.lost,
                "bytes": sum(s.used for s in self.streams),
                "size": PERF_STREAM_BYTES * len(self.streams)}
