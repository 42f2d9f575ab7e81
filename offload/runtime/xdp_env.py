"""What the XDP helpers of one run see: the frame, the maps, the device's answers.

A device builds one :class:`XdpEnv` and refills it for every frame (runs are sequential). Map
pointers are opaque tokens (``MAP_POINTER_BASE`` plus the device's map handle) that no load
can dereference; map values are mapped into memory as regions, kept across runs up to a bound.
The helper functions themselves are in :mod:`offload.runtime.xdp`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..engine.alu import M64
from ..engine.interpreter import Interpreter
from ..engine.memory import Memory, MemoryFault, Region, RegionKind
from ..maps.base import Map
from ..xdp import XdpMd
from ..xdp_buffer import XdpBuffer

#: Map pointers are this plus the map's handle: recognisable, and mapped to no memory.
MAP_POINTER_BASE = 0xFFFF_A000_0000_0000
VALUE_REGIONS_KEPT = 4096


def errno_result(code: int) -> int:
    """A negative errno as the 64-bit r0 a helper returns."""
    return -abs(code) & M64


def map_pointer(handle: int) -> int:
    return MAP_POINTER_BASE + handle


def map_handle(pointer: int) -> int | None:
    """The handle a map pointer names, or None for a value no ``map_pointer`` gives."""
    handle = pointer - MAP_POINTER_BASE
    return handle if 0 <= handle < 1 << 32 else None


#: What a redirect names: an interface (bpf_redirect, devmaps), a CPU's worker queue
#: (cpumap), a guest receive queue through an AF_XDP socket (xskmap).
REDIRECT_INTERFACE, REDIRECT_CPU, REDIRECT_XSK = "interface", "cpu", "xsk"


@dataclass(slots=True)
class Redirect:
    """Where ``bpf_redirect``/``bpf_redirect_map`` sent the frame.

    ``ifindex`` is the interface for ``kind`` REDIRECT_INTERFACE, else the CPU or the guest
    receive queue; ``qsize`` bounds a CPU's worker queue.
    """

    ifindex: int
    program: Any = None  # the entry's program (devmap, cpumap), run on the frame first
    kind: str = REDIRECT_INTERFACE
    qsize: int = 0

    @property
    def describe(self) -> str:
        if self.kind == REDIRECT_CPU:
            return f"cpu {self.ifindex} worker queue"
        if self.kind == REDIRECT_XSK:
            return f"guest receive queue {self.ifindex} (AF_XDP)"
        return f"ifindex {self.ifindex}"


@dataclass(slots=True)
class XdpEnv:
    """What the XDP helpers of one run see."""

    memory: Memory
    buffer: XdpBuffer
    packet: Region
    maps: Mapping[int, Map]
    ingress_ifindex: int = 1
    rx_queue_index: int = 0
    #: the interface a devmap entry's program sends to; 0 for every other program
    egress_ifindex: int = 0
    cpu: int = 0
    clock: Callable[[], int] = time.monotonic_ns
    rng: random.Random = field(default_factory=random.Random)
    trace: list[str] = field(default_factory=list)
    tail_target: Callable[[Any], Interpreter | None] = lambda handle: None
    routes: Callable[[bytes], bytes | None] | None = None
    program_name: str = ""
    mtu: int = 1500
    redirect: Redirect | None = None
    #: id(value buffer) -> (its region, its map); shared across runs by a device
    value_regions: dict[int, tuple[Region, Map]] = field(default_factory=dict)
    #: the address of the bpf_spin_lock the run holds, or None (``runtime.xdp.spin_lock``)
    lock: int | None = None
    #: ring buffer reservations of this run: address -> (its region, its ring buffer, the
    #: ring's ``Reservation``)
    reservations: dict[int, tuple[Region, Any, Any]] = field(default_factory=dict)

    # -- frame ------------------------------------------------------------------------------
    def sync_packet(self) -> None:
        """Make the packet region's window follow the buffer after an adjust_* helper."""
        self.packet.start = self.buffer.data_meta
        self.packet.end = self.buffer.data_end

    def read_context(self, offset: int, size: int) -> tuple[int, Region | None]:
        """Loads from ``struct xdp_md``: data/data_end/data_meta read as full pointers into
        the packet region (returned with the value, so the pointer keeps its provenance)."""
        if size == 4:
            if offset == XdpMd.DATA:
                return self.packet.base + self.buffer.data, self.packet
            if offset == XdpMd.DATA_END:
                return self.packet.base + self.buffer.data_end, self.packet
            if offset == XdpMd.DATA_META:
                return self.packet.base + self.buffer.data_meta, self.packet
            if offset == XdpMd.INGRESS_IFINDEX:
                return self.ingress_ifindex, None
            if offset == XdpMd.RX_QUEUE_INDEX:
                return self.rx_queue_index, None
            if offset == XdpMd.EGRESS_IFINDEX:
                return self.egress_ifindex, None
        image = b"".join((self.read_context(field, 4)[0] & 0xFFFFFFFF).to_bytes(4, "little")
                         for field in XdpMd)
        return int.from_bytes(image[offset:offset + size], "little"), None

    # -- maps ---------------------------------------------------------------------------------
    def map_at(self, pointer: int) -> Map:
        handle = map_handle(pointer)
        found = self.maps.get(handle) if handle is not None else None
        if found is None:
            raise MemoryFault("the argument is not a map pointer", address=pointer, size=0,
                              write=False)
        return found

    def pointer_to(self, live: Map) -> int:
        """The map pointer of a live map (an inner map found through a map-in-map)."""
        for handle, candidate in self.maps.items():
            if candidate is live:
                return map_pointer(handle)
        raise MemoryFault("the inner map is not known to this device", address=0, size=0,
                          write=False)

    def value_address(self, live: Map, buffer: bytearray | memoryview) -> int:
        """Map a live value buffer into memory (once per run) and return its address."""
        found = self.value_regions.get(id(buffer))
        if found is None:
            region = self.memory.add_region(
                RegionKind.MAP_VALUE, buffer, writable=live.program_writable,
                name=f"map '{live.name}' value", owner=live)
            self.value_regions[id(buffer)] = (region, live)
            return region.address
        return found[0].address

    # -- ring buffer reservations -------------------------------------------------------------
    def reserve(self, ring: Any, reservation: Any, size: int) -> int:
        """Map a zeroed buffer for a reserved ring buffer record into memory: its address."""
        region = self.memory.add_region(RegionKind.RINGBUF, bytearray(size), writable=True,
                                        name=f"ring buffer '{ring.name}' record", owner=ring)
        self.reservations[region.address] = (region, ring, reservation)
        return region.address

    def take_reservation(self, address: int) -> tuple[Region, Any, Any] | None:
        """Unmap the reservation at ``address`` (its start: the verifier proved the pointer
        unmodified): its region and ring buffer, or None."""
        found = self.reservations.pop(address, None)
        if found is not None:
            self.memory.remove_region(found[0])
        return found

    def release(self) -> None:
        """End of the run: pointers it took are dead, and a reservation it still held (a run
        that faulted: a verified program releases each on every path) is discarded. Mapped
        values stay mapped for the next runs (a device reuses ``value_regions``), up to a
        bound past which the oldest go."""
        for address in list(self.reservations):
            found = self.take_reservation(address)
            if found is not None:
                found[1].cancel(found[2])
        if len(self.value_regions) > VALUE_REGIONS_KEPT:
            for key in list(self.value_regions)[:len(self.value_regions) - VALUE_REGIONS_KEPT // 2]:
                self.memory.remove_region(self.value_regions.pop(key)[0])
