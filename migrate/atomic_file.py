"""Writing files so that readers see the old content or the new, never a torn mix.

The data goes to a temporary file in the same directory, is flushed and fsynced, then renamed
over the target (POSIX rename(2) is atomic within a filesystem); the directory is fsynced so
the rename itself survives a crash. :func:`atomic_output` streams (a snapshot of millions of
entries goes to disk without being built in memory first); :func:`write_atomic` writes bytes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int = 0o600) -> Iterator[BinaryIO]:
    """Yield a file in ``path``'s directory; on success fsync it and rename it over ``path``,
    then fsync the directory. On any error the temporary file is removed and ``path`` is
    untouched."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
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
