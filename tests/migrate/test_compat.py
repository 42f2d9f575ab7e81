from __future__ import annotations

import pytest
from rich.console import Console

from migrate import compat
from migrate.compat import Outcome, check_features, check_map, check_program, plan
from migrate.plan_view import plan_table
from offload.caps.profiles import load_profile
from offload.isa import assemble
from offload.isa.versions import required_version
from offload.maps.spec import MapSpec
from offload.program import ProgramSpec
from offload.uapi import MapType, ProgType
from offload.virtio.features import Feature, bit

from .samples import FEATURES, fixture_snapshot

FULL, LEGACY, SMARTNIC = (load_profile(n) for n in ("full", "legacy-nic", "smartnic"))


def prog(text: str, name: str = "p") -> ProgramSpec:
    return ProgramSpec(name, ProgType.XDP, tuple(assemble(text)), license="GPL")


@pytest.fixture
def no_lowering(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lowering pass that refuses everything, so the plain ISA finding shows."""
    def refuse(spec, isa):
        raise compat.LoweringError("refused for this test", insn_index=None, target_version=isa)

    monkeypatch.setattr(compat, "lower_program", refuse)


def codes(findings) -> list[str]:
    return [f.code for f in findings]


def test_simple_program_fits_everywhere() -> None:
    spec = prog("mov %r0, 2\nexit")
    for caps in (FULL, LEGACY, SMARTNIC):
        assert check_program(spec, caps) == ([], None)


def test_missing_helper_is_named() -> None:
    spec = prog("mov %r2, 0\nmov %r3, 0\ncall 12\nmov %r0, 2\nexit")
    findings, _ = check_program(spec, SMARTNIC)
    assert codes(findings) == ["helper"]
    assert findings[0].reason.startswith("helper bpf_tail_call#12 is not offered by smartnic")
    assert findings[0].slot == 2
    assert check_program(spec, FULL) == ([], None)
    findings, _ = check_program(prog("call 999\nexit"), FULL)
    assert "helper #999" in findings[0].reason


def test_isa_gap_lists_instruction_kinds(no_lowering: None) -> None:
    spec = prog("mov %r0, 2\nmov %r1, 1\njlt32 %r1, 3, +0\nstdw [%r10-8], 0\n"
                "lock fetch add [%r10-8], %r1\nsdiv %r0, 1\nexit")
    findings, rewritten = check_program(spec, LEGACY)
    assert rewritten is None
    (isa,) = findings
    assert isa.outcome == Outcome.INCOMPATIBLE and isa.code == "isa"
    assert "needs ISA v4, legacy-nic offers v2" in isa.reason
    for kind in ("jmp32 (v3) at insn 2", "atomics (v3) at insn 4", "sdiv/smod (v4) at insn 5"):
        assert kind in isa.reason
    assert "lowering to v2 is impossible: refused for this test" in isa.reason
    assert isa.slot == 2
    findings, _ = check_program(spec, SMARTNIC)
    assert "needs ISA v4, smartnic offers v3: sdiv/smod (v4) at insn 5" in findings[0].reason


def test_isa_gap_uses_the_lowering_pass_when_present(monkeypatch) -> None:
    LoweringError = compat.LoweringError
    lowered = prog("mov %r0, 2\nexit")
    monkeypatch.setattr(compat, "lower_program", lambda spec, isa: lowered)
    spec = prog("mov %r0, 2\nmov32 %r1, 1\njlt32 %r1, 3, +0\nexit")
    findings, rewritten = check_program(spec, LEGACY)
    assert [f.outcome for f in findings] == [Outcome.REWRITABLE] and rewritten == lowered

    def refuse(spec, isa):
        raise LoweringError("atomic cmpxchg has no v2 sequence", insn_index=4, target_version=isa)

    monkeypatch.setattr(compat, "lower_program", refuse)
    findings, rewritten = check_program(spec, LEGACY)
    assert findings[0].outcome == Outcome.INCOMPATIBLE and rewritten is None
    assert "lowering to v2 is impossible at insn 4: atomic cmpxchg has no v2 sequence" in findings[0].reason

    monkeypatch.setattr(compat, "lower_program", lambda spec, isa: prog("mov %r0, 2\n" * 5000 + "exit"))
    findings, rewritten = check_program(spec, LEGACY)
    assert "lowered to v2 it has 5001 instructions, over the limit of 4096" in findings[0].reason


def test_real_lowering_of_fixture_programs() -> None:
    """v3/v4 fixtures become REWRITABLE on older targets."""
    snap = fixture_snapshot("xdp_firewall_v4", "xdp_counters")
    smart = plan(snap, SMARTNIC)
    report = smart.report("program", "xdp_firewall")
    assert report.outcome == Outcome.REWRITABLE and report.rewritten is not None
    assert max(required_version(i) for i in report.rewritten.instructions) <= 3
    assert [r.map_name for r in report.rewritten.map_refs] == \
        [r.map_name for r in snap.program("xdp_firewall").spec.map_refs]
    legacy = plan(snap, LEGACY).report("program", "xdp_count_protocols")
    assert legacy.findings[0].code == "isa" and legacy.outcome in (Outcome.REWRITABLE,
                                                                     Outcome.INCOMPATIBLE)


def test_program_size_calls_and_type() -> None:
    big = prog("mov %r0, 2\n" * 4096 + "exit")
    assert "4097 instructions; legacy-nic accepts at most 4096" in check_program(big, LEGACY)[0][0].reason
    calls = prog("call local f\nexit\nf:\nmov %r0, 2\nexit")
    assert codes(check_program(calls, LEGACY)[0]) == ["calls"]
    assert check_program(calls, SMARTNIC)[0] == []
    tc = ProgramSpec("t", ProgType.SCHED_CLS, tuple(assemble("mov %r0, 0\nexit")))
    assert "program type SCHED_CLS is not offered by full (it offers XDP)" in \
        check_program(tc, FULL)[0][0].reason
    assert codes(check_program(prog("mov %r0, 0\nexit"), FULL, stack_depth=(600,))[0]) == ["stack"]


def test_map_findings() -> None:
    lpm = MapSpec("prefixes", MapType.LPM_TRIE, 8, 4, 4096)
    (f,) = check_map(lpm, 10, LEGACY)
    assert f.code == "map-type" and "map type LPM_TRIE is not offered by legacy-nic " \
                                      "(it offers HASH, ARRAY)" in f.reason
    assert check_map(lpm, 10, SMARTNIC) == []
    big = MapSpec("flows", MapType.HASH, 8, 16, 1 << 20)
    assert codes(check_map(big, 100_000, SMARTNIC)) == ["max-entries", "entries"]
    (f,) = check_map(big, 100, SMARTNIC)
    assert "max_entries 1048576 is over the limit of 65536 on smartnic (its current contents " \
           "would fit)" in f.reason
    wide = MapSpec("wide", MapType.HASH, 128, 128, 16)
    assert codes(check_map(wide, 1, LEGACY)) == ["key-size", "value-size"]
    outer = MapSpec("outer", MapType.ARRAY_OF_MAPS, 4, 4, 4,
                    inner=MapSpec("inner", MapType.LRU_HASH, 4, 4, 8))
    assert check_map(outer, 1, FULL) == []
    assert [f.reason for f in check_map(outer, 1, LEGACY)] == [
        "map type ARRAY_OF_MAPS is not offered by legacy-nic (it offers HASH, ARRAY).",
        "its inner map template 'inner': map type LRU_HASH is not offered by legacy-nic (it "
        "offers HASH, ARRAY)."]
    assert check_map(MapSpec("a", MapType.PROG_ARRAY, 4, 4, 4), 1, SMARTNIC)[0].code == "map-type"


def test_missing_feature_bits_by_name() -> None:
    findings = check_features(FEATURES, LEGACY.features)
    assert [f.reason for f in findings] == [
        "the source negotiated VIRTIO_F_EVENT_IDX (bit 29), which the target does not offer."]
    assert check_features(FEATURES, FULL.features) == []
    assert "feature bit 40" in check_features(1 << 40, 0)[0].reason
    assert check_features(bit(Feature.VIRTIO_F_VERSION_1), LEGACY.features) == []


def test_plan_of_fixture_snapshots_per_profile(no_lowering: None) -> None:
    snap = fixture_snapshot("xdp_counters", "xdp_tailcall", "xdp_lpm", "xdp_pass")
    assert plan(snap, FULL).outcome == Outcome.COMPATIBLE

    smart = plan(snap, SMARTNIC)
    assert not smart.ok
    # Tail calls: the PROG_ARRAY is refused and every program it links fails with it.
    assert smart.report("map", "jump_table").findings[0].code == "map-type"
    dispatch = smart.report("program", "xdp_dispatch")
    assert codes(dispatch.findings) == ["helper"]
    assert any("bpf_tail_call#12" in f.reason for f in dispatch.findings)
    handler = smart.report("program", "xdp_handle_tcp")
    assert codes(handler.findings) == ["group"] and "map 'jump_table'" in handler.findings[0].reason
    # Independent objects are unaffected.
    assert smart.report("program", "xdp_prefix_filter").outcome == Outcome.COMPATIBLE
    assert smart.report("map", "proto_stats").outcome == Outcome.COMPATIBLE

    legacy = plan(snap, LEGACY)
    assert legacy.report("device", "dev-a").findings[0].code == "feature"
    assert legacy.report("map", "prefixes_v4").findings[0].code == "map-type"
    assert codes(legacy.report("program", "xdp_count_protocols").findings)[0] == "isa"
    assert legacy.report("program", "xdp_pass_all").outcome == Outcome.COMPATIBLE


def test_fallback_only_when_allowed(no_lowering: None) -> None:
    snap = fixture_snapshot("xdp_tailcall", "xdp_pass")
    strict = plan(snap, SMARTNIC)
    assert strict.report("program", "xdp_dispatch").outcome == Outcome.INCOMPATIBLE
    relaxed = plan(snap, SMARTNIC, allow_fallback=True)
    assert relaxed.ok and relaxed.outcome == Outcome.FALLBACK
    for name in ("xdp_dispatch", "xdp_handle_tcp"):
        report = relaxed.report("program", name)
        assert report.outcome == Outcome.FALLBACK and report.findings[-1].code == "fallback"
    assert relaxed.report("program", "xdp_pass_all").outcome == Outcome.COMPATIBLE
    # A missing feature bit is never a fallback: the device itself cannot take the state.
    assert plan(snap, LEGACY, allow_fallback=True).report("device", "dev-a").outcome == \
        Outcome.INCOMPATIBLE


def test_plan_table_renders(no_lowering: None) -> None:
    console = Console(record=True, width=160)
    console.print(plan_table(plan(fixture_snapshot("xdp_tailcall"), SMARTNIC)))
    text = console.export_text()
    assert "Compatibility with smartnic: incompatible" in text
    assert "program xdp_dispatch" in text and "bpf_tail_call#12" in text


def test_plan_table_shows_the_proof_on_the_program_row() -> None:
    snapshot = fixture_snapshot("xdp_firewall_v4")
    name = next(p.name for p in snapshot.programs if p.attach)
    proof = {"program": name, "rewritten": True, "frames": 6, "generated": 40,
             "branches_covered": 16, "branches_total": 30, "ok": True}
    console = Console(record=True, width=240)
    console.print(plan_table(plan(snapshot, SMARTNIC), proof))
    text = console.export_text()
    row = next(line for line in text.splitlines() if f"program {name}" in line)
    assert "identical: 46 frames (40 generated), 16/30 branches covered" in row
    different = {**proof, "ok": False,
                 "difference": {"frame": 1, "generated": False, "what": "verdict XDP_DROP on "
                                "the source, XDP_PASS on the target", "insn": 7}}
    console = Console(record=True, width=240)
    console.print(plan_table(plan(snapshot, SMARTNIC), different))
    assert "DIFFERENT at frame 1: verdict XDP_DROP on the source" in console.export_text()
    console = Console(record=True, width=240)
    console.print(plan_table(plan(snapshot, SMARTNIC)))
    assert "identical" not in console.export_text()  # no proof, no column
