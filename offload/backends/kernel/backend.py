"""The host kernel as a device backend: the :class:`~offload.backends.base.Backend` operations
over ``bpf(2)``.

A device hands this backend what it hands the built-in one: map specs under device handles,
programs whose ``lddw`` immediates name those handles, frames to run. Here each handle becomes
a kernel object (a :class:`KernelMap` or :class:`KernelProgram` file descriptor) and every
handle crossing the boundary is translated:

- ``lddw map_fd(handle)`` / ``map_value(handle)+off`` (and the fd-array forms ``map_idx``,
  ``map_idx_value``) are rewritten to the kernel fd before BPF_PROG_LOAD;
- values of maps holding objects (PROG_ARRAY, ARRAY_OF_MAPS, HASH_OF_MAPS, and the program
  field of DEVMAP/DEVMAP_HASH) carry device handles in and device handles out: the kernel wants
  fds on update and reports object *ids* on lookup, which are mapped back to the handles.

Per-CPU values. The uAPI layout is the built-in maps' (offload.maps.values): one copy per CPU,
each padded to 8 bytes. The CPU count is the host's number of *possible* CPUs
(:func:`possible_cpus`), not a device's ``ncpus``: a built-in device compares byte for byte with
this backend only when built with ``ncpus=possible_cpus()``. A program writes the copy of the
CPU it runs on; :meth:`KernelBackend.run_xdp` pins the calling thread to CPU
``rx_queue_index % ncpus`` for the test run (as the built-in backend picks its CPU), so per-CPU
writes land in the same slot on both. Where the process may not run on that CPU (a cpuset),
the run is unpinned and the slot is whichever CPU the kernel chose.

What a test run cannot tell. BPF_PROG_TEST_RUN without live frames does not perform the
redirect, and reports neither the devmap entry nor the ifindex a program redirected to: an
outcome's ``redirect_ifindex``/``redirect_program`` are always None here, and only the return
value (XDP_REDIRECT) says that a redirect was asked for. ``trace`` is empty: bpf_trace_printk
output goes to the kernel's trace pipe. ``ingress_ifindex`` and ``rx_queue_index`` must name an
interface and receive queue of the host (the default, 1 and 0, is the loopback device); frames
must hold at least an Ethernet header; and the kernel keeps at most
``PAGE_SIZE - XDP_PACKET_HEADROOM - sizeof(skb_shared_info)`` bytes linear, putting the rest of
a larger frame into fragments a program sees only through the frags helpers.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Self

from ...caps.capabilities import Capabilities
from ...errors import ErrnoError
from ...isa.instruction import Instruction
from ...isa.opcodes import PseudoSrc
from ...maps.base import BatchError, ColumnBatch, LookupBatch, as_bytes, as_u32
from ...maps.shape import MapShape
from ...maps.spec import MapSpec
from ...program import FuncInfo
from ...uapi import MapType, ProgType, UpdateFlags
from ..base import LoadReport, XdpOutcome
from .attr import MapBatchAttr
from .maps import KernelMap, possible_cpus
from .probe import host_capabilities
from .programs import KernelProgram, load_program
from .syscall import BpfCmd, BpfSyscallError, bpf
from .xdp_run import XdpRunResult, run_xdp

#: lddw sources whose immediate is a device map handle, and what the kernel is given instead.
_LDDW_TO_FD = {PseudoSrc.MAP_FD: PseudoSrc.MAP_FD, PseudoSrc.MAP_IDX: PseudoSrc.MAP_FD,
               PseudoSrc.MAP_VALUE: PseudoSrc.MAP_VALUE,
               PseudoSrc.MAP_IDX_VALUE: PseudoSrc.MAP_VALUE}
_PROGRAM_VALUES = (MapType.PROG_ARRAY,)
_MAP_VALUES = (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS)
_DEVMAPS = (MapType.DEVMAP, MapType.DEVMAP_HASH)
#: Hash-table families resume batches at a u32 bucket number; the others at a key.
_BUCKET_CURSOR = (MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH,
                  MapType.HASH_OF_MAPS)


class HostMap(MapShape):
    """A kernel map behind a device handle, with the method names of :class:`offload.maps.Map`.

    Keys and values are checked to their exact uAPI sizes first (EINVAL, as the built-in maps
    do) so a wrong length never reaches the kernel; everything else is the kernel's answer.
    """

    def __init__(self, live: KernelMap, backend: KernelBackend) -> None:
        self.live = live
        self.spec = live.spec
        self.backend = backend
        self.ncpus = possible_cpus()
        self.frozen = live.spec.frozen

    # -- what it is (type and sizes: MapShape) ------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def uapi_value_size(self) -> int:
        """Bytes of a value through the uAPI: every possible CPU's copy for per-CPU maps."""
        return self.live.value_buffer_size

    @property
    def batch_cursor_size(self) -> int:
        return 4 if self.spec.type in _BUCKET_CURSOR else self.key_size

    @property
    def fd(self) -> int:
        return self.live.fd

    def __len__(self) -> int:
        return sum(1 for _ in self.live.keys())

    def __repr__(self) -> str:
        return f"<HostMap {self.spec.name!r} {self.spec.type.name} {self.live!r}>"

    # -- handle translation ------------------------------------------------------------------
    def _to_kernel(self, value: bytes) -> bytes:
        """A uAPI value with device handles replaced by the kernel fds they stand for."""
        kind = self.spec.type
        if kind in _PROGRAM_VALUES:
            return self.backend.program_fd(int.from_bytes(value, "little")).to_bytes(4, "little")
        if kind in _MAP_VALUES:
            return self.backend.map_fd(int.from_bytes(value, "little")).to_bytes(4, "little")
        if kind in _DEVMAPS and len(value) == 8:
            handle = int.from_bytes(value[4:], "little", signed=True)
            if handle > 0:
                return value[:4] + self.backend.program_fd(handle).to_bytes(4, "little")
        return value

    def _from_kernel(self, value: bytes) -> bytes:
        """A value as the kernel reports it, with object ids turned back into device handles."""
        kind = self.spec.type
        if kind in _PROGRAM_VALUES:
            return self.backend.handle_of_program_id(int.from_bytes(value, "little"))
        if kind in _MAP_VALUES:
            return self.backend.handle_of_map_id(int.from_bytes(value, "little"))
        if kind in _DEVMAPS and len(value) == 8 and value[4:] != bytes(4):
            return value[:4] + self.backend.handle_of_program_id(int.from_bytes(value[4:],
                                                                                "little"))
        return value

    def _key(self, key: object) -> bytes:
        return as_bytes(key, self.key_size, "key")

    def _value(self, value: object) -> bytes:
        return self._to_kernel(as_bytes(value, self.uapi_value_size, "value"))

    # -- uAPI --------------------------------------------------------------------------------
    def lookup(self, key: object) -> bytes:
        """BPF_MAP_LOOKUP_ELEM: the value (all CPUs' copies for per-CPU maps) or ENOENT."""
        return self._from_kernel(self.live.lookup(self._key(key)))

    def update(self, key: object, value: object, flags: int = UpdateFlags.ANY) -> None:
        """BPF_MAP_UPDATE_ELEM with BPF_ANY, BPF_NOEXIST or BPF_EXIST."""
        self.live.update(self._key(key), self._value(value), flags)

    def delete(self, key: object) -> None:
        self.live.delete(self._key(key))

    def get_next_key(self, key: object | None = None) -> bytes:
        """BPF_MAP_GET_NEXT_KEY: the first key for None, ENOENT after the last."""
        following = self.live.next_key(None if key is None else self._key(key))
        if following is None:
            raise ErrnoError(errno.ENOENT, "No key follows: the iteration is complete.")
        return following

    def freeze(self) -> None:
        self.live.freeze()
        self.frozen = True

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) in uAPI form, in the kernel's get_next_key order."""
        for key in list(self.live.keys()):
            value = self.live.get(key)
            if value is not None:
                yield key, self._from_kernel(value)

    # -- batches -----------------------------------------------------------------------------
    def lookup_batch(self, cursor: object | None, count: int,
                     elem_flags: int = 0) -> LookupBatch:
        """One BPF_MAP_LOOKUP_BATCH call: up to ``count`` entries after ``cursor``."""
        count = as_u32(count, "batch count")
        raw = None if cursor is None else as_bytes(cursor, self.batch_cursor_size, "batch cursor")
        if count == 0:
            return LookupBatch((), None, False)
        ks, vs, cs = max(self.key_size, 1), max(self.uapi_value_size, 1), self.batch_cursor_size
        keys = ctypes.create_string_buffer(ks * count)
        values = ctypes.create_string_buffer(vs * count)
        in_batch = ctypes.create_string_buffer(raw or b"\0", max(cs, 1))
        out_batch = ctypes.create_string_buffer(max(cs, 1))
        attr = MapBatchAttr(in_batch=0 if raw is None else ctypes.addressof(in_batch),
                            out_batch=ctypes.addressof(out_batch), keys=ctypes.addressof(keys),
                            values=ctypes.addressof(values), count=count, map_fd=self.fd,
                            elem_flags=elem_flags)
        done = False
        try:
            bpf(BpfCmd.MAP_LOOKUP_BATCH, attr, what=self.live.describe())
        except BpfSyscallError as exc:
            if exc.errno != errno.ENOENT:
                raise
            done = True
        entries = tuple((keys.raw[i * ks:i * ks + self.key_size],
                         self._from_kernel(values.raw[i * vs:i * vs + self.uapi_value_size]))
                        for i in range(attr.count))
        return LookupBatch(entries, out_batch.raw[:cs] if entries else None, done)

    def update_batch(self, entries: Iterable[tuple[object, object]], elem_flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH: the count applied, or :class:`BatchError` carrying it."""
        pairs: list[tuple[bytes, bytes]] = []
        for pair in _batch_items(entries):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise BatchError(errno.EINVAL, f"entry {len(pairs)}: Each batch entry must be a "
                                               f"(key, value) pair.", count=0)
            pairs.append((self._key(pair[0]), self._value(pair[1])))
        if not pairs:
            return 0
        keys = _packed([k for k, _ in pairs], self.key_size)
        values = _packed([v for _, v in pairs], self.uapi_value_size)
        attr = MapBatchAttr(keys=ctypes.addressof(keys), values=ctypes.addressof(values),
                            count=len(pairs), map_fd=self.fd, elem_flags=elem_flags)
        try:
            bpf(BpfCmd.MAP_UPDATE_BATCH, attr, what=self.live.describe())
        except BpfSyscallError as exc:
            raise BatchError(exc.errno, f"{exc.detail} ({attr.count} of {len(pairs)} elements "
                                        f"were written)", count=attr.count) from None
        return attr.count

    def lookup_batch_columns(self, cursor: object | None, count: int,
                             elem_flags: int = 0) -> ColumnBatch:
        """:meth:`lookup_batch` in columns, as the control queue carries it."""
        batch = self.lookup_batch(cursor, count, elem_flags)
        return ColumnBatch(len(batch.entries), b"".join(k for k, _ in batch.entries),
                           b"".join(v for _, v in batch.entries), batch.cursor, batch.done)

    def update_batch_columns(self, count: int, keys: object, values: object,
                             elem_flags: int = 0) -> int:
        """:meth:`update_batch` from ``count`` packed keys and uAPI values."""
        count = as_u32(count, "batch count")
        keys = as_bytes(keys, count * self.key_size, "batch keys")
        values = as_bytes(values, count * self.uapi_value_size, "batch values")
        ks, vs = self.key_size, self.uapi_value_size
        return self.update_batch([(keys[i * ks:(i + 1) * ks], values[i * vs:(i + 1) * vs])
                                  for i in range(count)], elem_flags)

    def delete_batch(self, keys: Iterable[object], elem_flags: int = 0) -> int:
        """BPF_MAP_DELETE_BATCH: the count deleted, or :class:`BatchError` carrying it."""
        raw = [self._key(key) for key in _batch_items(keys)]
        if not raw:
            return 0
        buffer = _packed(raw, self.key_size)
        attr = MapBatchAttr(keys=ctypes.addressof(buffer), count=len(raw), map_fd=self.fd,
                            elem_flags=elem_flags)
        try:
            bpf(BpfCmd.MAP_DELETE_BATCH, attr, what=self.live.describe())
        except BpfSyscallError as exc:
            raise BatchError(exc.errno, f"{exc.detail} ({attr.count} of {len(raw)} keys were "
                                        f"deleted)", count=attr.count) from None
        return attr.count


def _batch_items(items: object) -> list:
    if isinstance(items, (bytes, bytearray, memoryview, str)):
        raise ErrnoError(errno.EINVAL, "A batch must be a sequence of entries, not one buffer.")
    try:
        return list(items)  # type: ignore[call-overload]
    except TypeError:
        raise ErrnoError(errno.EINVAL, "A batch must be an iterable of entries.") from None


def _packed(items: list[bytes], size: int) -> ctypes.Array[ctypes.c_char]:
    """``items`` back to back in one buffer, as batch commands read keys and values."""
    return ctypes.create_string_buffer(b"".join(items), max(size, 1) * len(items))


class KernelBackend:
    """Maps, programs and XDP test runs of the host kernel behind the Backend operations.

    ``caps`` defaults to the probed ``host-kernel`` profile (asked once per process).
    Closing the backend (or leaving its ``with`` block) closes every fd it holds.
    """

    def __init__(self, caps: Capabilities | None = None, *, name: str = "kernel") -> None:
        self.name = name
        self._caps = caps
        self.ncpus = possible_cpus()
        self.maps: dict[int, HostMap] = {}
        self.programs: dict[int, KernelProgram] = {}
        self._map_ids: dict[int, int] = {}
        self._prog_ids: dict[int, int] = {}

    @property
    def caps(self) -> Capabilities:
        if self._caps is None:
            self._caps = host_capabilities()
        return self._caps

    # -- handles -----------------------------------------------------------------------------
    def _free_handle(self, handle: int) -> None:
        if isinstance(handle, bool) or not isinstance(handle, int) or \
                not 0 <= handle <= 0x7FFFFFFF:
            raise ErrnoError(errno.EINVAL, f"handle {handle!r} is not a non-negative 31-bit "
                                           f"integer")
        if handle in self.maps or handle in self.programs:
            raise ErrnoError(errno.EEXIST, f"handle {handle} is already in use")

    def map_fd(self, handle: int) -> int:
        """The kernel fd of the map behind a device handle (EBADF/EINVAL as the built-in)."""
        entry = self.maps.get(handle)
        if entry is None:
            if handle in self.programs:
                raise ErrnoError(errno.EINVAL, f"handle {handle} is a program, not a map")
            raise ErrnoError(errno.EBADF, f"handle {handle} names no map on this device")
        return entry.fd

    def program_fd(self, handle: int) -> int:
        program = self.programs.get(handle)
        if program is None:
            if handle in self.maps:
                raise ErrnoError(errno.EINVAL, f"handle {handle} is a map, not a program")
            raise ErrnoError(errno.EBADF, f"handle {handle} names no program on this device")
        return program.fd

    def handle_of_program_id(self, kernel_id: int) -> bytes:
        return self._prog_ids.get(kernel_id, kernel_id).to_bytes(4, "little")

    def handle_of_map_id(self, kernel_id: int) -> bytes:
        return self._map_ids.get(kernel_id, kernel_id).to_bytes(4, "little")

    # -- maps --------------------------------------------------------------------------------
    def create_map(self, handle: int, spec: MapSpec) -> HostMap:
        """BPF_MAP_CREATE for a device handle; types outside ``caps`` are EOPNOTSUPP, as on
        the built-in backend (a device profile may offer less than the kernel can)."""
        self._free_handle(handle)
        if spec.type not in self.caps.map_types:
            raise ErrnoError(errno.EOPNOTSUPP, f"map type {spec.type.name} is not supported by "
                                               f"device profile {self.caps.name}")
        live = KernelMap.create(spec)
        try:
            self._map_ids[live.info().id] = handle
        except BaseException:
            live.close()
            raise
        self.maps[handle] = HostMap(live, self)
        return self.maps[handle]

    def free_map(self, handle: int) -> None:
        entry = self.maps.pop(handle, None)
        if entry is None:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no map on this device")
        self._map_ids = {k: v for k, v in self._map_ids.items() if v != handle}
        entry.live.close()  # the kernel keeps it while programs or other maps hold it

    def map(self, handle: int) -> HostMap:
        entry = self.maps.get(handle)
        if entry is None:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no map on this device")
        return entry

    # -- programs ----------------------------------------------------------------------------
    def kernel_instructions(self, insns: Sequence[Instruction]) -> tuple[Instruction, ...]:
        """``insns`` with every map-handle ``lddw`` holding the kernel fd instead."""
        out = []
        for index, insn in enumerate(insns):
            if insn.is_lddw and insn.src in _LDDW_TO_FD:
                if insn.imm not in self.maps:
                    raise ErrnoError(errno.EBADF, f"lddw at instruction {index} refers to map "
                                                  f"handle {insn.imm}, which names no map on "
                                                  f"this device")
                insn = insn.with_fields(src=_LDDW_TO_FD[PseudoSrc(insn.src)],
                                        imm=self.maps[insn.imm].fd)
            out.append(insn)
        return tuple(out)

    def load_program(self, handle: int, insns: Sequence[Instruction], *, prog_type: ProgType,
                     name: str, license: str, flags: int = 0,
                     expected_attach_type: int = 0,
                     functions: Sequence[FuncInfo] = ()) -> LoadReport:
        """BPF_PROG_LOAD; a refusal is :class:`KernelVerifierError` with the kernel's log."""
        self._free_handle(handle)
        program = load_program(self.kernel_instructions(insns), prog_type=prog_type,
                               license=license, name=name, prog_flags=flags,
                               expected_attach_type=expected_attach_type,
                               functions=functions)
        info = program.info()
        self.programs[handle] = program
        self._prog_ids[info.id] = handle
        return LoadReport(insns_processed=info.verified_insns)

    def unload_program(self, handle: int) -> None:
        program = self.programs.pop(handle, None)
        if program is None:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no program on this device")
        self._prog_ids = {k: v for k, v in self._prog_ids.items() if v != handle}
        program.close()

    def holds_program(self, handle: int) -> bool:
        """Never: the kernel keeps a program a prog array holds, but its fd is closed here."""
        return False

    # -- the packet path -----------------------------------------------------------------------
    def test_run(self, handle: int, frame: bytes, *, meta: bytes = b"", repeat: int = 1,
                 ingress_ifindex: int = 1, rx_queue_index: int = 0) -> XdpRunResult:
        """BPF_PROG_TEST_RUN ``repeat`` times on the CPU ``rx_queue_index`` selects;
        ``duration_ns`` of the result is the kernel's mean per run."""
        program = self.programs.get(handle)
        if program is None:
            raise ErrnoError(errno.EBADF, f"handle {handle} names no program on this device")
        with _pinned(rx_queue_index % self.ncpus):
            return run_xdp(program, frame, meta=meta, repeat=repeat,
                           ingress_ifindex=ingress_ifindex, rx_queue_index=rx_queue_index)

    def run_xdp(self, handle: int, frame: bytes, *, meta: bytes = b"",
                ingress_ifindex: int = 1, rx_queue_index: int = 0,
                egress_ifindex: int = 0) -> XdpOutcome:
        """One frame through the program; the redirect target is unknown here (None), so no
        devmap entry's program runs through this backend and ``egress_ifindex`` goes unused
        (the kernel's test run refuses a nonzero one)."""
        result = self.test_run(handle, frame, meta=meta, ingress_ifindex=ingress_ifindex,
                               rx_queue_index=rx_queue_index)
        return XdpOutcome(result.retval, result.data, result.meta)

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close every program and map fd this backend holds."""
        for program in self.programs.values():
            program.close()
        for entry in self.maps.values():
            entry.live.close()
        self.programs.clear()
        self.maps.clear()
        self._prog_ids.clear()
        self._map_ids.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _pinned:
    """Run the calling thread on one CPU for a block; best effort (a cpuset may forbid it)."""

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu
        self.saved: set[int] | None = None

    def __enter__(self) -> None:
        try:
            saved = os.sched_getaffinity(0)
            if saved != {self.cpu}:
                os.sched_setaffinity(0, {self.cpu})
                self.saved = saved
        except (OSError, AttributeError):
            self.saved = None

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            try:
                os.sched_setaffinity(0, self.saved)
            except OSError:
                pass


__all__ = ["HostMap", "KernelBackend"]
