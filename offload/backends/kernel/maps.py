"""Live kernel maps: BPF_MAP_CREATE from a MapSpec and the element commands.

Keys and values are bytes of exactly ``key_size`` / ``value_size``: the kernel copies as many
bytes as the map declares from the pointers it gets, so a shorter buffer would make it read
past the end. Every length is therefore checked here first, and a wrong one is EINVAL.

Per-CPU maps hold one value per possible CPU, each padded to 8 bytes; lookups return the whole
array (:meth:`KernelMap.lookup_percpu` splits it) and updates take either the whole array or a
single value that is written to every CPU.
"""

from __future__ import annotations

import ctypes
import errno
import functools
from collections.abc import Iterable, Iterator

from ...errors import ErrnoError
from ...maps.shape import MapShape
from ...maps.spec import MapSpec
from ...uapi import UpdateFlags
from .attr import MapBatchAttr, MapCreateAttr, MapElemAttr, MapFdAttr
from .handle import KernelHandle, object_name
from .info import MapInfo, map_info
from .lock_btf import KEY_ID, VALUE_ID, LockBtf, load_lock_btf
from .syscall import ENOTSUPP, BpfCmd, BpfSyscallError, bpf

#: Elements one batch call asks for at first; doubled when a hash bucket does not fit.
BATCH_CHUNK = 256
_NO_BATCH = (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP)


def parse_cpu_list(text: str) -> int:
    """Count the CPUs in a kernel CPU list such as ``0-3,8-11`` (a pure helper)."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            count += (int(high) if high else int(low)) - int(low) + 1
        except ValueError:
            raise ErrnoError(errno.EINVAL, f"cannot read the CPU list {text!r}") from None
    if count <= 0:
        raise ErrnoError(errno.EINVAL, f"the CPU list {text!r} names no CPU")
    return count


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs: the per-CPU value count of per-CPU maps."""
    try:
        with open("/sys/devices/system/cpu/possible", encoding="ascii") as f:
            return parse_cpu_list(f.read())
    except OSError as exc:
        raise ErrnoError(errno.ENOENT, f"cannot read /sys/devices/system/cpu/possible to size "
                                       f"per-CPU values: {exc.strerror}") from None


def _buffer(data: bytes | bytearray | memoryview) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(bytes(data), len(data) or 1)


class KernelMap(KernelHandle, MapShape):
    """A map living in the host kernel; ``spec`` is what it was created from."""

    kind = "map"

    def __init__(self, fd: int, spec: MapSpec) -> None:
        super().__init__(fd, spec.name)
        self.spec = spec

    # ----------------------------------------------------------------- creation
    @classmethod
    def create(cls, spec: MapSpec, *, inner_map_fd: int | None = None, numa_node: int = 0,
               map_extra: int = 0, btf_fd: int = 0, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0) -> KernelMap:
        """Create the map, write ``spec.contents`` and freeze it if ``spec.frozen``.

        For a map-in-map the inner map comes from ``inner_map_fd`` or, if absent, a temporary
        map created from ``spec.inner`` (the kernel only keeps its shape). Any failure closes
        what was created: no half-initialised map is left behind.
        """
        inner: KernelMap | None = None
        btf: LockBtf | None = None
        if spec.spin_lock_off is not None and not btf_fd:
            btf = load_lock_btf(spec)
            btf_fd, btf_key_type_id, btf_value_type_id = btf.fd, KEY_ID, VALUE_ID
        if spec.type.is_map_in_map and inner_map_fd is None:
            if spec.inner is None:
                raise ErrnoError(errno.EINVAL, f"map {spec.name!r} of type {spec.type.name} "
                                               f"needs an inner map spec or inner_map_fd")
            inner = cls.create(spec.inner)
            inner_map_fd = inner.fd
        try:
            _check_u32(spec)
            attr = MapCreateAttr(
                map_type=spec.type, key_size=spec.key_size, value_size=spec.value_size,
                max_entries=spec.max_entries, map_flags=spec.flags,
                inner_map_fd=inner_map_fd or 0, numa_node=numa_node,
                map_name=object_name(spec.name), btf_fd=btf_fd,
                btf_key_type_id=btf_key_type_id, btf_value_type_id=btf_value_type_id,
                map_extra=map_extra)
            what = (f"map {spec.name!r} ({spec.type.name}, key_size {spec.key_size}, "
                    f"value_size {spec.value_size}, max_entries {spec.max_entries}, "
                    f"flags {spec.flags:#x})")
            fd = bpf(BpfCmd.MAP_CREATE, attr, what=what)
        finally:
            if inner is not None:
                inner.close()
            if btf is not None:
                btf.close()
        live = cls(fd, spec)
        try:
            for key, value in spec.contents:
                live.update(key, value)
            if spec.frozen:
                live.freeze()
        except BaseException:
            live.close()
            raise
        return live

    # ----------------------------------------------------------------- sizes (and MapShape's)
    @property
    def value_buffer_size(self) -> int:
        """Bytes the kernel writes for one lookup."""
        if self.spec.type.is_percpu:
            return self.percpu_stride * possible_cpus()
        return self.spec.value_size

    def _key(self, key: bytes | bytearray | memoryview | None) -> ctypes.Array[ctypes.c_char] | None:
        if key is None or (self.key_size == 0 and len(key) == 0):
            return None
        if len(key) != self.key_size:
            raise ErrnoError(errno.EINVAL, f"key is {len(key)} bytes but {self.describe()} has "
                                           f"key_size {self.key_size}")
        return _buffer(key)

    def _value(self, value: bytes | bytearray | memoryview) -> ctypes.Array[ctypes.c_char]:
        size = len(value)
        if self.spec.type.is_percpu:
            if size == self.value_buffer_size:
                return _buffer(value)
            if size == self.value_size:
                padded = bytes(value) + bytes(self.percpu_stride - size)
                return _buffer(padded * possible_cpus())
            raise ErrnoError(errno.EINVAL, f"value is {size} bytes but {self.describe()} takes "
                                           f"{self.value_size} (one value for every CPU) or "
                                           f"{self.value_buffer_size} (one per CPU)")
        if size != self.value_size:
            raise ErrnoError(errno.EINVAL, f"value is {size} bytes but {self.describe()} has "
                                           f"value_size {self.value_size}")
        return _buffer(value)

    # ----------------------------------------------------------------- element commands
    def _elem(self, cmd: BpfCmd, key: ctypes.Array[ctypes.c_char] | None,
              value: ctypes.Array[ctypes.c_char] | None, flags: int = 0) -> None:
        attr = MapElemAttr(map_fd=self.fd, key=ctypes.addressof(key) if key is not None else 0,
                           value=ctypes.addressof(value) if value is not None else 0,
                           flags=flags)
        bpf(cmd, attr, what=self.describe())

    def lookup(self, key: bytes | bytearray | memoryview) -> bytes:
        """The value stored under ``key``; ENOENT if there is none."""
        out = ctypes.create_string_buffer(max(self.value_buffer_size, 1))
        self._elem(BpfCmd.MAP_LOOKUP_ELEM, self._key(key), out)
        return out.raw[:self.value_buffer_size]

    def get(self, key: bytes | bytearray | memoryview, default: bytes | None = None) -> bytes | None:
        """Like :meth:`lookup`, with ``default`` instead of ENOENT."""
        try:
            return self.lookup(key)
        except BpfSyscallError as exc:
            if exc.errno == errno.ENOENT:
                return default
            raise

    def lookup_percpu(self, key: bytes | bytearray | memoryview) -> tuple[bytes, ...]:
        """One value per possible CPU (per-CPU maps only)."""
        if not self.spec.type.is_percpu:
            raise ErrnoError(errno.EINVAL, f"{self.describe()} is a {self.spec.type.name} map, "
                                           f"not a per-CPU one")
        raw = self.lookup(key)
        stride = self.percpu_stride
        return tuple(raw[i:i + self.value_size] for i in range(0, len(raw), stride))

    def update(self, key: bytes | bytearray | memoryview, value: bytes | bytearray | memoryview,
               flags: UpdateFlags | int = UpdateFlags.ANY) -> None:
        """Store ``value`` under ``key`` (BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK)."""
        self._elem(BpfCmd.MAP_UPDATE_ELEM, self._key(key), self._value(value), int(flags))

    def delete(self, key: bytes | bytearray | memoryview) -> None:
        """Remove ``key``; ENOENT if absent, EINVAL for array maps."""
        self._elem(BpfCmd.MAP_DELETE_ELEM, self._key(key), None)

    def next_key(self, key: bytes | bytearray | memoryview | None = None) -> bytes | None:
        """The key after ``key`` (the first key for None); None at the end."""
        out = ctypes.create_string_buffer(max(self.key_size, 1))
        try:
            self._elem(BpfCmd.MAP_GET_NEXT_KEY, self._key(key), out)
        except BpfSyscallError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return out.raw[:self.key_size]

    def keys(self) -> Iterator[bytes]:
        """Every key, in the kernel's order (BPF_MAP_GET_NEXT_KEY)."""
        key = self.next_key(None)
        while key is not None:
            yield key
            key = self.next_key(key)

    def freeze(self) -> None:
        """Make the map read-only for syscalls from now on (BPF_MAP_FREEZE)."""
        bpf(BpfCmd.MAP_FREEZE, MapFdAttr(map_fd=self.fd), what=self.describe())

    def info(self) -> MapInfo:
        return map_info(self.fd, self.describe())

    # ----------------------------------------------------------------- batches
    def lookup_batch(self, chunk: int = BATCH_CHUNK) -> list[tuple[bytes, bytes]]:
        """Every (key, value) through BPF_MAP_LOOKUP_BATCH; ENOTSUPP where unavailable."""
        token_size = max(self.key_size, 4, 8)
        tokens = (ctypes.create_string_buffer(token_size), ctypes.create_string_buffer(token_size))
        items: list[tuple[bytes, bytes]] = []
        first = True
        while True:
            keys = ctypes.create_string_buffer(max(self.key_size, 1) * chunk)
            values = ctypes.create_string_buffer(max(self.value_buffer_size, 1) * chunk)
            attr = MapBatchAttr(in_batch=0 if first else ctypes.addressof(tokens[0]),
                                out_batch=ctypes.addressof(tokens[1]),
                                keys=ctypes.addressof(keys), values=ctypes.addressof(values),
                                count=chunk, map_fd=self.fd)
            done = False
            try:
                bpf(BpfCmd.MAP_LOOKUP_BATCH, attr, what=self.describe())
            except BpfSyscallError as exc:
                if exc.errno == errno.ENOSPC and attr.count == 0 and \
                        chunk <= self.spec.max_entries:
                    chunk *= 2  # one hash bucket holds more than ``chunk`` elements
                    continue
                if exc.errno != errno.ENOENT:
                    if first and exc.errno in _NO_BATCH:
                        raise BpfSyscallError(ENOTSUPP, f"BPF_MAP_LOOKUP_BATCH is not available "
                                                        f"for {self.describe()}: its type "
                                                        f"{self.spec.type.name} has no batch "
                                                        f"operations on this kernel",
                                              command=BpfCmd.MAP_LOOKUP_BATCH) from None
                    raise
                done = True
            ks, vs = self.key_size, self.value_buffer_size
            items.extend((keys.raw[i * ks:(i + 1) * ks], values.raw[i * vs:(i + 1) * vs])
                         for i in range(attr.count))
            if done:
                return items
            ctypes.memmove(tokens[0], tokens[1], token_size)
            first = False

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every (key, value): one batch call where the kernel has them, else key by key.

        Keys deleted concurrently between the two steps of the fallback are skipped.
        """
        try:
            return self.lookup_batch()
        except BpfSyscallError as exc:
            if exc.errno != ENOTSUPP:
                raise
        out = []
        for key in self.keys():
            value = self.get(key)
            if value is not None:
                out.append((key, value))
        return out

    def update_batch(self, items: Iterable[tuple[bytes, bytes]],
                     flags: UpdateFlags | int = UpdateFlags.ANY) -> int:
        """Write many elements with one BPF_MAP_UPDATE_BATCH; returns how many were written.

        The kernel takes only BPF_F_LOCK as element flag here (no NOEXIST/EXIST). On failure
        the error says how many elements the kernel applied before stopping.
        """
        if int(flags) not in (UpdateFlags.ANY, UpdateFlags.F_LOCK):
            raise ErrnoError(errno.EINVAL, f"BPF_MAP_UPDATE_BATCH of {self.describe()} accepts "
                                           f"only BPF_ANY or BPF_F_LOCK, not flags {int(flags)}")
        pairs = [(self._key(k), self._value(v)) for k, v in items]
        if not pairs:
            return 0
        ks, vs = self.key_size, self.value_buffer_size
        keys = ctypes.create_string_buffer(max(ks, 1) * len(pairs))
        values = ctypes.create_string_buffer(max(vs, 1) * len(pairs))
        for i, (k, v) in enumerate(pairs):
            if k is not None:
                ctypes.memmove(ctypes.addressof(keys) + i * ks, k, ks)
            ctypes.memmove(ctypes.addressof(values) + i * vs, v, vs)
        attr = MapBatchAttr(keys=ctypes.addressof(keys), values=ctypes.addressof(values),
                            count=len(pairs), map_fd=self.fd, elem_flags=int(flags))
        try:
            bpf(BpfCmd.MAP_UPDATE_BATCH, attr, what=self.describe())
        except BpfSyscallError as exc:
            raise BpfSyscallError(exc.errno, f"{exc.detail} ({attr.count} of {len(pairs)} "
                                             f"elements were written)",
                                  command=BpfCmd.MAP_UPDATE_BATCH) from None
        return attr.count


def _check_u32(spec: MapSpec) -> None:
    for field in ("key_size", "value_size", "max_entries", "flags"):
        value = getattr(spec, field)
        if not 0 <= value <= 0xFFFFFFFF:
            raise ErrnoError(errno.EINVAL, f"{field} {value} of map {spec.name!r} does not fit "
                                           f"the 32-bit field of BPF_MAP_CREATE")


__all__ = ["KernelMap", "parse_cpu_list", "possible_cpus"]
