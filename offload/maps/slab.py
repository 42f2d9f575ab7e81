"""Fixed-size slots in a few large buffers: where slab maps keep their keys and values.

A map's slots are numbered; slot ``s`` is ``stride`` bytes at a fixed place in one of the
slab's segments. Segments are allocated when a slot in them is first needed (a map declared
with a huge ``max_entries`` costs nothing until it holds something) and never resized, so a
``memoryview`` of a slot - what a program's pointer into a map value is - stays valid for the
map's life. Runs of consecutive slots are read and written as one slice, which is what moves a
chunk of a checkpoint in O(1) Python work.
"""

from __future__ import annotations

#: Bytes a segment aims at; a segment holds at least one slot and at most the map.
SEGMENT_BYTES = 1 << 18


class Slab:
    """``capacity`` slots of ``stride`` bytes, zero until written, in lazily made segments."""

    __slots__ = ("stride", "capacity", "per_segment", "_segments")

    def __init__(self, stride: int, capacity: int) -> None:
        self.stride = stride
        self.capacity = capacity
        per = max(1, SEGMENT_BYTES // max(1, stride))
        self.per_segment = max(1, min(per, capacity))
        self._segments: dict[int, bytearray] = {}

    @property
    def allocated(self) -> int:
        """Bytes of segments allocated so far."""
        return len(self._segments) * self.per_segment * self.stride

    def _segment(self, number: int) -> bytearray:
        segment = self._segments.get(number)
        if segment is None:
            segment = self._segments[number] = bytearray(self.per_segment * self.stride)
        return segment

    def read(self, slot: int) -> bytes:
        """Slot ``slot``'s bytes (zeros if its segment was never written)."""
        number, index = divmod(slot, self.per_segment)
        segment = self._segments.get(number)
        if segment is None:
            return bytes(self.stride)
        start = index * self.stride
        return bytes(segment[start:start + self.stride])

    def write(self, slot: int, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        """Write ``data`` at byte ``offset`` of slot ``slot``."""
        number, index = divmod(slot, self.per_segment)
        start = index * self.stride + offset
        self._segment(number)[start:start + len(data)] = data

    def view(self, slot: int, offset: int = 0, size: int | None = None) -> memoryview:
        """The live bytes ``[offset, offset + size)`` of a slot (its segment is made if it was
        not). Callers keep one view per value: the engines cache regions by buffer identity."""
        size = self.stride - offset if size is None else size
        number, index = divmod(slot, self.per_segment)
        start = index * self.stride + offset
        return memoryview(self._segment(number))[start:start + size]

    def read_run(self, first: int, count: int) -> bytes:
        """Slots ``first .. first + count - 1`` back to back."""
        per, stride = self.per_segment, self.stride
        pieces: list[bytes | bytearray] = []
        slot, end = first, first + count
        while slot < end:
            number, index = divmod(slot, per)
            n = min(end - slot, per - index)
            segment = self._segments.get(number)
            if segment is None:
                pieces.append(bytes(n * stride))
            else:
                pieces.append(segment[index * stride:(index + n) * stride])
            slot += n
        return pieces[0] if len(pieces) == 1 and isinstance(pieces[0], bytes) \
            else b"".join(pieces)

    def write_run(self, first: int, data: bytes | bytearray | memoryview) -> None:
        """Write consecutive slots from ``first`` with ``data`` (a whole number of slots)."""
        per, stride = self.per_segment, self.stride
        view = memoryview(data)
        slot, end, pos = first, first + len(view) // stride, 0
        while slot < end:
            number, index = divmod(slot, per)
            n = min(end - slot, per - index)
            self._segment(number)[index * stride:(index + n) * stride] = \
                view[pos:pos + n * stride]
            pos += n * stride
            slot += n
