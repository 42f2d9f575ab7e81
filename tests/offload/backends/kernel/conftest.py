from __future__ import annotations

import pytest

from .skipping import require_kernel


@pytest.fixture
def kernel() -> None:
    """Use as ``pytest.mark.usefixtures("kernel")``: skips unless bpf() works here."""
    require_kernel()
