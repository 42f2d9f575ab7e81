"""Programs with CO-RE relocations across devices: the binding in the snapshot, resolved again
against the target's BTF by the compatibility plan (re-patched when answers differ, refused
naming type and field when the target has none), and a restore that runs the re-patched
program."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import msgpack
import pytest

from migrate.codec import decode, encode, iter_records
from migrate.compat import Outcome, check_program, plan
from migrate.restore import restore
from migrate.schema import SnapshotFormatError
from migrate.snapshot import MapState, ProgramState, Snapshot
from offload.caps import load_profile
from offload.device import build_device
from offload.loader import load_object
from offload.loader.core import rebind
from offload.loader.device_btf import device_btf
from offload.uapi import XdpAction
from service.frames import tcp, v4_frame

from .samples import FEATURES

CORE = Path(__file__).resolve().parents[2] / "fixtures" / "xdp" / "libbpf" / "xdp_core.o"
FULL, SMARTNIC, LEGACY = (load_profile(n) for n in ("full", "smartnic", "legacy-nic"))
#: the answers slots of xdp_core_queries that ask for helpers
FIB_LOOKUP_EXISTS, LOAD_BYTES_EXISTS = 7, 8


def resolved_for(caps):
    return load_object(CORE, target_btf=device_btf(caps))


def snapshot(programs: tuple[str, ...], caps=FULL) -> Snapshot:
    obj = resolved_for(caps)
    states = tuple(ProgramState(obj.programs[name]) for name in programs)
    used = {ref.map_name for state in states for ref in state.spec.map_refs}
    return Snapshot("dev-a", caps, FEATURES, states,
                    tuple(MapState(obj.maps[m]) for m in obj.maps if m in used))


def test_the_binding_travels_in_the_snapshot():
    snap = snapshot(("xdp_core_queries", "xdp_core_egress"))
    data = encode(snap)
    back = decode(data)
    assert back.programs == snap.programs
    records = [r for r in iter_records(io.BytesIO(data)) if r["kind"] == "program"]
    core = records[0]["core"]
    assert core["target"] == "uapi" and core["digest"] == device_btf(FULL).digest
    assert len(core["relocations"]) == len(snap.programs[0].spec.core.relocations)
    plain = load_object(CORE.parents[1] / "xdp_pass.o")
    without = Snapshot("d", LEGACY, 0, (ProgramState(next(iter(plain.programs.values()))),))
    records = list(iter_records(io.BytesIO(encode(without))))
    assert "core" not in records[1] and records[0]["caps"]["btf"] == "uapi-4.19"
    assert "btf" not in list(iter_records(io.BytesIO(data)))[0]["caps"]  # the default
    assert decode(encode(without)).capabilities == LEGACY


def _with_program_record(data: bytes, change) -> bytes:
    out = []
    for record in iter_records(io.BytesIO(data)):
        if record["kind"] == "program":
            record = change(record)
        out.append(msgpack.packb(record, use_bin_type=True))
    return b"".join(out)


@pytest.mark.parametrize("change, message", [
    (lambda core: dict(core, btf=b"\x00" * 30), "field 'btf' is not valid BTF"),
    (lambda core: dict(core, relocations=[[40, 0, 1, "0:0", 0, 4]]),
     "slot 40 does not start an instruction"),
    (lambda core: dict(core, relocations=[[0, 13, 1, "0:0", 0, 4]]),
     "must be one of CoreReloKind"),
    (lambda core: dict(core, relocations=core["relocations"][:1] * 2),
     "relocates one instruction twice"),
    (lambda core: dict(core, extra=1), "unexpected fields 'extra'"),
])
def test_malformed_bindings_are_refused(change, message):
    data = encode(snapshot(("xdp_core_egress",)))
    bad = _with_program_record(data, lambda r: dict(r, core=change(r["core"])))
    with pytest.raises(SnapshotFormatError, match=message):
        decode(bad)


def test_same_btf_is_compatible_and_other_answers_are_re_patched():
    queries = resolved_for(FULL).programs["xdp_core_queries"]
    assert check_program(queries, FULL) == ([], None)
    findings, rewritten = check_program(queries, SMARTNIC)
    assert [(f.outcome, f.code) for f in findings] == [(Outcome.REWRITABLE, "co-re")]
    reason = findings[0].reason
    assert reason.startswith(f"its CO-RE relocations answer differently on smartnic (BTF "
                             f"{device_btf(SMARTNIC)}): enumval_exists of enum "
                             f"bpf_func_id::BPF_FUNC_fib_lookup 1 -> 0 (insn ")
    assert "BPF_FUNC_xdp_load_bytes 1 -> 0" in reason
    # resolving again from the full device's answers gives what loading for smartnic gives
    fresh = resolved_for(SMARTNIC).programs["xdp_core_queries"]
    assert rewritten.instructions == fresh.instructions
    assert rewritten.core.digest == device_btf(SMARTNIC).digest
    assert [r.value for r in rewritten.core.relocations] == \
        [r.value for r in fresh.core.relocations]


def test_a_field_the_target_lacks_refuses_the_program_naming_type_and_field():
    egress = resolved_for(FULL).programs["xdp_core_egress"]
    assert check_program(egress, SMARTNIC) == ([], None)  # same xdp_md: nothing to do
    findings, _ = check_program(egress, LEGACY)
    assert [(f.outcome, f.code) for f in findings] == [
        (Outcome.INCOMPATIBLE, "co-re"), (Outcome.REWRITABLE, "isa")]  # jmp32 could be lowered
    assert findings[0].slot == 0
    assert "cannot all be resolved on legacy-nic: CO-RE relocation at insn 0 (device BTF " \
        "uapi-4.19 " in findings[0].reason
    assert findings[0].reason.endswith("field_byte_offset of struct xdp_md.egress_ifindex "
                                       "cannot be resolved: struct xdp_md has no field "
                                       "'egress_ifindex'.")
    the_plan = plan(snapshot(("xdp_core_egress", "xdp_core_queries")), LEGACY)
    assert the_plan.report("program", "xdp_core_egress").outcome == Outcome.INCOMPATIBLE
    assert the_plan.report("program", "xdp_core_queries").outcome == Outcome.REWRITABLE


def test_re_resolution_then_lowering_keeps_the_relocations_on_their_instructions():
    flavors = resolved_for(FULL).programs["xdp_core_flavors"]
    findings, rewritten = check_program(flavors, LEGACY)
    assert [(f.outcome, f.code) for f in findings] == [(Outcome.REWRITABLE, "isa")]
    assert rewritten.core is not None and rewritten.instructions != flavors.instructions
    # the lowered program's binding still describes its instructions exactly
    insns, _, changes = rebind(rewritten.instructions, rewritten.core, device_btf(LEGACY))
    assert insns == rewritten.instructions and not changes


def test_a_restore_runs_the_program_as_resolved_for_the_target():
    snap = snapshot(("xdp_core_queries",))
    pair = build_device("target", SMARTNIC, seed=1)
    result = restore(snap, pair.driver)
    assert result.plan.report("program", "xdp_core_queries").outcome == Outcome.REWRITABLE
    pair.driver.xdp_attach(result.programs["xdp_core_queries"])
    assert pair.device.receive(v4_frame("10.0.0.1", "10.0.0.2", tcp(1, 2))) == XdpAction.PASS
    answers = result.maps["answers"]

    def cell(i: int) -> int:
        return struct.unpack("<Q", pair.driver.map_lookup_elem(answers, struct.pack("<I", i)))[0]

    assert (cell(FIB_LOOKUP_EXISTS), cell(LOAD_BYTES_EXISTS)) == (0, 0)
