"""Map commands of the VIRTIO_NET_CTRL_BPF class: requests and results.

Each mirrors a ``bpf(2)`` map command, with the guest's file descriptors replaced by device
handles (u32, 0 is never a valid handle) and pointers replaced by inline, length-prefixed bytes.
Lengths are carried even where the map fixes them, so that a message can be checked without
knowing the map, and the device then compares them with the map's key and value sizes (EINVAL).
Each class's ``LAYOUT`` is its body on the wire (docs/virtio-offload.md draws them).
"""

from __future__ import annotations

from dataclasses import dataclass

from .ctrl import BpfCommand, HandleRequest, Request, Response
from .layout import (
    Bit,
    Bounded,
    Bytes,
    Entries,
    Flags,
    Length,
    Name,
    OptionalU32,
    blob,
    u32,
    u64,
)
from .wire import MAX_BATCH_COUNT, MAX_CURSOR_SIZE, MAX_KEY_SIZE, MAX_VALUE_SIZE

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
    LAYOUT = (u32("map_type"), u32("key_size"), u32("value_size"), u32("max_entries"),
              u32("map_flags"), u32("inner_map_handle"), Name("name"),
              OptionalU32("spin_lock_off", NO_SPIN_LOCK))

    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    inner_map_handle: int = 0
    name: str = ""
    spin_lock_off: int | None = None


@dataclass(frozen=True, slots=True)
class MapCreateResponse(Response):
    COMMAND = BpfCommand.MAP_CREATE
    LAYOUT = (u32("handle"),)

    handle: int = 0


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
    LAYOUT = (u32("handle"), u64("flags"), *blob("key", MAX_KEY_SIZE))

    handle: int
    key: bytes
    flags: int = 0


@dataclass(frozen=True, slots=True)
class MapLookupResponse(Response):
    COMMAND = BpfCommand.MAP_LOOKUP
    LAYOUT = blob("value", MAX_VALUE_SIZE)

    value: bytes = b""


@dataclass(frozen=True, slots=True)
class MapUpdateRequest(Request):
    """BPF_MAP_UPDATE_ELEM; ``flags`` is BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_LOCK."""

    COMMAND = BpfCommand.MAP_UPDATE
    LAYOUT = (u32("handle"), u64("flags"), Length("key", "key_len", limit=MAX_KEY_SIZE),
              Length("value", "value_len", limit=MAX_VALUE_SIZE), Bytes("key", MAX_KEY_SIZE),
              Bytes("value", MAX_VALUE_SIZE))

    handle: int
    key: bytes
    value: bytes
    flags: int = 0


@dataclass(frozen=True, slots=True)
class MapUpdateResponse(Response):
    COMMAND = BpfCommand.MAP_UPDATE


@dataclass(frozen=True, slots=True)
class MapDeleteRequest(Request):
    """BPF_MAP_DELETE_ELEM."""

    COMMAND = BpfCommand.MAP_DELETE
    LAYOUT = (u32("handle"), *blob("key", MAX_KEY_SIZE))

    handle: int
    key: bytes


@dataclass(frozen=True, slots=True)
class MapDeleteResponse(Response):
    COMMAND = BpfCommand.MAP_DELETE


@dataclass(frozen=True, slots=True)
class MapGetNextKeyRequest(Request):
    """BPF_MAP_GET_NEXT_KEY; ``key=None`` asks for the first key (a NULL key in the uAPI)."""

    COMMAND = BpfCommand.MAP_GET_NEXT_KEY
    LAYOUT = (u32("handle"), Flags("flags", 4, (Bit(KEY_PRESENT, "key", "KEY_PRESENT"),)),
              Length("key", "key_len", limit=MAX_KEY_SIZE),
              Bytes("key", MAX_KEY_SIZE, optional="KEY_PRESENT"))

    handle: int
    key: bytes | None = None


@dataclass(frozen=True, slots=True)
class MapGetNextKeyResponse(Response):
    """The next key; ENOENT in ``status`` when the given key was the last."""

    COMMAND = BpfCommand.MAP_GET_NEXT_KEY
    LAYOUT = blob("key", MAX_KEY_SIZE)

    key: bytes = b""


@dataclass(frozen=True, slots=True)
class MapLookupBatchRequest(Request):
    """BPF_MAP_LOOKUP_BATCH: up to ``count`` entries after ``cursor`` (empty: from the start).

    The cursor is opaque to the driver: it sends back what the previous result returned, as
    with ``in_batch``/``out_batch`` of the uAPI.
    """

    COMMAND = BpfCommand.MAP_LOOKUP_BATCH
    LAYOUT = (u32("handle"), Bounded("count", 1, MAX_BATCH_COUNT,
                                     "a batch asks for at least one entry"),
              u64("elem_flags"), *blob("cursor", MAX_CURSOR_SIZE))

    handle: int
    count: int
    cursor: bytes = b""
    elem_flags: int = 0


@dataclass(frozen=True, slots=True)
class MapLookupBatchResponse(Response):
    """Entries found (in columns, values in uAPI form), the cursor to continue from, and
    ``done`` at the end of the map."""

    COMMAND = BpfCommand.MAP_LOOKUP_BATCH
    LAYOUT = (Flags("flags", 4, (Bit(BATCH_DONE, "done"),)), *blob("cursor", MAX_CURSOR_SIZE),
              Entries("keys", "values"))

    count: int = 0
    key_size: int = 0
    value_size: int = 0
    keys: bytes = b""
    values: bytes = b""
    cursor: bytes = b""
    done: bool = False


@dataclass(frozen=True, slots=True)
class MapUpdateBatchRequest(Request):
    """BPF_MAP_UPDATE_BATCH: key ``i`` (bytes ``i*key_size`` on of ``keys``) gets value ``i``,
    in order. The values are in uAPI form (per-CPU copies padded to 8 bytes)."""

    COMMAND = BpfCommand.MAP_UPDATE_BATCH
    LAYOUT = (u32("handle"), u64("elem_flags"), Entries("keys", "values"))

    handle: int
    count: int
    key_size: int
    value_size: int
    keys: bytes
    values: bytes
    elem_flags: int = 0

    @classmethod
    def of(cls, handle: int, keys: bytes, values: bytes, count: int,
           elem_flags: int = 0) -> MapUpdateBatchRequest:
        """A request for ``count`` entries, the sizes read off the blobs."""
        return cls(handle, count, len(keys) // count if count else 0,
                   len(values) // count if count else 0, keys, values, elem_flags)


@dataclass(frozen=True, slots=True)
class MapUpdateBatchResponse(Response):
    """How many entries were applied; present on failure too (as ``count`` in the uAPI)."""

    COMMAND = BpfCommand.MAP_UPDATE_BATCH
    BODY_ON_ERROR = True
    LAYOUT = (u32("count"),)

    count: int = 0


