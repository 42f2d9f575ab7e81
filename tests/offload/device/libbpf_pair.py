"""A device on the ``full`` profile (two CPUs), on each built-in engine, and libbpf fixture
objects loaded and attached on it: shared by the tests that run fixture programs on the
device."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.caps import load_profile
from offload.device import DevicePair, build_device

LIBBPF = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf"


@pytest.fixture(params=["fast", "reference"])
def pair(request) -> DevicePair:
    return build_device("dut", load_profile("full"), engine=request.param, ncpus=2, seed=1)


def load(pair: DevicePair, name: str, program: str) -> dict[str, int]:
    """Load ``program`` of ``LIBBPF/name.o`` and attach it: its maps' and programs' handles."""
    loaded = pair.driver.load_object(LIBBPF / f"{name}.o", programs=[program])
    pair.driver.xdp_attach(loaded.programs[program], replace=pair.device.attached)
    return {**loaded.maps, **loaded.programs}
