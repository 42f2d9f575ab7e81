"""The backends under test: each kind made fresh, the kernel's skipped where it cannot run.

Putting an object on a backend is offload/backends/install.py's (shared with the benchmark).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from offload.backends.install import (  # noqa: F401 - the tests' names for them
    INNER_BASE,
    KINDS,
    MAP_BASE,
    PROG_BASE,
    Installed,
    host_cpus,
    install,
    map_contents,
    new_backend,
)
from offload.backends.kernel import KernelBackend, kernel_available

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures"
XDP_OBJECTS = sorted((FIXTURES / "xdp").glob("*.o"))
BUILTIN_KINDS = ("builtin-fast", "builtin-reference")


def require_kernel() -> None:
    usable, reason = kernel_available()
    if not usable:
        pytest.skip(f"host-kernel backend unavailable: {reason}")


def make_backend(kind: str) -> Any:
    """A fresh backend of ``kind`` (skipping the test when the kernel cannot be used)."""
    if kind == "kernel":
        require_kernel()
    return new_backend(kind)


def close(backend: Any) -> None:
    if isinstance(backend, KernelBackend):
        backend.close()
