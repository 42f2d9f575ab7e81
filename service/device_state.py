"""A device daemon's persistent state: its identity, its generation counter, its rollback record.

Snapshots are stamped with the source device's identity and a generation that must only grow
(migrate.freshness), and a target with ``--no-rollback`` compares a stamp with the newest
generation of that source it restored. Both numbers must outlive the daemon, or a restart
would hand out generation 1 again and forget what was restored. They live in one JSON file,
``state.json``, in the device's state directory (``device serve --state-dir``), replaced
atomically on every change (migrate.atomic_file), the counter before the checkpoint it stamps
leaves the daemon. A ``lock`` file held with ``flock`` for the daemon's life keeps a second
daemon off the same directory. A damaged state file stops the daemon rather than being
replaced: starting over would reset the counter.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.atomic_file import write_atomic
from migrate.freshness import DEVICE_ID, SourceStamp, check_rollback
from migrate.schema import MAX_NAME, U64

from .errors import Refused

STATE_FILE = "state.json"
LOCK_FILE = "lock"
STATE_VERSION = 1
MAX_STATE_FILE = 16 << 20
MAX_SOURCES = 65536  # sources in the rollback record
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class StateError(Refused):
    """A state directory that cannot be used: locked by another daemon, damaged, unwritable."""


@dataclass(frozen=True, slots=True)
class Restored:
    """The newest generation of one source this device restored, and when."""

    name: str
    generation: int
    restored_ns: int


def default_state_dir(name: str) -> Path:
    """``$XDG_STATE_HOME/offload-migrate/devices/NAME`` (``~/.local/state`` without it)."""
    if not _SAFE_NAME.fullmatch(name):
        raise StateError(errno.EINVAL, f"the device name {name!r} cannot name a state "
                                       "directory; give one with --state-dir.")
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "offload-migrate" / "devices" / name


class DeviceState:
    """Identity, generation and rollback record; on disk, or in memory (``directory`` None)
    for devices that live only as long as their process (the demo, tests)."""

    def __init__(self, name: str, directory: Path | None = None, device_id: str | None = None,
                 generation: int = 0, restored: dict[str, Restored] | None = None,
                 lock_fd: int | None = None) -> None:
        self.name = name
        self.directory = directory
        self.device_id = device_id or secrets.token_hex(16)
        self.generation = generation
        self.restored: dict[str, Restored] = dict(restored or {})
        self._lock_fd = lock_fd

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: str | os.PathLike[str], name: str) -> DeviceState:
        """The state in ``directory`` (made, mode 0700, when missing), locked for this process."""
        path = Path(directory)
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(exc.errno or errno.EIO, f"cannot use the state directory {path}: "
                                                     f"{exc.strerror or exc}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StateError(errno.EBUSY, f"another daemon uses the state directory {path}; "
                                          "give this one its own --state-dir.") from None
        try:
            state = cls._read(path, name, fd)
        except BaseException:
            os.close(fd)
            raise
        return state

    @classmethod
    def _read(cls, path: Path, name: str, fd: int) -> DeviceState:
        file = path / STATE_FILE
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_STATE_FILE + 1)
        except FileNotFoundError:
            state = cls(name, path, lock_fd=fd)
            state._save(state._record())
            return state
        except OSError as exc:
            raise StateError(exc.errno or errno.EIO, f"cannot read {file}: "
                                                     f"{exc.strerror or exc}.") from None
        try:
            device_id, stored_name, generation, restored = _parse(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise StateError(errno.EINVAL, f"the device state file {file} is damaged ({exc}). "
                                           "It holds the generation counter and the rollback "
                                           "record, so it is not replaced silently: move it "
                                           "away to start afresh as a new device.") from None
        state = cls(name, path, device_id, generation, restored, fd)
        if stored_name != name:
            state._save(state._record())  # the operator renamed the device; its id stays
        return state

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # -- the counter -------------------------------------------------------------------------
    def next_stamp(self) -> SourceStamp:
        """The stamp of a checkpoint about to be handed out: the next generation, on disk
        before it is returned (a crash can skip a number, never repeat one)."""
        if self.generation >= U64:
            raise StateError(errno.EOVERFLOW, "the generation counter is exhausted.")
        generation = self.generation + 1
        self._save({**self._record(), "generation": generation})
        self.generation = generation
        return SourceStamp(self.device_id, self.name, generation)

    # -- the rollback record -------------------------------------------------------------------
    def last_restored(self, device_id: str) -> int | None:
        entry = self.restored.get(device_id)
        return None if entry is None else entry.generation

    def check_rollback(self, source: SourceStamp) -> None:
        check_rollback(source, self.last_restored(source.device_id), self.name)

    def record_restore(self, source: SourceStamp) -> None:
        """Remember ``source``'s generation as restored here, if it is the newest yet."""
        last = self.last_restored(source.device_id)
        if last is not None and last >= source.generation:
            return
        if last is None and len(self.restored) >= MAX_SOURCES:
            raise StateError(errno.ENOSPC, f"the rollback record holds {MAX_SOURCES} sources "
                                           "already.")
        restored = {**self.restored,
                    source.device_id: Restored(source.name, source.generation, time.time_ns())}
        self._save({**self._record(), "restored": _restored_json(restored)})
        self.restored = restored

    # -- the file --------------------------------------------------------------------------
    def _record(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "device_id": self.device_id, "name": self.name,
                "generation": self.generation, "restored": _restored_json(self.restored)}

    def _save(self, record: dict[str, Any]) -> None:
        if self.directory is None:
            return
        try:
            write_atomic(self.directory / STATE_FILE,
                         json.dumps(record, indent=1, sort_keys=True).encode() + b"\n")
        except OSError as exc:
            raise StateError(exc.errno or errno.EIO, f"cannot write the device state in "
                                                     f"{self.directory}: "
                                                     f"{exc.strerror or exc}.") from None

    def picture(self) -> dict[str, Any]:
        """What ``status`` shows of it."""
        return {"device_id": self.device_id, "generation": self.generation,
                "state_dir": str(self.directory) if self.directory is not None else None,
                "restored_sources": len(self.restored)}


def _restored_json(restored: dict[str, Restored]) -> dict[str, Any]:
    return {k: {"name": v.name, "generation": v.generation, "restored_ns": v.restored_ns}
            for k, v in sorted(restored.items())}


def _uint(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64:
        raise ValueError(f"{what} is not an integer in 0..{U64}")
    return value


def _parse(data: bytes) -> tuple[str, str, int, dict[str, Restored]]:
    """The state file's fields, every one checked (ValueError naming the first bad one)."""
    if len(data) > MAX_STATE_FILE:
        raise ValueError("it is larger than a state file can be")
    record = json.loads(data)
    if not isinstance(record, dict) or record.get("version") != STATE_VERSION:
        raise ValueError(f"it is not a version {STATE_VERSION} state record")
    if set(record) != {"version", "device_id", "name", "generation", "restored"}:
        raise ValueError("its fields are not those of a state record")
    device_id = record["device_id"]
    if not isinstance(device_id, str) or not DEVICE_ID.fullmatch(device_id):
        raise ValueError("device_id is not 32 hex digits")
    if not isinstance(record["name"], str):
        raise ValueError("name is not a string")
    generation = _uint(record["generation"], "generation")
    raw = record["restored"]
    if not isinstance(raw, dict) or len(raw) > MAX_SOURCES:
        raise ValueError("restored is not a map of sources")
    restored = {}
    for source, entry in raw.items():
        if not DEVICE_ID.fullmatch(source) or not isinstance(entry, dict) or \
                set(entry) != {"name", "generation", "restored_ns"} or \
                not isinstance(entry["name"], str) or not 0 < len(entry["name"]) <= MAX_NAME:
            raise ValueError(f"restored entry {source!r} is malformed")
        restored[source] = Restored(entry["name"], _uint(entry["generation"], "a generation"),
                                    _uint(entry["restored_ns"], "restored_ns"))
    return device_id, record["name"], generation, restored

