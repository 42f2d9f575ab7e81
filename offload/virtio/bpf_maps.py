"""Map commands of the VIRTIO_NET_CTRL_BPF class: requests and results.

Each mirrors a ``bpf(2)`` map command, with the guest's file descriptors replaced by device
handles (u32, 0 is never a valid handle) and pointers replaced by inline, length-prefixed bytes.
Lengths are carried even where the map fixes them, so that a message can be checked without
knowing the map, and the device then compares them with the map's key and value sizes (EINVAL).
Layouts are in docs/virtio-offload.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from .ctrl import BpfCommand, HandleRequest, Request, Response
from .wire import (
    MAX_BATCH_COUNT,
    MAX_CURSOR_SIZE,
    MAX_KEY_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_VALUE_SIZE,
    CtrlEncodeError,
    Reader,
    Writer,
)

KEY_PRESENT = 1  # MAP_GET_NEXT_KEY flags: a key follows (absent: return the first key)
BATCH_DONE = 1  # MAP_LOOKUP_BATCH result flags: the iteration reached the end of the map
NO_SPIN_LOCK = 0xFFFFFFFF  # MAP_CREATE spin_lock_off: the value holds no bpf_spin_lock


@dataclass(frozen=True, slots=True)
class MapCreateRequest(Request):
    """BPF_MAP_CREATE. ``inner_map_handle`` names the template of a map-in-map (0: none).

    ``spin_lock_off`` is the offset of the value's ``struct bpf_spin_lock`` (None: no lock,
    NO_SPIN_LOCK on the wire): the guest driver finds it in the value's BTF, which the kernel
    would be given as ``btf_value_type_id``; the device has no guest BTF to read.
    """

    COMMAND = BpfCommand.MAP_CREATE

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    inner_map_handle: int = 0
    name: str = ""
    spin_lock_off: int | None = None

    def _encode_body(self, w: Writer) -> None:
        w.u32("map_type", self.map_type)
        w.u32("key_size", self.key_size)
        w.u32("value_size", self.value_size)
        w.u32("max_entries", self.max_entries)
        w.u32("map_flags", self.map_flags)
        w.u32("inner_map_handle", self.inner_map_handle)
        w.name("name", self.name)
        w.u32("spin_lock_off",
              NO_SPIN_LOCK if self.spin_lock_off is None else self.spin_lock_off)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        head = (r.u32("map_type"), r.u32("key_size"), r.u32("value_size"),
                r.u32("max_entries"), r.u32("map_flags"), r.u32("inner_map_handle"),
                r.name("name"))
        lock = r.u32("spin_lock_off")
        return cls(*head, None if lock == NO_SPIN_LOCK else lock)


@dataclass(frozen=True, slots=True)
class MapCreateResponse(Response):
    COMMAND = BpfCommand.MAP_CREATE

    handle: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)

    @classmethod
    def _decode_body(cls, r: Reader, status: int, log: str, log_true_size: int) -> Self:
        return cls(status, log, log_true_size, r.u32("handle"))


@dataclass(frozen=True, slots=True)
class MapFreeRequest(HandleRequest):
    """Drop the guest's reference to a map (close of the map fd)."""

    COMMAND = BpfCommand.MAP_FREE


@dataclass(frozen=True, slots=True)
class MapFreeResponse(Response):
    COMMAND = BpfCommand.MAP_FREE


@dataclass(frozen=True, slots=True)
class MapFreezeRequest(HandleRequest):
    """BPF_MAP_FREEZE: from now on the guest may not change the map (global ``.rodata``)."""

    COMMAND = BpfCommand.MAP_FREEZE


@dataclass(frozen=True, slots=True)
class MapFreezeResponse(Response):
    COMMAND = BpfCommand.MAP_FREEZE


@dataclass(frozen=True, slots=True)
class MapLookupRequest(Request):
    """BPF_MAP_LOOKUP_ELEM; ``flags`` as the uAPI (BPF_F_LOCK)."""

    COMMAND = BpfCommand.MAP_LOOKUP

    handle: int
    key: bytes
    flags: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)
        w.u64("flags", self.flags)
        w.u32("key_len", len(self.key))
        w.raw("key", self.key, MAX_KEY_SIZE)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        handle, flags = r.u32("handle"), r.u64("flags")
        key = r.raw("key", r.length("key_len", MAX_KEY_SIZE))
        return cls(handle, key, flags)


@dataclass(frozen=True, slots=True)
class MapLookupResponse(Response):
    COMMAND = BpfCommand.MAP_LOOKUP

    value: bytes = b""

    def _encode_body(self, w: Writer) -> None:
        w.u32("value_len", len(self.value))
        w.raw("value", self.value, MAX_VALUE_SIZE)

    @classmethod
    def _decode_body(cls, r: Reader, status: int, log: str, log_true_size: int) -> Self:
        return cls(status, log, log_true_size,
                   r.raw("value", r.length("value_len", MAX_VALUE_SIZE)))


@dataclass(frozen=True, slots=True)
class MapUpdateRequest(Request):
    """BPF_MAP_UPDATE_ELEM; ``flags`` is BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK."""

    COMMAND = BpfCommand.MAP_UPDATE

    handle: int
    key: bytes
    value: bytes
    flags: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)
        w.u64("flags", self.flags)
        w.u32("key_len", len(self.key))
        w.u32("value_len", len(self.value))
        w.raw("key", self.key, MAX_KEY_SIZE)
        w.raw("value", self.value, MAX_VALUE_SIZE)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        handle, flags = r.u32("handle"), r.u64("flags")
        key_len = r.length("key_len", MAX_KEY_SIZE)
        value_len = r.length("value_len", MAX_VALUE_SIZE)
        return cls(handle, r.raw("key", key_len), r.raw("value", value_len), flags)


@dataclass(frozen=True, slots=True)
class MapUpdateResponse(Response):
    COMMAND = BpfCommand.MAP_UPDATE


@dataclass(frozen=True, slots=True)
class MapDeleteRequest(Request):
    """BPF_MAP_DELETE_ELEM."""

    COMMAND = BpfCommand.MAP_DELETE

    handle: int
    key: bytes

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)
        w.u32("key_len", len(self.key))
        w.raw("key", self.key, MAX_KEY_SIZE)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        handle = r.u32("handle")
        return cls(handle, r.raw("key", r.length("key_len", MAX_KEY_SIZE)))


@dataclass(frozen=True, slots=True)
class MapDeleteResponse(Response):
    COMMAND = BpfCommand.MAP_DELETE


@dataclass(frozen=True, slots=True)
class MapGetNextKeyRequest(Request):
    """BPF_MAP_GET_NEXT_KEY; ``key=None`` asks for the first key (a NULL key in the uAPI)."""

    COMMAND = BpfCommand.MAP_GET_NEXT_KEY

    handle: int
    key: bytes | None = None

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)
        w.u32("flags", 0 if self.key is None else KEY_PRESENT)
        key = self.key or b""
        w.u32("key_len", len(key))
        w.raw("key", key, MAX_KEY_SIZE)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        handle, flags = r.u32("handle"), r.u32("flags")
        if flags & ~KEY_PRESENT:
            raise r.error("flags", f"unknown flags {flags:#x}")
        key = r.raw("key", r.length("key_len", MAX_KEY_SIZE))
        if not flags & KEY_PRESENT:
            if key:
                raise r.error("key_len", "a key is given but KEY_PRESENT is not set")
            return cls(handle, None)
        return cls(handle, key)


@dataclass(frozen=True, slots=True)
class MapGetNextKeyResponse(Response):
    """The next key; ENOENT in ``status`` when the given key was the last."""

    COMMAND = BpfCommand.MAP_GET_NEXT_KEY

    key: bytes = b""

    def _encode_body(self, w: Writer) -> None:
        w.u32("key_len", len(self.key))
        w.raw("key", self.key, MAX_KEY_SIZE)

    @classmethod
    def _decode_body(cls, r: Reader, status: int, log: str, log_true_size: int) -> Self:
        return cls(status, log, log_true_size, r.raw("key", r.length("key_len", MAX_KEY_SIZE)))


@dataclass(frozen=True, slots=True)
class MapLookupBatchRequest(Request):
    """BPF_MAP_LOOKUP_BATCH: up to ``count`` entries after ``cursor`` (empty: from the start).

    The cursor is opaque to the driver: it sends back what the previous result returned, as
    with ``in_batch``/``out_batch`` of the uAPI.
    """

    COMMAND = BpfCommand.MAP_LOOKUP_BATCH

    handle: int
    count: int
    cursor: bytes = b""
    elem_flags: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)
        if not 0 < self.count <= MAX_BATCH_COUNT:
            raise CtrlEncodeError("MAP_LOOKUP_BATCH request", "count", f"{self.count} is not "
                                  f"between 1 and {MAX_BATCH_COUNT}")
        w.u32("count", self.count)
        w.u64("elem_flags", self.elem_flags)
        w.u32("cursor_len", len(self.cursor))
        w.raw("cursor", self.cursor, MAX_CURSOR_SIZE)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        handle, count = r.u32("handle"), r.length("count", MAX_BATCH_COUNT)
        if count == 0:
            raise r.error("count", "a batch asks for at least one entry")
        elem_flags = r.u64("elem_flags")
        cursor = r.raw("cursor", r.length("cursor_len", MAX_CURSOR_SIZE))
        return cls(handle, count, cursor, elem_flags)


def _write_entries(w: Writer, keys: tuple[bytes, ...], values: tuple[bytes, ...]) -> None:
    if len(keys) != len(values):
        raise CtrlEncodeError(w.what, "count", f"{len(keys)} keys but {len(values)} values")
    if len(keys) > MAX_BATCH_COUNT:
        raise CtrlEncodeError(w.what, "count", f"{len(keys)} entries exceed the limit of "
                              f"{MAX_BATCH_COUNT}")
    key_size = len(keys[0]) if keys else 0
    value_size = len(values[0]) if values else 0
    if any(len(k) != key_size for k in keys) or any(len(v) != value_size for v in values):
        raise CtrlEncodeError(w.what, "key_size", "all keys, and all values, of a batch have "
                              "one size")
    if key_size > MAX_KEY_SIZE or value_size > MAX_VALUE_SIZE:
        raise CtrlEncodeError(w.what, "key_size", "key or value size exceeds its limit")
    w.u32("count", len(keys))
    w.u32("key_size", key_size)
    w.u32("value_size", value_size)
    w.raw("keys", b"".join(keys))
    w.raw("values", b"".join(values))


def _read_entries(r: Reader) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    count = r.length("count", MAX_BATCH_COUNT)
    key_size = r.length("key_size", MAX_KEY_SIZE)
    value_size = r.length("value_size", MAX_VALUE_SIZE)
    if count * (key_size + value_size) > MAX_MESSAGE_SIZE:
        raise r.error("count", f"{count} entries of {key_size}+{value_size} bytes exceed the "
                      f"message limit of {MAX_MESSAGE_SIZE}")
    if count and (key_size == 0):
        raise r.error("key_size", "batch entries have a key")
    keys = r.raw("keys", count * key_size)
    values = r.raw("values", count * value_size)
    return (tuple(keys[i * key_size:(i + 1) * key_size] for i in range(count)),
            tuple(values[i * value_size:(i + 1) * value_size] for i in range(count)))


@dataclass(frozen=True, slots=True)
class MapLookupBatchResponse(Response):
    """Entries found, the cursor to continue from, and ``done`` at the end of the map."""

    COMMAND = BpfCommand.MAP_LOOKUP_BATCH

    keys: tuple[bytes, ...] = ()
    values: tuple[bytes, ...] = ()
    cursor: bytes = b""
    done: bool = False

    def _encode_body(self, w: Writer) -> None:
        w.u32("flags", BATCH_DONE if self.done else 0)
        w.u32("cursor_len", len(self.cursor))
        w.raw("cursor", self.cursor, MAX_CURSOR_SIZE)
        _write_entries(w, self.keys, self.values)

    @classmethod
    def _decode_body(cls, r: Reader, status: int, log: str, log_true_size: int) -> Self:
        flags = r.u32("flags")
        if flags & ~BATCH_DONE:
            raise r.error("flags", f"unknown flags {flags:#x}")
        cursor = r.raw("cursor", r.length("cursor_len", MAX_CURSOR_SIZE))
        keys, values = _read_entries(r)
        return cls(status, log, log_true_size, keys, values, cursor, bool(flags & BATCH_DONE))


@dataclass(frozen=True, slots=True)
class MapUpdateBatchRequest(Request):
    """BPF_MAP_UPDATE_BATCH: ``keys[i]`` gets ``values[i]``, in order."""

    COMMAND = BpfCommand.MAP_UPDATE_BATCH

    handle: int
    keys: tuple[bytes, ...]
    values: tuple[bytes, ...]
    elem_flags: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("handle", self.handle)
        w.u64("elem_flags", self.elem_flags)
        _write_entries(w, self.keys, self.values)

    @classmethod
    def _decode_body(cls, r: Reader) -> Self:
        handle, elem_flags = r.u32("handle"), r.u64("elem_flags")
        keys, values = _read_entries(r)
        return cls(handle, keys, values, elem_flags)


@dataclass(frozen=True, slots=True)
class MapUpdateBatchResponse(Response):
    """How many entries were applied; present on failure too (as ``count`` in the uAPI)."""

    COMMAND = BpfCommand.MAP_UPDATE_BATCH
    BODY_ON_ERROR = True

    count: int = 0

    def _encode_body(self, w: Writer) -> None:
        w.u32("count", self.count)

    @classmethod
    def _decode_body(cls, r: Reader, status: int, log: str, log_true_size: int) -> Self:
        return cls(status, log, log_true_size, r.u32("count"))
