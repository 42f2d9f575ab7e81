"""The XDP fixture objects (clang -mcpu=v2..v4 builds), lowered to every older ISA level,
are accepted by the verifier of a device at that level: the rewrites keep programs
verifiable, not only equivalent."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from offload.caps import Capabilities
from offload.helpers.prototypes import PROTOTYPES
from offload.isa.versions import program_version
from offload.loader import load_object
from offload.lowering import lower_program_with_report
from offload.program import resolve_map_references
from offload.uapi import MapType
from offload.verifier import verify

OBJECTS = sorted((Path(__file__).resolve().parents[3] / "fixtures" / "xdp").glob("*.o"))
DEVICE = Capabilities("lowering test device", helpers=frozenset(PROTOTYPES),
                      map_types=frozenset(MapType))


def test_there_are_newer_programs_to_lower():
    versions = [program_version(prog.instructions) for path in OBJECTS
                for prog in load_object(path).programs.values()]
    assert versions.count(4) >= 3 and versions.count(3) >= 10


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("target", [1, 2, 3])
def test_lowered_fixture_programs_verify(path, target):
    obj = load_object(path)
    handles = {name: number for number, name in enumerate(obj.maps, start=1)}
    specs = {handles[name]: spec for name, spec in obj.maps.items()}
    device = replace(DEVICE, isa_version=target)
    for name, prog in obj.programs.items():
        lowered, report = lower_program_with_report(prog, target)
        assert program_version(lowered.instructions) <= target
        if program_version(prog.instructions) > target:
            assert report.changed
        insns = resolve_map_references(lowered.instructions, lowered.map_refs, handles,
                                       program=name)
        verify(insns, prog_type=lowered.type, caps=device, maps=specs)
