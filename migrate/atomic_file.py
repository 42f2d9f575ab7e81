"""Writing files so that readers see the old content or the new, never a torn mix, and so that
a writer killed midway leaves nothing behind.

The data goes to an unnamed file in the target's directory (``O_TMPFILE``: it has no name, so
a writer killed while writing - the long part - leaves nothing); once flushed and fsynced it
is linked under a temporary name and renamed over the target at once (POSIX rename(2) is
atomic within a filesystem), and the directory is fsynced so the rename itself survives a
crash. Where the filesystem has no ``O_TMPFILE`` the data goes to a named temporary file
instead. Either way the temporary name is ``.TARGET.PID-TOKEN.tmp``, and every later write in
the same directory removes such files whose writer (PID) is gone: only a writer killed in
the instant between link and rename, or one on a filesystem without ``O_TMPFILE``, leaves one,
and only until the next write there. :func:`atomic_output` streams (a snapshot of millions of
entries goes to disk without being built in memory first); :func:`write_atomic` writes bytes.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_TEMP = re.compile(r"^\..+\.(\d+)-[0-9a-f]{12}\.tmp$")


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")


def _gone(pid: int) -> bool:
    """Whether no process ``pid`` exists (one we may not signal still exists)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[str]:
    """Remove temporary files of writers that died in ``directory`` (ours only: regular
    files of this user named as :func:`atomic_output` names them); return their names."""
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = _TEMP.match(name)
        if match is None or not _gone(int(match.group(1))):
            continue
        path = os.path.join(directory, name)
        try:
            info = os.lstat(path)
            if info.st_uid != os.geteuid() or not (info.st_mode & 0o170000 == 0o100000):
                continue
            os.unlink(path)
        except OSError:
            continue
        removed.append(name)
    return removed


_LINKABLE: dict[int, bool] = {}  # per filesystem (st_dev): can an unnamed file be named


def _link(fd: int, name: Path) -> bool:
    """Give the unnamed file ``fd`` the name ``name``: linkat(2) through /proc/self/fd, or
    with AT_EMPTY_PATH where that path crosses a mount (it needs CAP_DAC_READ_SEARCH)."""
    try:
        os.link(f"/proc/self/fd/{fd}", name, follow_symlinks=True)
        return True
    except OSError:
        pass
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.linkat(fd, b"", -100, os.fsencode(name), 0x1000) == 0  # AT_FDCWD, AT_EMPTY_PATH
    except (OSError, AttributeError):
        return False


def _open_unnamed(directory: Path, mode: int) -> int | None:
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None:
        return None
    try:
        return os.open(directory, flag | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT) \
                and os.path.isdir(directory):
            return None
        raise


def _unnamed(directory: Path, mode: int) -> int | None:
    """A file descriptor on a new unnamed file in ``directory``, or None where the
    filesystem has no O_TMPFILE or such a file cannot be given a name here (tried once per
    filesystem)."""
    device = os.stat(directory).st_dev
    if device not in _LINKABLE:
        probe = _open_unnamed(directory, 0o600)
        works = False
        if probe is not None:
            name = _temp_name(directory / "probe")
            try:
                works = _link(probe, name)
                if works:
                    os.unlink(name)
            finally:
                os.close(probe)
        _LINKABLE[device] = works
    return _open_unnamed(directory, mode) if _LINKABLE[device] else None


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int = 0o600) -> Iterator[BinaryIO]:
    """Yield a file in ``path``'s directory; on success fsync it and rename it over ``path``,
    then fsync the directory. On any error the temporary file is removed and ``path`` is
    untouched; a killed writer leaves no file (see the module's note)."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    remove_stale_temporaries(directory)
    temp = _temp_name(target)
    fd = _unnamed(directory, 0o600)
    named = fd is None
    if fd is None:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o600)
    linked = named
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
            if not named:
                if not _link(handle.fileno(), temp):
                    raise OSError(errno.EIO, f"cannot name the file written for {target}")
                linked = True
        os.replace(temp, target)
    except BaseException:
        if linked:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically (mode 0600 unless told: files may be secret)."""
    with atomic_output(path, mode) as out:
        out.write(data)
