"""Skip tests that need the host kernel's bpf() where it is unavailable, saying why."""

from __future__ import annotations

import pytest

from offload.backends.kernel import kernel_available


def require_kernel() -> None:
    """pytest.skip with the availability check's reason unless bpf() works here."""
    usable, reason = kernel_available()
    if not usable:
        pytest.skip(f"host-kernel backend unavailable: {reason}")
