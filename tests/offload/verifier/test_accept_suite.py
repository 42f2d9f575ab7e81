"""Safe but tricky programs of fixtures/verifier/accept are accepted, and the XDP fixtures too."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.loader import load_object
from offload.program import resolve_map_references as patch_map_references
from offload.verifier import verify

from .suite import FULL, cases

ACCEPT = cases("accept")
OBJECTS = sorted((Path(__file__).resolve().parents[3] / "fixtures" / "xdp").glob("*.o"))


@pytest.mark.parametrize("case", ACCEPT, ids=lambda c: c.name)
def test_accepted(case):
    stats = verify(case.insns, caps=case.caps, maps=case.maps)
    assert 0 < stats.insns_processed <= case.caps.limits.max_processed_insns
    assert stats.peak_states >= 0 and stats.total_states >= 0


def test_there_are_fixture_objects():
    assert len(OBJECTS) >= 10


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.stem)
def test_every_xdp_fixture_is_accepted(path):
    obj = load_object(path)
    handles = {name: i + 1 for i, name in enumerate(obj.maps)}
    specs = {handles[name]: spec for name, spec in obj.maps.items()}
    assert obj.programs
    for name, prog in obj.programs.items():
        insns = patch_map_references(prog.instructions, prog.map_refs, handles, program=name)
        stats = verify(insns, prog_type=prog.type, caps=FULL, maps=specs,
                       expected_attach_type=prog.expected_attach_type)
        assert stats.insns_processed < 100_000, name
        assert all(0 <= depth <= 512 for depth in stats.stack_depth)
