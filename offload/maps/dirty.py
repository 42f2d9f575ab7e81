"""Which slots of a slab map changed since the last take: a bit per slot, and deleted keys.

Live migration resends what changed while it copied. A slab map knows its elements by slot,
so every write path - uAPI updates, batches, imports, program writes and program lookups of a
writable map (a program may store through the pointer it got) - sets the slot's bit. A slot
whose element was deleted loses its key, so deletes also keep the key; the migration resends
the slot's current element, if any, and deletes the keys no slot holds any more.
"""

from __future__ import annotations

import re

from .base import Map

_SET_BYTES = re.compile(b"[^\x00]+")


class SlotDirty:
    """A growable bitmap of slot numbers and the keys deleted since it was made."""

    __slots__ = ("bits", "deleted")

    def __init__(self) -> None:
        self.bits = bytearray()
        self.deleted: set[bytes] = set()

    def mark(self, slot: int) -> None:
        byte = slot >> 3
        bits = self.bits
        if byte >= len(bits):
            bits.extend(bytes(byte + 1 - len(bits) + (len(bits) >> 1)))
        bits[byte] |= 1 << (slot & 7)

    def mark_run(self, first: int, count: int) -> None:
        """Mark ``count`` slots from ``first``: whole bytes by one slice."""
        if count <= 0:
            return
        end = first + count
        bits = self.bits
        need = (end + 7) >> 3
        if need > len(bits):
            bits.extend(bytes(need - len(bits)))
        head = min(end, (first + 7) & ~7)
        for slot in range(first, head):
            bits[slot >> 3] |= 1 << (slot & 7)
        tail = max(head, end & ~7)
        if tail > head:
            bits[head >> 3:tail >> 3] = b"\xff" * ((tail - head) >> 3)
        for slot in range(tail, end):
            bits[slot >> 3] |= 1 << (slot & 7)

    def gone(self, slot: int, key: bytes) -> None:
        """The element in ``slot`` was deleted."""
        self.mark(slot)
        self.deleted.add(key)

    def slots(self) -> list[int]:
        """Marked slots in ascending order; clean stretches of the bitmap cost nothing."""
        found: list[int] = []
        for run in _SET_BYTES.finditer(self.bits):
            base = run.start() << 3
            word = int.from_bytes(run.group(), "little")
            while word:
                low = word & -word
                found.append(base + low.bit_length() - 1)
                word ^= low
        return found

    def __len__(self) -> int:
        return len(self.slots()) + len(self.deleted)


class SlotTrackedMap(Map):
    """A slab map whose writes mark slots (array and hash families): turning tracking on and
    taking the round's marks, shared so both keep the same rules."""

    _slots_dirty: SlotDirty | None = None

    def track_dirty(self, enabled: bool = True) -> None:
        if not enabled:
            self._slots_dirty = None
        elif self._slots_dirty is None:
            self._slots_dirty = SlotDirty()
        self._tracking = enabled

    def _take_dirty_slots(self) -> SlotDirty:
        dirty = self._slots_dirty
        if dirty is None:
            raise self._not_tracking()
        self._slots_dirty = SlotDirty()
        return dirty
