"""The guest side: a bpf(2)-like facade over the virtio control queue."""

from .driver import Driver
from .errors import DriverError, ObjectLoadError
from .objects import LoadedObject

__all__ = ["Driver", "DriverError", "LoadedObject", "ObjectLoadError"]
