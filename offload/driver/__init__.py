"""The guest side: a bpf(2)-like facade over the virtio control queue."""

from .driver import Driver
from .errors import DriverError

__all__ = ["Driver", "DriverError"]
