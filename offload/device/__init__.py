"""The device side: control commands, object table, and XDP on the receive path."""

from .device import Device, PortCounters
from .objects import ActionCounters, MapObject, ObjectTable, ProgramObject
from .pair import DevicePair, build_device

__all__ = ["ActionCounters", "Device", "DevicePair", "MapObject", "ObjectTable",
           "PortCounters", "ProgramObject", "build_device"]
