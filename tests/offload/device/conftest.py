from __future__ import annotations

import pytest

from offload.backends.kernel import KernelBackend, kernel_available
from offload.caps import Capabilities
from offload.device import build_device
from offload.helpers.prototypes import HelperId
from offload.uapi import MapType

FULL = Capabilities("test-full", helpers=frozenset(int(h) for h in HelperId),
                    map_types=frozenset(MapType))


@pytest.fixture(params=["fast", "reference", "kernel"])
def pair(request):
    """A device with its driver on each backend: the built-in engines and the host kernel."""
    if request.param == "kernel":
        available, reason = kernel_available()
        if not available:
            pytest.skip(f"host-kernel backend unavailable: {reason}")
        backend = KernelBackend(FULL)
        yield build_device("dut", FULL, backend=backend)
        backend.close()
        return
    yield build_device("dut", FULL, engine=request.param, seed=1)
