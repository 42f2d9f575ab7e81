"""Device status, feature negotiation and queue setup: the common configuration registers.

One :class:`Transport` is the register file a virtio transport (PCI common config, MMIO)
exposes (virtio 1.2 sections 2.1, 2.2, 3.1 and 4.1.4.3): the driver writes status, accepted
features and queue addresses; the device offers features, judges FEATURES_OK, and raises
DEVICE_NEEDS_RESET when the driver hands it something malformed. It is a pure state machine:
no threads, no I/O; driver-side helpers :func:`driver_negotiate` and :func:`setup_queue` walk
the 3.1.1 initialization sequence over it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntFlag

from .allocator import GuestAllocator
from .device_queue import Chain, DeviceQueue
from .driver_queue import DriverQueue
from .errors import VirtioError
from .features import Feature, has, missing_dependencies, names, negotiate
from .memory import GuestMemory
from .ring import VirtqueueError, VringLayout, is_valid_queue_size

log = logging.getLogger(__name__)


class DeviceStatus(IntFlag):
    """The device status field (2.1)."""

    ACKNOWLEDGE = 1
    DRIVER = 2
    DRIVER_OK = 4
    FEATURES_OK = 8
    DEVICE_NEEDS_RESET = 64
    FAILED = 128


_DRIVER_BITS = (DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER | DeviceStatus.DRIVER_OK
                | DeviceStatus.FEATURES_OK | DeviceStatus.FAILED)


class StatusError(VirtioError):
    """A register write that breaks the device status rules (2.1.1, 3.1.1)."""


class FeatureNegotiationError(VirtioError):
    """The device did not keep FEATURES_OK: it does not support the accepted subset (3.1.1)."""


@dataclass(slots=True)
class _QueueSlot:
    max_size: int
    layout: VringLayout | None = None
    device_queue: DeviceQueue | None = None


class Transport:
    """The registers shared by one device and its driver, over ``memory``."""

    def __init__(self, memory: GuestMemory, device_features: int, queue_max_sizes: Sequence[int],
                 config: bytes = b"") -> None:
        if not has(device_features, Feature.VIRTIO_F_VERSION_1):
            raise VirtioError("a virtio 1.x device must offer VIRTIO_F_VERSION_1 (6.2)")
        if broken := missing_dependencies(device_features):
            feature, need = broken[0]
            raise VirtioError(f"the device offers {feature.name} without {need.name} (2.2.2)")
        for size in queue_max_sizes:
            if not is_valid_queue_size(size):
                raise VirtioError(f"queue size {size} is not a power of two up to 32768")
        self.memory = memory
        self.device_features = device_features
        self.config = bytes(config)
        self._queues = [_QueueSlot(size) for size in queue_max_sizes]
        self._status = DeviceStatus(0)
        self._live = False  # follows _status (see _set_status): checked once per packet
        self._driver_features = 0
        self._negotiated: int | None = None
        self.reset_reason: str | None = None
        self.config_changed = False  # a configuration change notification is pending
        self._kicks: set[int] = set()
        self.events: list[str] = []  # what the device logged, oldest first

    # -- driver-facing registers --------------------------------------------------------

    @property
    def status(self) -> DeviceStatus:
        return self._status

    @property
    def driver_features(self) -> int:
        return self._driver_features

    @property
    def num_queues(self) -> int:
        return len(self._queues)

    def write_driver_features(self, features: int) -> None:
        """The driver's accepted features; only between DRIVER and FEATURES_OK (3.1.1 step 4)."""
        if not self._status & DeviceStatus.DRIVER or self._status & DeviceStatus.FEATURES_OK:
            raise StatusError("driver features can only be written after DRIVER and before "
                              "FEATURES_OK is set")
        if features < 0:
            raise StatusError(f"feature set {features} is negative")
        self._driver_features = features

    def write_status(self, value: int) -> None:
        """Write the status register: 0 resets, otherwise the driver may only add bits."""
        if value == 0:
            self._reset()
            return
        if not 0 < value <= 0xFF:
            raise StatusError(f"status {value:#x} does not fit the 8-bit status field")
        wanted = DeviceStatus(value) & _DRIVER_BITS  # DEVICE_NEEDS_RESET belongs to the device
        current = self._status & _DRIVER_BITS
        if current & ~wanted:
            raise StatusError(f"the driver may not clear status bits ({current!r} -> "
                              f"{wanted!r}); write 0 to reset the device")
        if value & ~int(_DRIVER_BITS | DeviceStatus.DEVICE_NEEDS_RESET):
            raise StatusError(f"status {value:#x} sets bits that have no meaning")
        added = wanted & ~current
        for bit, before in ((DeviceStatus.DRIVER, DeviceStatus.ACKNOWLEDGE),
                            (DeviceStatus.FEATURES_OK, DeviceStatus.DRIVER),
                            (DeviceStatus.DRIVER_OK, DeviceStatus.FEATURES_OK)):
            if added & bit and not wanted & before:
                raise StatusError(f"{bit.name} is set before {before.name} (3.1.1 order)")
        if added & DeviceStatus.FEATURES_OK:
            reason = self._judge_features(self._driver_features)
            if reason is None:
                self._negotiated = self._driver_features
            else:
                added &= ~DeviceStatus.FEATURES_OK
                self._log(f"FEATURES_OK refused: {reason}")
                if added & DeviceStatus.DRIVER_OK:
                    raise StatusError("DRIVER_OK is set although the device refused FEATURES_OK")
        if added & DeviceStatus.FAILED:
            self._log("the driver gave up on the device (FAILED)")
        self._set_status((self._status & DeviceStatus.DEVICE_NEEDS_RESET) | current | added)

    def _judge_features(self, accepted: int) -> str | None:
        """2.2.2: accept any valid subset of the offer that includes VIRTIO_F_VERSION_1."""
        if extra := accepted & ~self.device_features:
            return f"the driver accepted features the device did not offer: {names(extra)}"
        if broken := missing_dependencies(accepted):
            feature, need = broken[0]
            return f"{feature.name} was accepted without {need.name}"
        if not has(accepted, Feature.VIRTIO_F_VERSION_1):
            return "VIRTIO_F_VERSION_1 was not accepted and this device has no legacy interface"
        return None

    def read_config(self, offset: int, length: int) -> bytes:
        """Device-specific configuration space (for virtio-net: ``struct virtio_net_config``)."""
        if offset < 0 or length < 0 or offset + length > len(self.config):
            raise StatusError(f"config read of {length} bytes at {offset} is outside the "
                              f"{len(self.config)}-byte configuration space")
        return self.config[offset:offset + length]

    def queue_max_size(self, index: int) -> int:
        return self._slot(index).max_size

    def configure_queue(self, index: int, layout: VringLayout) -> None:
        """queue_size, queue_desc, queue_driver and queue_device of queue ``index``."""
        slot = self._slot(index)
        if not self._status & DeviceStatus.FEATURES_OK or self._status & DeviceStatus.DRIVER_OK:
            raise StatusError("queues are configured after FEATURES_OK and before DRIVER_OK")
        if slot.device_queue is not None:
            raise StatusError(f"queue {index} is already enabled; reset the device first")
        if layout.size > slot.max_size or not is_valid_queue_size(layout.size):
            raise StatusError(f"queue {index} size {layout.size} must be a power of two no "
                              f"larger than {slot.max_size}")
        slot.layout = layout

    def enable_queue(self, index: int) -> None:
        """queue_enable = 1: the device checks the layout and starts owning the used ring."""
        slot = self._slot(index)
        if slot.layout is None:
            raise StatusError(f"queue {index} is enabled before it was configured")
        negotiated = self._negotiated or 0
        try:
            slot.device_queue = DeviceQueue(
                self.memory, slot.layout,
                event_idx=has(negotiated, Feature.VIRTIO_F_EVENT_IDX),
                indirect=has(negotiated, Feature.VIRTIO_F_INDIRECT_DESC))
        except VirtqueueError as err:
            self.needs_reset(f"queue {index}: {err}")
            raise

    def notify(self, index: int) -> None:
        """The driver's available-buffer notification (a "kick") for queue ``index``."""
        self._slot(index)
        self._kicks.add(index)

    # -- device-facing -------------------------------------------------------------------

    @property
    def negotiated(self) -> int | None:
        """The negotiated feature set once the device accepted FEATURES_OK, else None."""
        return self._negotiated if self._status & DeviceStatus.FEATURES_OK else None

    @property
    def live(self) -> bool:
        """DRIVER_OK set and neither FAILED nor DEVICE_NEEDS_RESET: the device may work."""
        return self._live

    def _set_status(self, status: DeviceStatus) -> None:
        self._status = status
        self._live = bool(status & DeviceStatus.DRIVER_OK) and not status & (
            DeviceStatus.FAILED | DeviceStatus.DEVICE_NEEDS_RESET)

    def take_kicks(self) -> set[int]:
        """Queues the driver notified since the last call."""
        kicks, self._kicks = self._kicks, set()
        return kicks

    def queue(self, index: int) -> DeviceQueue | None:
        """The device view of queue ``index`` while the device is live (2.1.2: not before)."""
        slot = self._slot(index)
        return slot.device_queue if self._live else None

    def device_queue(self, index: int) -> DeviceQueue | None:
        """Queue ``index`` whether or not the device is live (to inspect a broken queue)."""
        return self._slot(index).device_queue

    def pop(self, index: int) -> Chain | None:
        """Pop a validated chain; a malformed one sets DEVICE_NEEDS_RESET and returns None.

        This is the device loop's entry point: it never raises for anything the driver put in
        guest memory.
        """
        queues = self._queues
        queue = (queues[index] if 0 <= index < len(queues) else self._slot(index)).device_queue
        if queue is None or not self._live:
            return None
        try:
            return queue.pop()
        except VirtqueueError as err:
            self.needs_reset(f"queue {index}: {err}")
            return None

    def needs_reset(self, reason: str) -> None:
        """2.1.2: enter the error state; the driver must reset the device to recover."""
        if self.reset_reason is None:
            self.reset_reason = reason
        self._set_status(self._status | DeviceStatus.DEVICE_NEEDS_RESET)
        if self._status & DeviceStatus.DRIVER_OK:
            self.config_changed = True
        self._log(f"DEVICE_NEEDS_RESET: {reason}")

    def _log(self, message: str) -> None:
        self.events.append(message)
        log.warning("virtio device: %s", message)

    def _reset(self) -> None:
        self._set_status(DeviceStatus(0))
        self._driver_features = 0
        self._negotiated = None
        self.reset_reason = None
        self.config_changed = False
        self._kicks.clear()
        for slot in self._queues:
            slot.layout = None
            slot.device_queue = None

    def _slot(self, index: int) -> _QueueSlot:
        if not 0 <= index < len(self._queues):
            raise StatusError(f"queue {index} does not exist; the device has "
                              f"{len(self._queues)} queues")
        return self._queues[index]


def driver_negotiate(transport: Transport, wanted: int) -> int:
    """3.1.1 steps 1-6 from the driver's side; return the negotiated feature set.

    Resets the device, sets ACKNOWLEDGE and DRIVER, accepts ``wanted`` intersected with the
    offer (minus features whose dependencies are missing), sets FEATURES_OK and re-reads the
    status: if the device cleared FEATURES_OK the driver sets FAILED and raises.
    """
    transport.write_status(0)
    transport.write_status(DeviceStatus.ACKNOWLEDGE)
    transport.write_status(DeviceStatus.ACKNOWLEDGE | DeviceStatus.DRIVER)
    accepted = negotiate(transport.device_features, wanted)
    transport.write_driver_features(accepted)
    transport.write_status(transport.status | DeviceStatus.FEATURES_OK)
    if not transport.status & DeviceStatus.FEATURES_OK:
        reason = transport.events[-1] if transport.events else "no reason given"
        transport.write_status(transport.status | DeviceStatus.FAILED)
        raise FeatureNegotiationError(
            f"the device refused the feature set {names(accepted)}: {reason}")
    return accepted


def setup_queue(transport: Transport, allocator: GuestAllocator, index: int,
                size: int | None = None) -> DriverQueue:
    """3.1.1 step 7 for one queue: allocate rings, tell the device, enable the queue."""
    negotiated = transport.negotiated
    if negotiated is None:
        raise StatusError("queues are set up after the device accepted FEATURES_OK")
    size = size or transport.queue_max_size(index)
    queue = DriverQueue.allocate(allocator, size,
                                 event_idx=has(negotiated, Feature.VIRTIO_F_EVENT_IDX),
                                 indirect=has(negotiated, Feature.VIRTIO_F_INDIRECT_DESC))
    transport.configure_queue(index, queue.layout)
    transport.enable_queue(index)
    return queue
