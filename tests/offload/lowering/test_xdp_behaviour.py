"""Real XDP programs, lowered to ISA v1, on a device: the same action, frame, metadata and
map contents as the original programs for every crafted frame (built-in backend, reference
engine; the frames and map contents are the backend suite's fixture scenarios). Where the
host allows bpf(), the Linux verifier accepts the lowered programs too."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from offload.loader import load_object
from offload.loader.object import ObjectSpec
from offload.lowering import lower_program
from service.fixture_traffic import (
    FRAMES,
    MULTI_BUFFER,
    RANDOM_METADATA,
    deterministic,
    populate,
)
from tests.offload.backends.backends import XDP_OBJECTS, close, install, make_backend


def _run(spec: ObjectSpec, kind: str = "builtin-reference",
         frames: dict[str, bytes] = FRAMES) -> dict[str, Any]:
    backend = make_backend(kind)
    try:
        obj = install(backend, spec)
        populate(obj)
        seen: dict[str, Any] = {}
        for program in spec.programs:
            for name, frame in frames.items():
                out = obj.run(program, frame)
                meta = len(out.meta) if program in RANDOM_METADATA else out.meta
                seen[f"{program} on {name}"] = (out.retval, out.data, meta, out.error)
        for name, handle in obj.maps.items():
            seen[f"map {name}"] = sorted((k, deterministic(name, k, v))
                                         for k, v in backend.map(handle).items())
        return seen
    finally:
        close(backend)


@pytest.mark.parametrize("path", XDP_OBJECTS, ids=lambda p: p.stem)
def test_lowered_programs_behave_like_the_originals(path):
    original = load_object(path)
    lowered = replace(original, programs={name: lower_program(prog, 1)
                                          for name, prog in original.programs.items()})
    before, after = _run(original), _run(lowered)
    assert before.keys() == after.keys()
    for item in before:
        assert after[item] == before[item], f"the lowered object differs on {item}"


@pytest.mark.parametrize("path", XDP_OBJECTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("target", [1, 2])
def test_the_linux_verifier_accepts_lowered_programs(path, target):
    """Loaded into the host kernel (skipped where bpf() is unavailable) and run alike."""
    original = load_object(path)
    lowered = replace(original, programs={name: lower_program(prog, target)
                                          for name, prog in original.programs.items()})
    # Beyond one page the kernel splits frames into fragments: linear frames only.
    linear = {name: frame for name, frame in FRAMES.items() if name not in MULTI_BUFFER}
    assert _run(lowered, "kernel", linear) == _run(lowered, frames=linear)
