"""The verifier on cpumaps, xskmaps, perf event arrays and ring buffers: the fixture programs
are accepted as the kernel accepts them, lookups are refused where the kernel refuses them,
an xskmap socket is read-only, and ring buffer reservations are refused with their reason.
The host kernel judges the same programs where it can be used."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from offload.backends.kernel import KernelMap, kernel_available, load_program_spec, possible_cpus
from offload.caps.profiles import load_profile
from offload.isa import assemble
from offload.loader import load_object
from offload.maps.spec import MapSpec
from offload.program import resolve_map_references
from offload.uapi import MapType
from offload.verifier import VerifierError, verify

from .kernel_load import kernel_verdict
from .suite import FULL, Case

LIBBPF = Path(__file__).resolve().parents[3] / "fixtures" / "xdp" / "libbpf"
OBJECTS = ("xdp_cpu_redirect", "xdp_xsk_redirect", "xdp_perf_sample", "xdp_ringbuf_log")
#: fixture programs the device refuses, with why (none: reservations are reference-tracked)
REFUSED: dict[str, str] = {}
KERNEL, WHY = kernel_available()

MAPS = {1: MapSpec("cpus", MapType.CPUMAP, 4, 8, 4), 2: MapSpec("xsks", MapType.XSKMAP, 4, 4, 4),
        3: MapSpec("events", MapType.PERF_EVENT_ARRAY, 4, 4, 2),
        4: MapSpec("ring", MapType.RINGBUF, 0, 0, 4096)}
LOOKUP = "stw [%r10-4], 0\nlddw %r1, map_fd({h})\nmov %r2, %r10\nadd %r2, -4\ncall 1\n"
#: (what, program, the device's reason or "" for accepted, the kernel refuses too)
PROGRAMS = [
    ("cpumap lookup", LOOKUP.format(h=1) + "mov %r0, 2\nexit",
     "cannot pass map_type 16 into func bpf_map_lookup_elem#1"),
    ("perf lookup", LOOKUP.format(h=3) + "mov %r0, 2\nexit",
     "cannot pass map_type 4 into func bpf_map_lookup_elem#1"),
    ("ringbuf lookup", "lddw %r1, map_fd(4)\nmov %r2, %r10\ncall 1\nmov %r0, 2\nexit",
     "cannot pass map_type 27 into func bpf_map_lookup_elem#1"),
    ("xsk socket read", LOOKUP.format(h=2) + "jeq %r0, 0, +1\nldxw %r0, [%r0+0]\nmov %r0, 2\n"
     "exit", ""),
    ("xsk socket unchecked", LOOKUP.format(h=2) + "ldxw %r0, [%r0+0]\nmov %r0, 2\nexit",
     "invalid mem access 'map_value_or_null'"),
    ("xsk socket write", LOOKUP.format(h=2) + "jeq %r0, 0, +1\nstw [%r0+0], 1\nmov %r0, 2\n"
     "exit", "write into map"),
    ("xsk update", "stw [%r10-4], 0\nstw [%r10-8], 0\nlddw %r1, map_fd(2)\nmov %r2, %r10\n"
     "add %r2, -4\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 0\ncall 2\nmov %r0, 2\nexit",
     "cannot pass map_type 17 into func bpf_map_update_elem#2"),
    ("ringbuf query on a cpumap", "lddw %r1, map_fd(1)\nmov %r2, 0\ncall 134\nmov %r0, 2\nexit",
     "cannot pass map_type 16 into func bpf_ringbuf_query#134"),
    ("perf output to a ringbuf", "stdw [%r10-8], 0\nmov %r6, %r1\nlddw %r2, map_fd(4)\n"
     "mov %r3, 0\nmov %r4, %r10\nadd %r4, -8\nmov %r5, 8\ncall 25\nmov %r0, 2\nexit",
     "cannot pass map_type 27 into func bpf_perf_event_output#25"),
    ("redirect through a perf array", "lddw %r1, map_fd(3)\nmov %r2, 0\nmov %r3, 0\ncall 51\n"
     "exit", "cannot pass map_type 4 into func bpf_redirect_map#51"),
    ("ringbuf reserve never submitted", "lddw %r1, map_fd(4)\nmov %r2, 8\nmov %r3, 0\n"
     "call 131\nmov %r0, 2\nexit", "Unreleased reference id=2 alloc_insn=4"),
    ("ringbuf reserve and submit", "lddw %r1, map_fd(4)\nmov %r2, 8\nmov %r3, 0\ncall 131\n"
     "jeq %r0, 0, +3\nmov %r1, %r0\nmov %r2, 0\ncall 132\nmov %r0, 2\nexit", ""),
    ("ringbuf reserve on a perf array", "lddw %r1, map_fd(3)\nmov %r2, 8\nmov %r3, 0\n"
     "call 131\nmov %r0, 2\nexit", "cannot pass map_type 4 into func bpf_ringbuf_reserve#131"),
]


def _programs():
    for name in OBJECTS:
        obj = load_object(LIBBPF / f"{name}.o")
        for prog in list(obj.programs.values()):
            yield pytest.param(obj, prog, id=f"{name}:{prog.name}")


@pytest.mark.parametrize(("obj", "prog"), list(_programs()))
def test_fixture_programs(obj, prog):
    handles = {name: handle for handle, name in enumerate(obj.maps, start=1)}
    maps = {handles[name]: spec for name, spec in obj.maps.items()}
    insns = resolve_map_references(prog.instructions, prog.map_refs, handles)
    expected = REFUSED.get(prog.name)
    if expected is None:
        verify(insns, caps=load_profile("full"), maps=maps)
        return
    with pytest.raises(VerifierError) as info:
        verify(insns, caps=load_profile("full"), maps=maps)
    assert expected in info.value.reason


@pytest.mark.parametrize(("what", "text", "reason"), PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_map_rules(what, text, reason):
    if not reason:
        verify(assemble(text), caps=FULL, maps=MAPS)
        return
    with pytest.raises(VerifierError) as info:
        verify(assemble(text), caps=FULL, maps=MAPS)
    assert reason in info.value.reason


@pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
def test_the_kernel_agrees():
    """The kernel accepts what the device accepts and refuses what it refuses."""
    differ = []
    for what, text, reason in PROGRAMS:
        accepted, why = kernel_verdict(Case(what[:15], Path(what), tuple(assemble(text)), "",
                                            MAPS, FULL))
        if accepted != (not reason):
            differ.append(f"{what}: kernel {'accepts' if accepted else 'refuses: ' + why}")
    assert not differ, differ


@pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
@pytest.mark.parametrize("name", OBJECTS)
def test_the_kernel_accepts_every_fixture_program(name):
    """Every program of the fixtures loads into the kernel; perf event arrays sized by the
    CPU count, as libbpf sizes them."""
    obj = load_object(LIBBPF / f"{name}.o")
    maps: dict[str, KernelMap] = {}
    try:
        for map_name, spec in obj.maps.items():
            if spec.type == MapType.PERF_EVENT_ARRAY and spec.max_entries == 0:
                spec = dataclasses.replace(spec, max_entries=possible_cpus())
            maps[map_name] = KernelMap.create(spec)
        for prog in obj.programs.values():
            load_program_spec(prog, maps).close()
    finally:
        for live in maps.values():
            live.close()


def test_redirects_answer_with_an_xdp_action():
    """R0 after bpf_redirect_map is 0..4: a profile that checks return codes takes the
    common ``return bpf_redirect_map(...)``, and a branch on a value beyond 4 is dead."""
    checked = load_profile("smartnic")
    direct = "lddw %r1, map_fd(2)\nmov %r2, 0\nmov %r3, 2\ncall 51\nexit"
    verify(assemble(direct), caps=checked, maps={2: MAPS[2]})
    dead = ("lddw %r1, map_fd(2)\nmov %r2, 0\nmov %r3, 2\ncall 51\njle %r0, 4, +1\n"
            "ldxw %r0, [%r0+0]\nexit")
    verify(assemble(dead), caps=FULL, maps=MAPS)
    unknown = "call 5\nexit"  # bpf_ktime_get_ns: any number
    with pytest.raises(VerifierError, match="should have been in"):
        verify(assemble(unknown), caps=checked, maps={})
