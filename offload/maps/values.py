"""How a map stores one element's value: a single buffer, or one buffer per CPU.

The uAPI always moves per-CPU values as one blob holding every possible CPU's copy, each
rounded up to 8 bytes (``round_up(value_size, 8) * num_possible_cpus()``, see
``bpf_map_value_size()`` in kernel/bpf/syscall.c); a program only ever sees the copy of the CPU
it runs on. Keeping the two layouts here lets every map family share them.
"""

from __future__ import annotations

from collections.abc import Sequence


def round8(size: int) -> int:
    """``round_up(size, 8)``: the per-CPU stride of uAPI values."""
    return (size + 7) & ~7


def split_percpu(value: bytes, value_size: int, ncpus: int) -> list[bytes]:
    """Cut a uAPI per-CPU blob into ``ncpus`` values of ``value_size`` bytes (padding dropped)."""
    stride = round8(value_size)
    return [bytes(value[cpu * stride:cpu * stride + value_size]) for cpu in range(ncpus)]


def join_percpu(values: Sequence[bytes | bytearray], value_size: int) -> bytes:
    """The uAPI blob for per-CPU ``values`` (each padded with zeros to an 8-byte stride)."""
    pad = bytes(round8(value_size) - value_size)
    return b"".join(bytes(v[:value_size]).ljust(value_size, b"\0") + pad for v in values)


class SlotValues:
    """How one element's value sits in a slab slot and crosses the uAPI.

    A slot holds ``ncpus`` copies of ``value_size`` bytes back to back (one for ordinary maps),
    which is also the packed form of a checkpoint chunk; the uAPI pads each per-CPU copy to
    an 8-byte stride. Blob conversions cost O(min(count, value_size)) Python steps, so a batch
    moves without per-entry work whenever ``value_size`` is a multiple of 8 or the map is not
    per-CPU (then the two forms are the same bytes).
    """

    __slots__ = ("percpu", "value_size", "ncpus", "copies", "slot_size", "stride", "uapi_size",
                 "same")

    def __init__(self, percpu: bool, value_size: int, ncpus: int) -> None:
        self.percpu = percpu
        self.value_size = value_size
        self.ncpus = ncpus
        self.copies = ncpus if percpu else 1
        self.slot_size = value_size * self.copies
        self.stride = round8(value_size) if percpu else value_size
        self.uapi_size = self.stride * self.copies
        self.same = self.stride == value_size

    def to_slot(self, value: bytes) -> bytes:
        """A uAPI value (exactly ``uapi_size`` bytes) as slot bytes."""
        return value if self.same else self.slot_blob(value, 1)

    def from_slot(self, raw: bytes) -> bytes:
        """Slot bytes as the uAPI value."""
        return raw if self.same else self.uapi_blob(raw, 1)

    def program_new(self, value: bytes, cpu: int) -> bytes:
        """A new element written by a program: its CPU's copy set, the others zeroed
        (``pcpu_init_value()`` in kernel/bpf/hashtab.c)."""
        if not self.percpu:
            return value
        size = self.value_size
        return bytes(cpu * size) + value + bytes((self.ncpus - cpu - 1) * size)

    def program_offset(self, cpu: int) -> int:
        """Where ``cpu``'s copy starts in a slot."""
        return cpu * self.value_size if self.percpu else 0

    def uapi_blob(self, raw: bytes | bytearray | memoryview, count: int) -> bytes:
        """``count`` slots back to back as ``count`` uAPI values back to back."""
        if self.same:
            return bytes(raw)
        return _restride(raw, count * self.copies, self.value_size, self.value_size, self.stride)

    def slot_blob(self, blob: bytes | bytearray | memoryview, count: int) -> bytes:
        """``count`` uAPI values back to back as slots back to back (padding dropped)."""
        if self.same:
            return bytes(blob)
        return _restride(blob, count * self.copies, self.value_size, self.stride, self.value_size)


def _restride(data: bytes | bytearray | memoryview, items: int, size: int, src: int,
              dst: int) -> bytes:
    """``items`` records of ``size`` bytes moved from a ``src`` stride to a ``dst`` stride
    (the gap zeroed): one extended slice per byte column or one slice per record, whichever
    is fewer steps."""
    out = bytearray(items * dst)
    view = memoryview(data)
    if size < items:
        for column in range(size):
            out[column::dst] = view[column::src][:items]
    else:
        for i in range(items):
            out[i * dst:i * dst + size] = view[i * src:i * src + size]
    return bytes(out)


def value_layout(percpu: bool, value_size: int, ncpus: int) -> SlotValues:
    return SlotValues(percpu, value_size, ncpus)
