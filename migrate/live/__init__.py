"""Live migration of a device's offloaded state over a stream (docs/live-migration.md).

``MigrationSource(device).run(sock)`` on the source, ``MigrationDestination(pair).serve(sock)``
on the destination; ``connect``/``listen`` make the sockets from ``tcp:HOST:PORT`` or
``unix:PATH``. The protocol itself (``protocol``, ``messages``, ``frames``) does no I/O.
"""

from .address import AddressError, connect, listen, parse_address
from .destination import MigrationDestination
from .errors import (
                     ConnectionLost,
                     DestinationRefused,
                     MigrationCancelled,
                     MigrationError,
                     MigrationTimeout,
                     ProtocolViolation,
                     SourceAborted,
                     StreamTruncated,
)
from .protocol import PROTOCOL_VERSIONS, Connection, Role, State
from .report import MigrationOutcome, MigrationReport, RoundStats
from .source import MigrationSource

__all__ = [
    "PROTOCOL_VERSIONS", "AddressError", "Connection", "ConnectionLost", "DestinationRefused",
    "MigrationCancelled", "MigrationDestination", "MigrationError", "MigrationOutcome", "MigrationReport",
    "MigrationSource", "MigrationTimeout", "ProtocolViolation", "Role", "RoundStats",
    "SourceAborted", "State", "StreamTruncated", "connect", "listen", "parse_address",
]
