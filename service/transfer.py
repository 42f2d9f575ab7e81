"""Snapshot payloads over the control socket, chunk by chunk, from the client's side.

Out of a device: ``checkpoint.begin`` then ``checkpoint.read`` until the payload's end; into
one: ``restore.begin``, ``restore.write`` per chunk, ``restore.commit`` (docs/control-socket.md).
Payloads go through files, so a client's memory stays bounded by a chunk; ``progress`` hears
(bytes moved, bytes in all) after every chunk, for whoever shows it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, BinaryIO

from migrate.freshness import SourceStamp
from migrate.schema import SnapshotFormatError

from .client import DeviceClient
from .errors import UsageError
from .protocol import CHUNK

Progress = Callable[[int, int], None]


def _quiet(done: int, total: int) -> None:
    """No one is watching."""


def download(client: DeviceClient, sink: BinaryIO,
             progress: Progress = _quiet) -> SourceStamp | None:
    """A checkpoint of the client's device written into ``sink``; the stamp the daemon gave
    it (None from a daemon that gives none)."""
    begin = client.call("checkpoint.begin")
    size, received = begin["size"], 0
    progress(0, size)
    while received < size:
        chunk = client.call("checkpoint.read", transfer=begin["transfer"], offset=received,
                            size=CHUNK)["data"]
        if not chunk:
            break
        sink.write(chunk)
        received += len(chunk)
        progress(received, size)
    raw = begin.get("source")
    try:
        return None if raw is None else SourceStamp.parse(raw, "the daemon's source stamp")
    except SnapshotFormatError as exc:
        raise UsageError(str(exc)) from None


def upload_and_commit(client: DeviceClient, payload: bytes | BinaryIO,
                      progress: Progress = _quiet, *, allow_fallback: bool, dry_run: bool,
                      **check: Any) -> dict[str, Any]:
    """Send a payload (bytes, or a file read from its start) in chunks, then commit;
    ``check`` holds the commit's ``source``, ``authenticated`` and ``no_rollback``."""
    stream = io.BytesIO(payload) if isinstance(payload, bytes) else payload
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    begin = client.call("restore.begin", size=size)
    sent = 0
    progress(0, size)
    while chunk := stream.read(CHUNK):
        client.call("restore.write", transfer=begin["transfer"], data=chunk)
        sent += len(chunk)
        progress(sent, size)
    result: dict[str, Any] = client.call("restore.commit", transfer=begin["transfer"],
                                         allow_fallback=allow_fallback, dry_run=dry_run,
                                         **check)
    return result
