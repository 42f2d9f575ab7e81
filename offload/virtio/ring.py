"""Split virtqueue layout (virtio 1.2 section 2.7): descriptors, rings, event-index arithmetic.

This module only knows where things are and how they are encoded; the two state machines that
use it are :mod:`.driver_queue` and :mod:`.device_queue`. Layout, all little-endian::

    descriptor table  16 * size     { le64 addr; le32 len; le16 flags; le16 next; }[size]
    available ring    6 + 2 * size  { le16 flags; le16 idx; le16 ring[size]; le16 used_event; }
    used ring         6 + 8 * size  { le16 flags; le16 idx; { le32 id; le32 len; } ring[size];
                                      le16 avail_event; }

Indices ``idx`` are free-running 16-bit counters; a slot is ``idx % size`` (size is a power of
two, so the wrap of the counter at 65536 keeps slots consistent).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntFlag

from .errors import VirtioError

MAX_QUEUE_SIZE = 32768  # 2.7: "The maximum Queue Size value is 32768"
DESC = struct.Struct("<QIHH")
DESC_SIZE = DESC.size  # 16
DESC_ALIGN, AVAIL_ALIGN, USED_ALIGN = 16, 2, 4  # 2.7.2 alignment requirements
U16 = struct.Struct("<H")  # ring flags, indices and entries of the available ring
USED_ELEM = struct.Struct("<II")  # struct virtq_used_elem { le32 id; le32 len; }


class DescFlags(IntFlag):
    """``virtq_desc.flags`` (2.7.5)."""

    NEXT = 1  # VIRTQ_DESC_F_NEXT: the buffer continues via the next field
    WRITE = 2  # VIRTQ_DESC_F_WRITE: device-writable (otherwise device-readable)
    INDIRECT = 4  # VIRTQ_DESC_F_INDIRECT: the buffer holds a table of descriptors


# The flags as plain ints for the per-buffer paths (an IntFlag operation costs a call).
VIRTQ_DESC_F_NEXT = int(DescFlags.NEXT)
VIRTQ_DESC_F_WRITE = int(DescFlags.WRITE)
VIRTQ_DESC_F_INDIRECT = int(DescFlags.INDIRECT)


class AvailFlags(IntFlag):
    """``virtq_avail.flags`` (2.7.6), written by the driver."""

    NO_INTERRUPT = 1  # VIRTQ_AVAIL_F_NO_INTERRUPT


class UsedFlags(IntFlag):
    """``virtq_used.flags`` (2.7.8), written by the device."""

    NO_NOTIFY = 1  # VIRTQ_USED_F_NO_NOTIFY


class VirtqueueError(VirtioError):
    """Ring or descriptor contents that break the split-virtqueue rules.

    ``field`` names the guest-controlled field at fault the way the spec spells it
    (``avail.idx``, ``desc[3].len``, ``indirect[0].flags``, ``queue_desc``), so the reason a
    device gives for DEVICE_NEEDS_RESET points at the exact value a driver author must fix.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass(frozen=True, slots=True)
class Descriptor:
    """One ``struct virtq_desc``."""

    addr: int
    len: int
    flags: int = 0
    next: int = 0

    def encode(self) -> bytes:
        return DESC.pack(self.addr, self.len, self.flags, self.next)

    @classmethod
    def decode(cls, data: bytes) -> Descriptor:
        return cls(*DESC.unpack(data))


def is_valid_queue_size(size: int) -> bool:
    """2.7: a split queue size is a power of two between 1 and 32768."""
    return 0 < size <= MAX_QUEUE_SIZE and size & (size - 1) == 0


def vring_need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """2.7.7.2/2.7.10: notify iff ``event_idx`` lies in the window ``[old_idx, new_idx)``.

    All arithmetic is modulo 2**16, so the rule holds across the wrap of the free-running
    indices: ``(u16)(new - event - 1) < (u16)(new - old)``.
    """
    return (new_idx - event_idx - 1) & 0xFFFF < (new_idx - old_idx) & 0xFFFF


@dataclass(frozen=True, slots=True)
class VringLayout:
    """Where the three parts of one split virtqueue of ``size`` entries live in guest memory.

    ``desc``, ``driver`` and ``device`` are the spec's queue_desc, queue_driver (available ring)
    and queue_device (used ring) addresses.
    """

    size: int
    desc: int
    driver: int
    device: int

    @staticmethod
    def desc_bytes(size: int) -> int:
        return DESC_SIZE * size

    @staticmethod
    def avail_bytes(size: int) -> int:
        return 6 + 2 * size

    @staticmethod
    def used_bytes(size: int) -> int:
        return 6 + 8 * size

    # Available ring fields.
    @property
    def avail_flags(self) -> int:
        return self.driver

    @property
    def avail_idx(self) -> int:
        return self.driver + 2

    def avail_ring(self, slot: int) -> int:
        return self.driver + 4 + 2 * slot

    @property
    def used_event(self) -> int:
        return self.driver + 4 + 2 * self.size

    # Used ring fields.
    @property
    def used_flags(self) -> int:
        return self.device

    @property
    def used_idx(self) -> int:
        return self.device + 2

    def used_ring(self, slot: int) -> int:
        return self.device + 4 + 8 * slot

    @property
    def avail_event(self) -> int:
        return self.device + 4 + 8 * self.size

    def desc_addr(self, index: int) -> int:
        return self.desc + DESC_SIZE * index

    def areas(self) -> tuple[tuple[str, int, int, int], ...]:
        """(spec name, address, length, alignment) of the three areas."""
        return (("queue_desc", self.desc, self.desc_bytes(self.size), DESC_ALIGN),
                ("queue_driver", self.driver, self.avail_bytes(self.size), AVAIL_ALIGN),
                ("queue_device", self.device, self.used_bytes(self.size), USED_ALIGN))

    def validate(self, memory_size: int) -> None:
        """Check a driver-supplied layout before the device trusts it (4.1.4.3 queue setup)."""
        if not is_valid_queue_size(self.size):
            raise VirtqueueError("queue_size", f"{self.size} is not a power of two between 1 "
                                 f"and {MAX_QUEUE_SIZE}")
        spans = []
        for name, addr, length, align in self.areas():
            if addr < 0 or addr + length > memory_size:
                raise VirtqueueError(name, f"the area [{addr:#x}, {addr + length:#x}) lies "
                                     f"outside guest memory of {memory_size} bytes")
            if addr % align:
                raise VirtqueueError(name, f"address {addr:#x} is not aligned to {align} bytes")
            spans.append((addr, addr + length, name))
        spans.sort()
        for (_, end, first), (start, _, second) in zip(spans, spans[1:]):
            if start < end:
                raise VirtqueueError(second, f"the area overlaps {first}")
