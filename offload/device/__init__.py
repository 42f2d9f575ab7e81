"""The device side: control commands, object table, and XDP on the receive path.

The names below load their modules on first use (PEP 562), so importing a light submodule
(``offload.device.sampler`` for its limits, as the snapshot codec does) does not import the
whole device with its verifier, engines and loader.
"""

from typing import TYPE_CHECKING

from ..lazy_exports import lazy_exports

if TYPE_CHECKING:
    from .device import Device, PortCounters
    from .objects import ActionCounters, MapObject, ObjectTable, ProgramObject
    from .pair import DevicePair, build_device

__all__ = ["ActionCounters", "Device", "DevicePair", "MapObject", "ObjectTable",
           "PortCounters", "ProgramObject", "build_device"]

_MODULES = {"Device": "device", "PortCounters": "device", "ActionCounters": "objects",
            "MapObject": "objects", "ObjectTable": "objects", "ProgramObject": "objects",
            "DevicePair": "pair", "build_device": "pair"}


__getattr__ = lazy_exports(__name__, _MODULES)
