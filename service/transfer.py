"""Snapshot payloads over the control socket, chunk by chunk, from the client's side.

Out of a device: ``checkpoint.begin`` then ``checkpoint.read`` until the payload's end; into
one: ``restore.begin``, ``restore.write`` per chunk, ``restore.commit`` (docs/control-socket.md).
Payloads pass through as iterators of chunks - into a sealed file as they arrive, out of a
verified one as it is read - so a client's memory stays bounded by a chunk whatever the
snapshot's size; ``progress`` hears (bytes moved, bytes in all) after every chunk, for
whoever shows it.
"""

from __future__ import annotations

import errno
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from migrate.freshness import SourceStamp
from migrate.schema import SnapshotFormatError

from .client import DeviceClient
from .errors import Refused, UsageError
from .protocol import CHUNK

Progress = Callable[[int, int], None]


def _quiet(done: int, total: int) -> None:
    """No one is watching."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint the daemon took: what it holds, its stamp, and its payload's chunks
    (read from the daemon as ``chunks`` is iterated; iterate it once)."""

    size: int
    programs: int
    maps: int
    entries: int
    source: SourceStamp | None
    chunks: Iterator[bytes]


def _count(begin: dict[str, Any], key: str) -> int:
    value = begin.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Refused(errno.EPROTO, f"the daemon's checkpoint.begin answer has no valid "
                                    f"{key!r}.")
    return value


def checkpoint(client: DeviceClient, progress: Progress = _quiet,
               chunk: int = CHUNK, *, samples: int = 0) -> Checkpoint:
    """Checkpoint the client's device; the payload is read ``chunk`` bytes at a time.
    ``samples``: up to that many recently received frames go into the snapshot."""
    begin = client.call("checkpoint.begin", samples=samples) if samples else \
        client.call("checkpoint.begin")
    if not isinstance(begin, dict):
        raise Refused(errno.EPROTO, "the daemon's checkpoint.begin answer is not a map.")
    size = _count(begin, "size")
    raw = begin.get("source")
    try:
        source = None if raw is None else SourceStamp.parse(raw, "the daemon's source stamp")
    except SnapshotFormatError as exc:
        raise UsageError(str(exc)) from None
    return Checkpoint(size, _count(begin, "programs"), _count(begin, "maps"),
                      _count(begin, "entries"), source,
                      _read(client, begin["transfer"], size, progress, chunk))


def _read(client: DeviceClient, transfer: object, size: int, progress: Progress,
          chunk: int) -> Iterator[bytes]:
    """The payload's chunks, exactly ``size`` bytes in all, or a refusal."""
    received = 0
    progress(0, size)
    while received < size:
        data = client.call("checkpoint.read", transfer=transfer, offset=received,
                           size=chunk).get("data")
        if not isinstance(data, bytes) or not data or received + len(data) > size:
            got = len(data) if isinstance(data, bytes) else "no"
            raise Refused(errno.EPROTO, f"the daemon sent {got} bytes at offset {received} "
                                        f"of a checkpoint of {size} bytes: the payload is "
                                        f"incomplete.")
        received += len(data)
        progress(received, size)
        yield data


def download(client: DeviceClient, sink: BinaryIO,
             progress: Progress = _quiet) -> SourceStamp | None:
    """A checkpoint of the client's device written into ``sink``; the stamp the daemon gave
    it (None from a daemon that gives none)."""
    taken = checkpoint(client, progress)
    for data in taken.chunks:
        sink.write(data)
    return taken.source


def upload(client: DeviceClient, chunks: Iterable[bytes], size: int,
           progress: Progress = _quiet, chunk: int = CHUNK) -> int:
    """Send a payload of ``size`` bytes, given as chunks of any length, in messages of at
    most ``chunk`` bytes; the transfer to commit. A payload that is not ``size`` bytes is
    refused before a commit could use it (the daemon drops the transfer with the
    connection)."""
    begin = client.call("restore.begin", size=size)
    transfer = begin.get("transfer") if isinstance(begin, dict) else None
    if isinstance(transfer, bool) or not isinstance(transfer, int):
        raise Refused(errno.EPROTO, "the daemon's restore.begin answer names no transfer.")
    sent = 0
    progress(0, size)
    for data in chunks:
        for start in range(0, len(data), chunk):
            part = data[start:start + chunk]
            sent += len(part)
            if sent > size:
                raise UsageError(f"the payload holds more than the {size} bytes announced.")
            client.call("restore.write", transfer=transfer, data=part)
            progress(sent, size)
    if sent != size:
        raise UsageError(f"the payload holds {sent} bytes where {size} were announced.")
    return transfer


def commit(client: DeviceClient, transfer: int, *, allow_fallback: bool, dry_run: bool,
           **check: Any) -> dict[str, Any]:
    """Restore (or plan, ``dry_run``) what the transfer holds; ``check`` holds the commit's
    ``source``, ``authenticated`` and ``no_rollback``."""
    result: dict[str, Any] = client.call("restore.commit", transfer=transfer,
                                         allow_fallback=allow_fallback, dry_run=dry_run,
                                         **check)
    return result


def upload_and_commit(client: DeviceClient, payload: bytes | BinaryIO,
                      progress: Progress = _quiet, *, allow_fallback: bool, dry_run: bool,
                      **check: Any) -> dict[str, Any]:
    """Send a payload (bytes, or a file read from its start) in chunks, then commit."""
    stream = io.BytesIO(payload) if isinstance(payload, bytes) else payload
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    transfer = upload(client, iter(lambda: stream.read(CHUNK), b""), size, progress)
    return commit(client, transfer, allow_fallback=allow_fallback, dry_run=dry_run, **check)
