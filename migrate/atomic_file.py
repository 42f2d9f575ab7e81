"""Streaming atomic writes: the same guarantee as :func:`migrate.atomic_write.write_atomic`
(readers see the old file or the new one, never a torn mix) for content written piece by piece,
so a snapshot of millions of entries goes to disk without being built in memory first.
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
    """Yield a file in ``path``'s directory; on success fsync it and rename it over ``path``
    (POSIX rename(2) is atomic within a filesystem), then fsync the directory. On any error the
    temporary file is removed and ``path`` is untouched."""
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
