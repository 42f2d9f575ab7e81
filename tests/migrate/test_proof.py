"""Restore with proof: translation validation of rewritten programs over frames."""

from __future__ import annotations

import socket
import struct
from dataclasses import replace

import pytest

from migrate import compat
from migrate.errors import SnapshotError
from migrate.proof import (
    Proof,
    ProofError,
    _origin_map,
    _parting,
    generated_frames,
    prove,
)
from offload.caps.profiles import load_profile
from offload.device.pair import build_device
from offload.isa import AluOp, InsnClass, JmpOp
from offload.lowering import lower_program
from service.frames import frame

from .faults import wrong_lowering
from .samples import FIXTURES, fixture_snapshot

TCP, UDP = 6, 17
BLOCKED = "10.0.0.66"


def _blocklisted(snapshot):
    """The firewall's IPv4 blocklist holding BLOCKED (one hit so far)."""
    key = socket.inet_aton(BLOCKED)
    state = snapshot.map("blocked_v4")
    entries = type(state.entries).from_pairs(4, 8, [(key, struct.pack("<Q", 1))])
    maps = tuple(replace(m, entries=entries) if m.name == "blocked_v4" else m
                 for m in snapshot.maps)
    return replace(snapshot, maps=maps)


@pytest.fixture(scope="module")
def snapshot():
    return _blocklisted(fixture_snapshot("xdp_firewall_v4", cpus=1))


def frames() -> list[bytes]:
    return [frame("10.0.0.1", "10.0.0.2", TCP), frame(BLOCKED, "10.0.0.2", UDP, dport=53),
            frame("fd00::1", "fd00::2", TCP), frame(BLOCKED, "10.0.0.9", TCP, dport=443)]


def factories(snapshot, profile: str, engine: str = "fast"):
    caps = load_profile(profile)
    return dict(
        source=lambda: build_device("src", snapshot.capabilities, engine="reference",
                                    ncpus=snapshot.cpus),
        target=lambda: build_device("dst", caps, engine=engine, ncpus=snapshot.cpus),
        reference=lambda: build_device("ref", caps, engine="reference", ncpus=snapshot.cpus))


def test_a_lowered_program_is_proven_on_samples_and_generated_frames(snapshot):
    proof = prove(snapshot, frames(), **factories(snapshot, "smartnic"))
    assert isinstance(proof, Proof) and proof.ok, proof.difference
    assert proof.rewritten and proof.frames == 4 and proof.generated > 100
    assert 0 < proof.branches_covered <= proof.branches_total
    assert proof.summary().startswith(f"xdp_firewall: {4 + proof.generated} frames (")
    assert proof.as_dict()["ok"] is True


def test_generated_frames_cover_more_branches_than_the_samples(snapshot):
    only = prove(snapshot, frames()[:1], generate=False, **factories(snapshot, "smartnic"))
    more = prove(snapshot, frames()[:1], **factories(snapshot, "smartnic"))
    assert only.generated == 0 and more.generated > 0
    assert more.branches_covered > only.branches_covered


def test_an_unchanged_program_runs_the_samples_only(snapshot):
    proof = prove(snapshot, frames(), **factories(snapshot, "full"))
    assert proof.ok and not proof.rewritten and proof.generated == 0


def test_a_wrong_rewrite_is_caught(snapshot, monkeypatch):
    monkeypatch.setattr(compat, "lower_program", wrong_lowering)
    proof = prove(snapshot, frames(), **factories(snapshot, "smartnic"))
    assert not proof.ok
    diff = proof.difference
    assert diff.frame == 1 and not diff.generated
    assert diff.what == "verdict XDP_DROP on the source, XDP_PASS on the target"
    # both runs take the same path, only a value differs: no instruction to name
    assert diff.insn is None
    assert "frame 1: verdict XDP_DROP" in diff.describe()


def test_a_path_difference_names_the_source_instruction(snapshot, monkeypatch):
    """A fault that flips the lowered program's first ``jeq32`` (the EtherType test, so the
    result is still safe and the target's verifier takes it): the proof names the source
    instruction it came from."""
    original = snapshot.program("xdp_firewall").spec
    lowered = lower_program(original, 3)
    origin = _origin_map(original.instructions, lowered.instructions, 3)
    slot, flipped = 0, None
    for insn in lowered.instructions:
        if flipped is None and insn.cls == InsnClass.JMP32 and insn.jmp_op == JmpOp.JEQ:
            flipped = slot
        slot += insn.width
    assert flipped is not None

    def fault(spec, isa):
        good = lower_program(spec, isa)
        insns, at = [], 0
        for insn in good.instructions:
            insns.append(replace(insn, opcode=insn.opcode ^ (JmpOp.JEQ ^ JmpOp.JNE))
                         if at == flipped else insn)
            at += insn.width
        return replace(good, instructions=tuple(insns))

    monkeypatch.setattr(compat, "lower_program", fault)
    proof = prove(snapshot, frames(), **factories(snapshot, "smartnic"))
    assert not proof.ok
    # frame 0 takes the other path but passes, as on the source: only effects count
    assert proof.difference.frame == 1
    assert proof.difference.what == ("map 'blocked_v4' key 0a000042: 0200000000000000 on the "
                                      "source, 0100000000000000 on the target")
    assert proof.difference.insn == origin[flipped]
    assert f"the paths part after insn {origin[flipped]}" in proof.difference.describe()


def test_slots_map_back_to_their_source_instruction(snapshot):
    original = snapshot.program("xdp_firewall").spec
    same = _origin_map(original.instructions, original.instructions, 4)
    assert same == list(range(len(same)))
    assert _parting([0, 1, 2, 5, 6], [0, 1, 2, 5, 6], same) is None
    assert _parting([0, 1, 2, 5, 6], [0, 1, 2, 3, 4], same) == 2
    lowered = lower_program(original, 2)
    origin = _origin_map(original.instructions, lowered.instructions, 2)
    assert origin is not None and len(origin) == sum(i.width for i in lowered.instructions)
    assert origin == sorted(origin)
    assert origin[-1] == sum(i.width for i in original.instructions) - 1
    # a rewrite of another shape maps nothing
    assert _origin_map(original.instructions, lowered.instructions[:-1], 2) is None


def test_a_difference_in_a_map_is_named(snapshot, monkeypatch):
    """A fault in the map path: the hit counter is bumped by 2 instead of 1."""
    def double_add(spec, isa):
        lowered = lower_program(spec, isa)
        insns = list(lowered.instructions)
        for i, insn in enumerate(insns):
            if insn.cls == InsnClass.ALU64 and insn.alu_op == AluOp.MOV and insn.imm == 1 \
                    and insn.dst != 0:
                insns[i] = replace(insn, imm=2)
        return replace(lowered, instructions=tuple(insns))

    monkeypatch.setattr(compat, "lower_program", double_add)
    proof = prove(snapshot, frames(), **factories(snapshot, "smartnic"))
    assert not proof.ok
    assert proof.difference.what.startswith("map ")


def test_no_frames_is_a_clear_refusal(snapshot):
    with pytest.raises(ProofError, match="no frames to prove with"):
        prove(snapshot, [], **factories(snapshot, "smartnic"))


def test_a_snapshot_without_an_attached_program_cannot_be_proven(snapshot):
    detached = replace(snapshot, programs=tuple(replace(p, attach=None)
                                                for p in snapshot.programs))
    with pytest.raises(ProofError, match="no attached program"):
        prove(detached, frames(), **factories(snapshot, "smartnic"))


def test_generated_frames_are_cuts_then_header_changes():
    sample = bytes(range(40))
    made = generated_frames([sample], budget=1000)
    assert made[: 40 - 14] == [sample[:n] for n in range(14, 40)]
    assert sample not in made and len(set(made)) == len(made)
    assert len(generated_frames([sample], budget=7)) == 7
    two = generated_frames([sample, bytes(20)], budget=10)
    assert bytes(20)[:14] in two and sample[:14] in two


def _restorable(name: str):
    """The fixture's snapshot with a few entries per map, or with empty maps where the
    entries a generic filler writes cannot be real (interfaces, inner maps)."""
    frames_ = tuple(frames())
    for fill in (3, 0):
        try:
            snap = replace(fixture_snapshot(name, cpus=1, fill=fill), samples=frames_)
            prove(snap, frames_, **factories(snap, "full"))
            return snap
        except (ProofError, SnapshotError):
            continue
    raise AssertionError(f"no restorable snapshot of {name}")


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.o")))
def test_every_fixture_is_proven_on_every_profile_that_takes_it(name):
    """Each fixture restored onto each profile whose plan takes it (lowered where needed)
    gives the source's verdicts, outputs and map changes on the sample and, when rewritten,
    on the frames built from it."""
    snap = _restorable(name)
    proven = 0
    for profile in ("full", "smartnic", "legacy-nic"):
        try:
            proof = prove(snap, snap.samples, budget=64, **factories(snap, profile))
        except ProofError as err:
            assert "cannot take this snapshot" in str(err), err  # the plan refused: fine
            continue
        assert proof.ok, proof.difference
        proven += 1
    assert proven >= 1
