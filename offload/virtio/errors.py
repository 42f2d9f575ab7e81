"""The root of the virtio layer's errors.

Each concrete error lives next to the code that raises it (``GuestMemoryError`` in
:mod:`.memory`, ``VirtqueueError`` in :mod:`.ring`, ``CtrlDecodeError`` in :mod:`.wire`, ...);
they share this root so a caller can catch "anything the transport refused" in one clause.
"""

from __future__ import annotations

from ..errors import OffloadError


class VirtioError(OffloadError):
    """Something in the virtio transport (memory, queues, status, control messages) failed."""
