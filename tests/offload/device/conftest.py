from __future__ import annotations

import pytest

from offload.caps import Capabilities
from offload.device import build_device
from offload.helpers.prototypes import HelperId
from offload.maps.spec import MapType

FULL = Capabilities("test-full", helpers=frozenset(int(h) for h in HelperId),
                    map_types=frozenset(MapType))


@pytest.fixture(params=["fast", "reference"])
def pair(request):
    return build_device("dut", FULL, engine=request.param, seed=1)
