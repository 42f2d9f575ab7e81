"""The device as a vhost-user back-end: a QEMU guest's virtio-net queues served here.

:mod:`.protocol` is the wire format, :mod:`.channel` its socket I/O with descriptors,
:mod:`.memory` the shared guest memory, :mod:`.session` the protocol's state machine over the
split-virtqueue code, :mod:`.server` the listener (docs/vhost-user.md).
"""

from .protocol import VhostUserError
from .server import VhostUserServer
from .session import Session

__all__ = ["Session", "VhostUserError", "VhostUserServer"]
