"""Shared set-up: a live transport with the control queue ready, driver and device views."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from offload.virtio import (
    CONTROLQ,
    DeviceQueue,
    DeviceStatus,
    DriverQueue,
    GuestAllocator,
    GuestMemory,
    Transport,
    driver_negotiate,
    setup_queue,
)
from offload.virtio.features import DEFAULT_DEVICE_FEATURES


@dataclass
class Link:
    memory: GuestMemory
    allocator: GuestAllocator
    transport: Transport
    driver: DriverQueue

    @property
    def device(self) -> DeviceQueue:
        queue = self.transport.queue(CONTROLQ)
        assert queue is not None
        return queue


def make_link(features: int = DEFAULT_DEVICE_FEATURES, size: int = 16,
              memory_size: int = 1 << 20) -> Link:
    memory = GuestMemory(memory_size)
    allocator = GuestAllocator(memory)
    transport = Transport(memory, DEFAULT_DEVICE_FEATURES, [256, 256, size])
    driver_negotiate(transport, features)
    driver = setup_queue(transport, allocator, CONTROLQ)
    transport.write_status(transport.status | DeviceStatus.DRIVER_OK)
    return Link(memory, allocator, transport, driver)


@pytest.fixture
def link() -> Link:
    return make_link()
