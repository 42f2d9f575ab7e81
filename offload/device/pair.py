"""A device and its guest driver wired together in one process (what the daemon and the
tests run): shared guest memory, and kicks that let the device work synchronously."""

from __future__ import annotations

from dataclasses import dataclass

from ..backends.builtin import BuiltinBackend
from ..caps.capabilities import Capabilities
from ..driver.driver import Driver
from .device import Device


@dataclass
class DevicePair:
    device: Device
    driver: Driver


def build_device(name: str, caps: Capabilities, *, backend: object | None = None,
                 engine: str = "fast", ncpus: int = 1, seed: int | None = None) -> DevicePair:
    """A device on ``backend`` (the built-in one by default) with its driver initialised."""
    chosen = backend if backend is not None else BuiltinBackend(caps, engine=engine,
                                                                ncpus=ncpus, seed=seed)
    device = Device(name, caps, chosen)  # type: ignore[arg-type]
    driver = Driver(device.transport, device.memory, device.service)
    return DevicePair(device, driver)
