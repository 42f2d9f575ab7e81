"""The Linux verifier accepts every loaded fixture program, maps created from our specs.

This is the end-to-end check of the loader: the kernel must agree that the linked
instructions, call offsets, map references and global data offsets make a valid program.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.backends.kernel import KernelMap, kernel_available, load_program_spec
from offload.loader import load_object

from .fixtures import OBJECT_IDS, OBJECTS

AVAILABLE, REASON = kernel_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"the host kernel's bpf() is not "
                                                      f"usable: {REASON}")


@pytest.mark.parametrize("path", OBJECTS, ids=OBJECT_IDS)
def test_kernel_verifier_accepts_loaded_programs(path: Path) -> None:
    obj = load_object(path)
    maps: dict[str, KernelMap] = {}
    try:
        for name, spec in obj.maps.items():
            maps[name] = KernelMap.create(spec)
        for prog in obj.programs.values():
            load_program_spec(prog, maps).close()
    finally:
        for live in maps.values():
            live.close()
