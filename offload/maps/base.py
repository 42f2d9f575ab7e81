"""The live map every family derives from: uAPI checks, program access, batches, dirty keys.

A ``Map`` is what a device holds for one BPF_MAP_CREATE. Three audiences use it:

* the uAPI (``lookup``/``update``/``delete``/``get_next_key``/batches/``freeze``), checked the
  way kernel/bpf/syscall.c checks them: permissions first (``map_get_sys_perms()``: a frozen
  or BPF_F_RDONLY map refuses writes with EPERM, a BPF_F_WRONLY map refuses reads), then
  flags, then the family's own rules;
* programs (``value_ref``, ``program_update``, ``program_delete``), which see only their own
  CPU's copy of a per-CPU value and may still write a frozen map (Documentation/bpf/
  map_freeze: freezing only affects syscalls; BPF_F_RDONLY_PROG is what makes a map read-only
  to programs);
* migration (``track_dirty``/``take_dirty``/``take_dirty_chunk``, ``export_chunks``/
  ``import_chunk``, ``export_entries``/``export_entry``/``import_entries``), which bypasses
  uAPI permissions because it moves device state, not user requests. Chunks are columnar
  (:class:`Chunk`: every key back to back, every value back to back), so slab maps move a
  chunk with a few slices whatever it holds.

Families implement a handful of ``_hooks`` on exact-size ``bytes``; everything user-supplied is
checked here first so hostile input only ever raises :class:`ErrnoError`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import ClassVar

from ..errors import ErrnoError, OffloadError
from ..uapi import MapFlags, UpdateFlags
from .resolver import NO_OBJECTS, Resolver
from .shape import MapShape
from .spec import SPIN_LOCK_SIZE, MapSpec
from .values import value_layout

ENOTSUPP = 524  # the kernel-internal errno BPF_MAP_CREATE and batch commands leak to users
U32_MAX = (1 << 32) - 1
BytesLike = bytes | bytearray | memoryview


def enotsupp(message: str) -> ErrnoError:
    """An ErrnoError for ENOTSUPP (524), which Python's errno module has no name for."""
    error = ErrnoError(ENOTSUPP, message)
    error.name = "ENOTSUPP"
    error.args = (f"ENOTSUPP: {message}",)
    return error


class MapError(OffloadError):
    """Misuse of the device-side map API that no bpf(2) call could cause."""


class BatchError(ErrnoError):
    """A batch command stopped at an element: ``count`` elements before it were applied,
    as the kernel reports in ``attr->batch.count`` alongside the errno."""

    def __init__(self, code: int, message: str, *, count: int) -> None:
        super().__init__(code, message)
        self.count = count
        if code == ENOTSUPP:
            self.name = "ENOTSUPP"
            self.args = (f"ENOTSUPP: {message}",)


@dataclass(frozen=True, slots=True)
class LookupBatch:
    """One BPF_MAP_LOOKUP_BATCH answer.

    ``cursor`` is ``out_batch`` (pass it as the next call's cursor; None when nothing was
    returned); ``done`` is the kernel's ENOENT: no element follows these.
    """

    entries: tuple[tuple[bytes, bytes], ...]
    cursor: bytes | None
    done: bool


@dataclass(frozen=True, slots=True)
class Chunk:
    """``count`` entries packed: ``keys`` is count*key_size bytes, ``values`` count*value_size
    bytes per copy - one copy, or one per CPU for per-CPU maps, unpadded and in CPU order."""

    count: int
    keys: bytes
    values: bytes


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """A BPF_MAP_LOOKUP_BATCH answer in columns: ``values`` in uAPI form (per-CPU copies
    padded to 8 bytes), ``cursor`` and ``done`` as in :class:`LookupBatch`."""

    count: int
    keys: bytes
    values: bytes
    cursor: bytes | None
    done: bool

    def pairs(self, key_size: int, value_size: int) -> tuple[tuple[bytes, bytes], ...]:
        keys, values = self.keys, self.values
        return tuple((keys[i * key_size:(i + 1) * key_size],
                      values[i * value_size:(i + 1) * value_size]) for i in range(self.count))


def as_bytes(data: object, size: int, what: str) -> bytes:
    """``data`` as bytes of exactly ``size``, or EINVAL (what BPF_MAP_*_ELEM would copy)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ErrnoError(errno.EINVAL, f"The {what} must be bytes, not {type(data).__name__}.")
    try:
        raw = bytes(data)
    except (TypeError, ValueError, BufferError) as exc:
        raise ErrnoError(errno.EINVAL, f"The {what} is not a readable byte buffer: {exc}.") from None
    if len(raw) != size:
        raise ErrnoError(errno.EINVAL,
                         f"The {what} must be exactly {size} bytes for this map, got {len(raw)}.")
    return raw


def as_u32(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U32_MAX:
        raise ErrnoError(errno.EINVAL, f"The {what} must be an unsigned 32-bit integer, "
                                       f"got {value!r}.")
    return value


class Map(MapShape):
    """Base of every live map. Subclasses set the ClassVars and implement the hooks.

    Type, key and value size are the spec's (``MapShape``); ``max_entries`` is what the map
    holds, which an LRU map rounds per CPU, so it is the live map's own attribute.
    """

    max_entries: int = 0  # set by __init__; shadows MapShape's, which reads the spec

    batch_lookup: ClassVar[bool] = True  # generic_map_lookup_batch or the htab one
    batch_update: ClassVar[bool] = True
    batch_delete: ClassVar[bool] = True
    program_writes: ClassVar[bool] = True  # bpf_map_update/delete_elem helpers accepted

    def __init__(self, spec: MapSpec, *, ncpus: int = 1, resolver: Resolver = NO_OBJECTS,
                 max_entries: int | None = None, flags: int | None = None) -> None:
        self.spec = spec
        self.ncpus = ncpus
        self.max_entries = spec.max_entries if max_entries is None else max_entries
        self.flags = MapFlags(spec.flags if flags is None else flags)
        self.frozen = False
        self.values = value_layout(spec.type.is_percpu, spec.value_size, ncpus)
        self.resolver = resolver
        self._dirty: set[bytes] | None = None
        self._tracking = False
        #: offset of the value's struct bpf_spin_lock, or None (``MapSpec.spin_lock_off``)
        self.lock_off = spec.spin_lock_off

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        """Refuse a spec the way the family's ``map_alloc_check`` does (raise ErrnoError)."""

    @classmethod
    def created_flags(cls, flags: int) -> int:
        """The map_flags the live map reports (devmaps add BPF_F_RDONLY_PROG, as the kernel)."""
        return flags

    # -- what it is --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def uapi_value_size(self) -> int:
        """Bytes of a value through the uAPI (all CPUs' copies for per-CPU maps)."""
        return self.values.uapi_size

    @property
    def program_writable(self) -> bool:
        """Whether program writes through ``value_ref`` are allowed (no BPF_F_RDONLY_PROG)."""
        return not self.flags & MapFlags.RDONLY_PROG

    @property
    def batch_cursor_size(self) -> int:
        """Size of ``in_batch``/``out_batch``: a key for generic batches."""
        return self.key_size

    def __len__(self) -> int:
        return self._count()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.spec.name!r} key_size={self.key_size} "
                f"value_size={self.value_size} max_entries={self.max_entries} "
                f"entries={self._count()}{' frozen' if self.frozen else ''}>")

    # -- checks ------------------------------------------------------------------------------

    def _check_readable(self) -> None:
        if self.flags & MapFlags.WRONLY:
            raise ErrnoError(errno.EPERM, "The map was created with BPF_F_WRONLY: user space "
                                          "may not read it.")

    def _check_writable(self) -> None:
        if self.frozen:
            raise ErrnoError(errno.EPERM, "The map is frozen: user space may no longer change it.")
        if self.flags & MapFlags.RDONLY:
            raise ErrnoError(errno.EPERM, "The map was created with BPF_F_RDONLY: user space "
                                          "may not change it.")

    def _update_flags(self, flags: object) -> int:
        """BPF_ANY, BPF_NOEXIST or BPF_EXIST, possibly with BPF_F_LOCK (only on a map whose
        value holds a bpf_spin_lock, as the kernel); the flags without BPF_F_LOCK."""
        if isinstance(flags, bool) or not isinstance(flags, int) or flags < 0:
            raise ErrnoError(errno.EINVAL, f"Update flags must be BPF_ANY, BPF_NOEXIST or "
                                           f"BPF_EXIST, got {flags!r}.")
        if flags & UpdateFlags.F_LOCK:
            self._check_lock_flag()
            flags &= ~UpdateFlags.F_LOCK
        if flags > UpdateFlags.EXIST:
            raise ErrnoError(errno.EINVAL, f"Unknown update flags {flags:#x}: use BPF_ANY, "
                                           "BPF_NOEXIST or BPF_EXIST.")
        return flags

    def _check_lock_flag(self) -> None:
        if self.lock_off is None:
            raise ErrnoError(errno.EINVAL, "BPF_F_LOCK needs a bpf_spin_lock in the map value, "
                                           "which this map does not have.")

    # -- the bpf_spin_lock field -------------------------------------------------------------
    # Values cross the uAPI without their lock, as the kernel's copy_map_value skips it and a
    # lookup zeroes it in what it returns: user space neither sees nor sets the lock word.
    # Programs run one at a time on a device and release every lock before they exit (the
    # verifier's rule), so a stored lock word is always the unlocked 0, and BPF_F_LOCK (copy
    # under the lock) reads and writes the same bytes as a plain copy.

    def _without_lock(self, value: bytes) -> bytes:
        """``value`` with its lock word zeroed (unlocked)."""
        off = self.lock_off
        if off is None or off + SPIN_LOCK_SIZE > len(value):
            return value
        return value[:off] + bytes(SPIN_LOCK_SIZE) + value[off + SPIN_LOCK_SIZE:]

    def _key(self, key: object) -> bytes:
        return as_bytes(key, self.key_size, "key")

    def _cpu(self, cpu: object) -> int:
        if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < self.ncpus:
            raise ErrnoError(errno.EINVAL, f"CPU {cpu!r} does not exist: the device has "
                                           f"{self.ncpus} CPU(s).")
        return cpu

    def _touch(self, key: bytes) -> None:
        if self._dirty is not None:
            self._dirty.add(key)

    # -- uAPI --------------------------------------------------------------------------------

    def lookup(self, key: BytesLike) -> bytes:
        """BPF_MAP_LOOKUP_ELEM: the value (all CPUs' copies for per-CPU maps) or ENOENT."""
        self._check_readable()
        value = self._lookup(self._key(key))
        if value is None:
            raise ErrnoError(errno.ENOENT, "No element with this key.")
        return self._without_lock(value) if self.lock_off is not None else value

    def update(self, key: BytesLike, value: BytesLike, flags: int = UpdateFlags.ANY) -> None:
        """BPF_MAP_UPDATE_ELEM with BPF_ANY, BPF_NOEXIST (EEXIST) or BPF_EXIST (ENOENT)."""
        self._check_writable()
        flags = self._update_flags(flags)
        raw_key = self._key(key)
        raw = as_bytes(value, self.uapi_value_size, "value")
        self._update(raw_key, self._without_lock(raw) if self.lock_off is not None else raw,
                     flags)

    def delete(self, key: BytesLike) -> None:
        """BPF_MAP_DELETE_ELEM."""
        self._check_writable()
        self._delete(self._key(key))

    def get_next_key(self, key: BytesLike | None = None) -> bytes:
        """BPF_MAP_GET_NEXT_KEY: the first key for None or a missing key, ENOENT after the last."""
        self._check_readable()
        following = self._next_key(None if key is None else self._key(key))
        if following is None:
            raise ErrnoError(errno.ENOENT, "No key follows: the iteration is complete.")
        return following

    def freeze(self) -> None:
        """BPF_MAP_FREEZE: user space can no longer change the map (programs still can)."""
        if self.frozen:
            raise ErrnoError(errno.EPERM, "The map is already frozen.")
        self._check_writable()
        self.frozen = True

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) in uAPI form, in get_next_key order."""
        self._check_readable()
        if self.lock_off is not None:
            return ((k, self._without_lock(v)) for k, v in self._iter_entries())
        return self._iter_entries()

    # -- batches -----------------------------------------------------------------------------

    def _batch_flags(self, elem_flags: object) -> None:
        if isinstance(elem_flags, bool) or not isinstance(elem_flags, int) or elem_flags < 0 \
                or elem_flags & ~UpdateFlags.F_LOCK:
            raise ErrnoError(errno.EINVAL, f"Batch elem_flags may only hold BPF_F_LOCK, got "
                                           f"{elem_flags!r}.")
        if elem_flags:
            self._check_lock_flag()

    def _unsupported_batch(self, command: str) -> ErrnoError:
        return enotsupp(f"{self.spec.type.name} maps do not implement {command}.")

    def _lookup_batch_args(self, cursor: BytesLike | None, count: int,
                           elem_flags: int) -> tuple[bytes | None, int]:
        """The checks every BPF_MAP_LOOKUP_BATCH makes before it reads: the cursor's bytes
        and the count."""
        self._check_readable()
        if not self.batch_lookup:
            raise self._unsupported_batch("BPF_MAP_LOOKUP_BATCH")
        self._batch_flags(elem_flags)
        count = as_u32(count, "batch count")
        raw = None if cursor is None else as_bytes(cursor, self.batch_cursor_size, "batch cursor")
        return raw, count

    def lookup_batch(self, cursor: BytesLike | None, count: int,
                     elem_flags: int = 0) -> LookupBatch:
        """BPF_MAP_LOOKUP_BATCH: up to ``count`` entries after ``cursor`` (None: from the start)."""
        raw, count = self._lookup_batch_args(cursor, count, elem_flags)
        if count == 0:
            return LookupBatch((), None, False)
        batch = self._lookup_batch(raw, count)
        if self.lock_off is None:
            return batch
        return LookupBatch(tuple((k, self._without_lock(v)) for k, v in batch.entries),
                           batch.cursor, batch.done)

    def lookup_batch_columns(self, cursor: BytesLike | None, count: int,
                             elem_flags: int = 0) -> ColumnBatch:
        """:meth:`lookup_batch` with the entries as one keys blob and one values blob."""
        raw, count = self._lookup_batch_args(cursor, count, elem_flags)
        if count == 0:
            return ColumnBatch(0, b"", b"", None, False)
        batch = self._lookup_columns(raw, count)
        if self.lock_off is None or not batch.count:
            return batch
        return replace(batch, values=self._zero_locks(batch.values, batch.count,
                                                      self.uapi_value_size))

    def _zero_locks(self, values: bytes, count: int, stride: int) -> bytes:
        """``count`` values of ``stride`` bytes with every lock word zeroed (one extended
        slice per lock byte)."""
        off = self.lock_off
        if off is None or off + SPIN_LOCK_SIZE > stride:
            return values
        out = bytearray(values)
        for byte in range(off, off + SPIN_LOCK_SIZE):
            out[byte::stride] = bytes(count)
        return bytes(out)

    def _lookup_columns(self, cursor: bytes | None, count: int) -> ColumnBatch:
        batch = self._lookup_batch(cursor, count)
        return ColumnBatch(len(batch.entries), b"".join(k for k, _ in batch.entries),
                           b"".join(v for _, v in batch.entries), batch.cursor, batch.done)

    def update_batch_columns(self, count: int, keys: BytesLike, values: BytesLike,
                             elem_flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH from ``count`` keys and ``count`` uAPI values back to back:
        the count applied, or BatchError with it."""
        self._check_writable()
        if not self.batch_update:
            raise self._unsupported_batch("BPF_MAP_UPDATE_BATCH")
        self._batch_flags(elem_flags)
        count = as_u32(count, "batch count")
        keys = as_bytes(keys, count * self.key_size, "batch keys")
        values = as_bytes(values, count * self.uapi_value_size, "batch values")
        if self.lock_off is not None:
            values = self._zero_locks(values, count, self.uapi_value_size)
        return self._import(count, keys, self.values.slot_blob(values, count), user=True)

    def _lookup_batch(self, cursor: bytes | None, count: int) -> LookupBatch:
        """``generic_map_lookup_batch()``: walk get_next_key from the cursor key."""
        entries: list[tuple[bytes, bytes]] = []
        previous = cursor
        done = False
        while len(entries) < count:
            key = self._next_key(previous)
            if key is None:
                done = True
                break
            value = self._lookup(key)
            if value is not None:
                entries.append((key, value))
            previous = key
        return LookupBatch(tuple(entries), previous if entries else None, done)

    def update_batch(self, entries: Iterable[tuple[BytesLike, BytesLike]],
                     elem_flags: int = 0) -> int:
        """BPF_MAP_UPDATE_BATCH (always BPF_ANY): the count applied, or BatchError with it."""
        self._check_writable()
        if not self.batch_update:
            raise self._unsupported_batch("BPF_MAP_UPDATE_BATCH")
        self._batch_flags(elem_flags)
        done = 0
        for pair in self._batch_items(entries):
            try:
                if not isinstance(pair, tuple) or len(pair) != 2:
                    raise ErrnoError(errno.EINVAL, "Each batch entry must be a (key, value) pair.")
                self._update(self._key(pair[0]), self._without_lock(
                    as_bytes(pair[1], self.uapi_value_size, "value")), UpdateFlags.ANY)
            except ErrnoError as exc:
                raise BatchError(exc.errno, f"entry {done}: {exc.detail}", count=done) from None
            done += 1
        return done

    def delete_batch(self, keys: Iterable[BytesLike], elem_flags: int = 0) -> int:
        """BPF_MAP_DELETE_BATCH: the count deleted, or BatchError at the first failure."""
        self._check_writable()
        if not self.batch_delete:
            raise self._unsupported_batch("BPF_MAP_DELETE_BATCH")
        self._batch_flags(elem_flags)
        done = 0
        for key in self._batch_items(keys):
            try:
                self._delete(self._key(key))
            except ErrnoError as exc:
                raise BatchError(exc.errno, f"entry {done}: {exc.detail}", count=done) from None
            done += 1
        return done

    @staticmethod
    def _batch_items(items: object) -> list:
        if isinstance(items, (bytes, bytearray, memoryview, str)):
            raise ErrnoError(errno.EINVAL, "A batch must be a sequence of entries, not one buffer.")
        try:
            return list(items)  # type: ignore[call-overload]
        except TypeError:
            raise ErrnoError(errno.EINVAL, "A batch must be an iterable of entries.") from None

    # -- programs ----------------------------------------------------------------------------

    def value_ref(self, key: BytesLike, cpu: int = 0) -> bytearray | memoryview | None:
        """The live value buffer a program's bpf_map_lookup_elem() points into, or None.

        The buffer stays the same object while the element exists, so program stores through
        the pointer land in the map. Handing it out counts as dirtying the element unless
        programs cannot write the map.
        """
        found = self._ref(self._key(key), self._cpu(cpu))
        if found is None:
            return None
        token, buffer = found
        if self._tracking and self.program_writable:
            self._mark_ref(token)
        return buffer

    def _mark_ref(self, token: object) -> None:
        """A program got a pointer to the element ``_ref`` named ``token`` (a key, or a slot
        for slab maps): it may write through it."""
        if self._dirty is not None:
            self._dirty.add(token)  # type: ignore[arg-type]

    def program_ref(self, key: bytes, cpu: int) -> bytearray | memoryview | None:
        """:meth:`value_ref` for the packet path, where the key was just read as exactly
        ``key_size`` bytes and ``cpu`` is the device's own: no argument checks."""
        found = self._ref(key, cpu)
        if found is None:
            return None
        if self._tracking and self.program_writable:
            self._mark_ref(found[0])
        return found[1]

    # -- slot views (slab maps) ----------------------------------------------------------------

    def _init_views(self) -> None:
        """One view per value a program was handed (per CPU copy for per-CPU maps): the same
        object every time, since the engines cache regions by buffer identity; kept while the
        map lives, at most one per slot and CPU."""
        self._views: dict[int, memoryview] = {}
        self._view_copies = self.ncpus if self.values.percpu else 1

    def _new_view(self, slot: int, cpu: int) -> memoryview:
        values = self.values
        if not values.percpu:
            cpu = 0
        view = self._slab.view(slot, values.program_offset(cpu),  # type: ignore[attr-defined]
                               values.value_size)
        self._views[slot * self._view_copies + cpu] = view
        return view

    def _program_write_check(self, helper: str) -> None:
        if not self.program_writes:
            raise ErrnoError(errno.EINVAL, f"cannot pass map_type {int(self.spec.type)} into "
                                           f"func {helper}")
        if not self.program_writable:
            raise ErrnoError(errno.EPERM, "write into map forbidden: the map has "
                                          "BPF_F_RDONLY_PROG.")

    def program_update(self, key: BytesLike, value: BytesLike, flags: int = UpdateFlags.ANY,
                       cpu: int = 0) -> None:
        """bpf_map_update_elem() from a program on ``cpu``: ``value`` is that CPU's copy only."""
        self._program_write_check("bpf_map_update_elem")
        flags = self._update_flags(flags)
        raw_key = self._key(key)
        raw = as_bytes(value, self.value_size, "value")
        self._program_update(raw_key, self._without_lock(raw) if self.lock_off is not None
                             else raw, flags, self._cpu(cpu))

    def program_delete(self, key: BytesLike, cpu: int = 0) -> None:
        """bpf_map_delete_elem() from a program."""
        self._program_write_check("bpf_map_delete_elem")
        self._program_delete(self._key(key), self._cpu(cpu))

    # -- migration ---------------------------------------------------------------------------

    def track_dirty(self, enabled: bool = True) -> None:
        """Start (or stop) recording which keys change; starting twice keeps the record."""
        if not enabled:
            self._dirty = None
        elif self._dirty is None:
            self._dirty = set()
        self._tracking = enabled

    @property
    def tracking_dirty(self) -> bool:
        return self._tracking

    @staticmethod
    def _not_tracking() -> MapError:
        return MapError("Dirty tracking is off for this map: call track_dirty(True) first.")

    def take_dirty(self) -> set[bytes]:
        """Keys updated, deleted or handed to a program since the last take; starts a new round."""
        if self._dirty is None:
            raise self._not_tracking()
        dirty, self._dirty = self._dirty, set()
        return dirty

    def take_dirty_chunk(self) -> tuple[Chunk, bytes]:
        """What changed since the last take, in columns: the current entries of the changed
        elements (a :class:`Chunk`) and the keys deleted that no element holds now, back to
        back. Starts a new round."""
        present, values, gone = bytearray(), bytearray(), bytearray()
        count = 0
        for key in sorted(self.take_dirty()):
            found = self._exact(key)
            if found is None:
                gone += key
                continue
            present += found[0]
            values += self.values.to_slot(found[1])
            count += 1
        return Chunk(count, bytes(present), bytes(values)), bytes(gone)

    def export_chunks(self, limit: int = 4096) -> Iterator[Chunk]:
        """Every entry in get_next_key order (LRU maps: least recently used first, so a
        restore rebuilds their recency), ``limit`` at a time, packed (the walk has the
        guarantees of :meth:`export_entries`)."""
        if limit < 1:
            raise MapError(f"a chunk holds at least one entry, not {limit}.")
        return self._chunks(limit)

    def _chunks(self, limit: int) -> Iterator[Chunk]:
        keys, values, count = bytearray(), bytearray(), 0
        to_slot = self.values.to_slot
        for key, value in self._iter_entries():
            keys += key
            values += to_slot(value)
            count += 1
            if count == limit:
                yield Chunk(count, bytes(keys), bytes(values))
                keys, values, count = bytearray(), bytearray(), 0
        if count:
            yield Chunk(count, bytes(keys), bytes(values))

    def import_chunk(self, chunk: Chunk) -> int:
        """Apply a packed chunk as BPF_ANY updates, in order (device-internal: ignores frozen
        and BPF_F_RDONLY, as :meth:`import_entries`). Bad lengths are EINVAL before anything
        changes; the first element refused raises ErrnoError."""
        count = as_u32(chunk.count, "chunk count")
        keys = as_bytes(chunk.keys, count * self.key_size, "chunk keys")
        values = as_bytes(chunk.values, count * self.values.slot_size, "chunk values")
        if self.lock_off is not None:
            values = self._zero_locks(values, count * self.values.copies, self.value_size)
        return self._import(count, keys, values, user=False)

    def _import(self, count: int, keys: bytes, values: bytes, *, user: bool) -> int:
        """``count`` BPF_ANY updates from packed keys and slot-form values; families with
        slabs override it. ``user``: a uAPI batch (a failure is a BatchError with the count)."""
        ks, vs = self.key_size, self.values.slot_size
        from_slot = self.values.from_slot
        done = 0
        for i in range(count):
            try:
                value = from_slot(values[i * vs:(i + 1) * vs])
                if self.lock_off is not None:
                    value = self._without_lock(value)
                self._update(keys[i * ks:(i + 1) * ks], value, UpdateFlags.ANY)
            except ErrnoError as exc:
                if not user:
                    raise
                raise BatchError(exc.errno, f"entry {done}: {exc.detail}", count=done) from None
            done += 1
        return done

    def export_entries(self) -> Iterator[tuple[bytes, bytes]]:
        """Stream every (key, value) in uAPI form, one at a time.

        The walk survives concurrent changes: an element present for the whole walk is seen
        exactly once; an element added or deleted meanwhile may or may not be, and dirty
        tracking reports it.
        """
        return self._iter_entries()

    def export_entry(self, key: BytesLike) -> tuple[bytes, bytes] | None:
        """The element ``key`` names exactly, as (stored key, value), or None if it is gone.

        This is what a dirty key is resent as: for an LPM trie the exact prefix, not the
        longest match.
        """
        return self._exact(self._key(key))

    def import_entries(self, entries: Iterable[tuple[BytesLike, BytesLike | None]]) -> int:
        """Apply (key, value) pairs as BPF_ANY updates; a None value deletes the key if present.

        Device-internal restore: it ignores frozen and BPF_F_RDONLY, which guard user space.
        Returns the number of pairs applied; the first bad pair raises ErrnoError.
        """
        applied = 0
        for pair in self._batch_items(entries):
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ErrnoError(errno.EINVAL, f"Entry {applied} is not a (key, value) pair.")
            key = self._key(pair[0])
            if pair[1] is None:
                if self._exact(key) is not None:
                    self._delete(key)
            else:
                self._update(key, as_bytes(pair[1], self.uapi_value_size, "value"),
                             UpdateFlags.ANY)
            applied += 1
        return applied

    def release(self) -> None:
        """The map is being freed: drop references it holds on other objects."""

    # -- hooks -------------------------------------------------------------------------------

    def _count(self) -> int:
        raise NotImplementedError

    def _lookup(self, key: bytes) -> bytes | None:
        raise NotImplementedError

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        raise NotImplementedError

    def _delete(self, key: bytes) -> None:
        raise NotImplementedError

    def _next_key(self, key: bytes | None) -> bytes | None:
        raise NotImplementedError

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        raise NotImplementedError

    def _ref(self, key: bytes, cpu: int) -> tuple[object, bytearray | memoryview] | None:
        """The element's token for :meth:`_mark_ref` and the buffer a program writes."""
        raise NotImplementedError

    def _program_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> None:
        raise NotImplementedError

    def _program_delete(self, key: bytes, cpu: int) -> None:
        self._delete(key)

    def _exact(self, key: bytes) -> tuple[bytes, bytes] | None:
        value = self._lookup(key)
        return None if value is None else (key, value)
