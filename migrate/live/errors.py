"""Errors of a live migration; each carries the report of what happened up to the failure.

One root, :class:`MigrationError`, with a subclass per way a migration ends early, so callers
(the CLI's exit codes) can tell a refusal from a lost connection from a timeout. On the source
every one of them means the device runs on, unpaused, with all its state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from offload.errors import OffloadError

if TYPE_CHECKING:
    from .report import MigrationReport


class MigrationError(OffloadError):
    """A live migration that did not complete; ``report`` says how far it got."""

    def __init__(self, message: str, report: MigrationReport | None = None) -> None:
        super().__init__(message)
        self.report = report


class DestinationRefused(MigrationError):
    """The destination declined: protocol version, snapshot format, or its profile cannot
    take the state (``reason`` holds its words, ``code`` a stable word for scripts)."""

    def __init__(self, message: str, report: MigrationReport | None = None, *,
                 code: str = "refused") -> None:
        super().__init__(message, report)
        self.code = code


class SourceAborted(MigrationError):
    """The source gave up and said so (the destination rolled back)."""


class MigrationCancelled(MigrationError):
    """The source's caller cancelled before the cut (the destination rolled back)."""


class ConnectionLost(MigrationError):
    """The peer closed the connection or the socket failed."""


class StreamTruncated(ConnectionLost):
    """The stream ended inside a frame, or before the protocol's last message."""


class MigrationTimeout(MigrationError):
    """No data arrived (or none could be sent) within the read timeout."""


class ProtocolViolation(MigrationError):
    """Bytes that are not the migration protocol: a bad frame, a malformed message, or a
    message the peer may not send in the current state."""
