"""Can a snapshot's objects live on a target device? Per-object findings with precise reasons.

Each check compares what an object needs with what the target's Capabilities offer and says,
in words a user knows, what is missing: the helper by name, the map type, entries over a limit,
the ISA version with the instruction kinds that need it, a virtio feature bit by name, the type
and field a program's CO-RE relocations need and the target's BTF lacks. Outcomes order from
best to worst: COMPATIBLE, REWRITABLE (a rewrite makes it fit - CO-RE relocations resolved
again against the target's BTF, as libbpf would load the program there, or v3/v4 instructions
lowered to the target's ISA; the target's verifier re-checks the result on restore), FALLBACK
(it stays in the guest; only when the user allows it), INCOMPATIBLE. Lowering is
offload.lowering's ``lower_program`` (slots of map references, line and function info
remapped). :func:`plan` applies the checks to a whole snapshot: objects that share maps or
tail calls move together, and the target must offer every feature bit the source negotiated
(virtio 1.2, 2.2: a driver never uses a feature the device did not offer).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from offload.caps.capabilities import Capabilities
from offload.isa.instruction import Instruction
from offload.isa.opcodes import AluOp, InsnClass, JmpOp, Mode
from offload.isa.versions import required_version
from offload.lowering import LoweringError, lower_program
from offload.maps.memory import format_bytes, map_memory
from offload.maps.spec import MapSpec
from offload.program import ProgramSpec
from offload.uapi import MapType

from .plan_model import Finding as Finding
from .plan_model import Outcome as Outcome
from .plan_model import Plan as Plan
from .plan_model import Report as Report
from .snapshot import LINK_MAP_TYPES, Snapshot


def _incompatible(code: str, reason: str, slot: int | None = None) -> Finding:
    return Finding(Outcome.INCOMPATIBLE, code, reason, slot)


def helper_label(helper_id: int) -> str:
    try:
        from offload.helpers.prototypes import PROTOTYPES
    except ImportError:  # pragma: no cover - the helpers package ships with the tree
        PROTOTYPES = {}
    proto = PROTOTYPES.get(helper_id)
    return f"{proto.kernel_name}#{helper_id}" if proto else f"helper #{helper_id}"


# ---------------------------------------------------------------- instruction kinds
def instruction_kind(insn: Instruction) -> str:
    """The name of the ISA extension an instruction belongs to (for version gaps)."""
    cls = insn.cls
    if cls.is_alu:
        if insn.alu_op in (AluOp.DIV, AluOp.MOD) and insn.off == 1:
            return "sdiv/smod"
        if insn.alu_op == AluOp.MOV and insn.off:
            return "movsx"
        if insn.alu_op == AluOp.END and cls == InsnClass.ALU64:
            return "bswap"
    if cls == InsnClass.JMP32:
        return "gotol" if insn.jmp_op == JmpOp.JA else "jmp32"
    if cls == InsnClass.JMP:
        return "jlt/jle/jslt/jsle"
    if cls == InsnClass.LDX and insn.mode == Mode.MEMSX:
        return "ldxs (sign-extending loads)"
    if cls == InsnClass.STX and insn.mode == Mode.ATOMIC:
        return "atomics"
    return "base"


def _isa_gaps(insns: Sequence[Instruction], isa: int) -> dict[str, tuple[int, list[int]]]:
    """kind -> (version needed, slots) for instructions beyond ``isa``."""
    gaps: dict[str, tuple[int, list[int]]] = {}
    slot = 0
    for insn in insns:
        need = required_version(insn)
        if need > isa:
            kind = instruction_kind(insn)
            gaps.setdefault(kind, (need, []))[1].append(slot)
        slot += insn.width
    return gaps


def _lower(spec: ProgramSpec, isa: int) -> tuple[ProgramSpec | None, str]:
    """The program lowered by offload.lowering (relocations remapped), or why not."""
    try:
        return lower_program(spec, isa), ""
    except LoweringError as exc:
        where = f" at insn {exc.insn_index}" if exc.insn_index is not None else ""
        return None, f"lowering to v{isa} is impossible{where}: {exc.reason}"


# ---------------------------------------------------------------- checks
def _core(spec: ProgramSpec, caps: Capabilities) -> tuple[list[Finding], ProgramSpec | None]:
    """The program's CO-RE relocations resolved again against the target's BTF: nothing if
    every answer is the same, the re-patched program if some differ, refused naming the type
    and field the target cannot answer."""
    if spec.core is None:
        return [], None
    from offload.caps.profiles import ProfileError
    from offload.loader.core import CoreError, rebind
    from offload.loader.device_btf import device_btf

    try:
        target = device_btf(caps)
    except ProfileError as err:
        return [_incompatible("co-re", f"the program has CO-RE relocations and {caps.name}'s "
                              f"BTF is unknown here: {err}")], None
    if target.digest == spec.core.digest:
        return [], None
    try:
        insns, binding, changes = rebind(spec.instructions, spec.core, target)
    except CoreError as err:
        return [_incompatible("co-re", f"the program's CO-RE relocations cannot all be "
                              f"resolved on {caps.name}: {err.detail}", err.slot)], None
    if not changes:
        return [], None
    listed = "; ".join(map(str, changes[:4])) + ("; ..." if len(changes) > 4 else "")
    return [Finding(Outcome.REWRITABLE, "co-re", f"its CO-RE relocations answer differently on "
                    f"{caps.name} (BTF {target}): {listed}; re-patched, re-verified on "
                    f"restore.", changes[0].slot)], \
        replace(spec, instructions=insns, core=binding)


def check_program(spec: ProgramSpec, caps: Capabilities,
                  stack_depth: Sequence[int] = ()) -> tuple[list[Finding], ProgramSpec | None]:
    """Findings for one program, and the rewritten program when a rewrite makes it fit: its
    CO-RE relocations resolved again for the target, then lowered to the target's ISA."""
    findings, rewritten = _core(spec, caps)
    if rewritten is not None:
        spec = rewritten
    if spec.type not in caps.prog_types:
        offered = ", ".join(t.name for t in sorted(caps.prog_types)) or "none"
        findings.append(_incompatible("prog-type", f"program type {spec.type.name} is not "
                                      f"offered by {caps.name} (it offers {offered})."))
    slots = sum(insn.width for insn in spec.instructions)
    if slots > caps.limits.max_insns:
        findings.append(_incompatible("size", f"the program has {slots} instructions; "
                                      f"{caps.name} accepts at most {caps.limits.max_insns}."))
    missing: dict[int, list[int]] = defaultdict(list)
    slot = 0
    local_call = None
    for insn in spec.instructions:
        if insn.is_helper_call and insn.imm not in caps.helpers:
            missing[insn.imm].append(slot)
        if insn.is_local_call and local_call is None:
            local_call = slot
        slot += insn.width
    for hid, where in sorted(missing.items()):
        findings.append(_incompatible("helper", f"helper {helper_label(hid)} is not offered by "
                                      f"{caps.name} (called at insn "
                                      f"{', '.join(map(str, where[:8]))}).", where[0]))
    if local_call is not None and caps.limits.max_call_frames <= 1:
        findings.append(_incompatible("calls", f"the program calls subprograms (insn "
                                      f"{local_call}); {caps.name} runs no bpf-to-bpf calls.",
                                      local_call))
    maps = {ref.map_name for ref in spec.map_refs}
    if len(maps) > caps.limits.max_maps:
        findings.append(_incompatible("maps", f"the program uses {len(maps)} maps; "
                                      f"{caps.name} allows {caps.limits.max_maps} per program."))
    deepest = max(stack_depth, default=0)
    if deepest > caps.limits.stack_size:
        findings.append(_incompatible("stack", f"the program uses {deepest} bytes of stack; "
                                      f"{caps.name} gives {caps.limits.stack_size}."))
    gaps = _isa_gaps(spec.instructions, caps.isa_version)
    if gaps:
        need = max(v for v, _ in gaps.values())
        kinds = "; ".join(f"{kind} (v{v}) at insn {', '.join(map(str, s[:4]))}"
                          f"{'...' if len(s) > 4 else ''}" for kind, (v, s) in gaps.items())
        first = min(s[0] for _, s in gaps.values())
        base = (f"the program needs ISA v{need}, {caps.name} offers v{caps.isa_version}: "
                f"{kinds}")
        lowered, note = _lower(spec, caps.isa_version)
        if lowered is None:
            findings.append(_incompatible("isa", f"{base}; {note}.", first))
        else:
            rewritten = lowered
            size = sum(insn.width for insn in rewritten.instructions)
            if size > caps.limits.max_insns:
                findings.append(_incompatible("isa", f"{base}; lowered to v{caps.isa_version} "
                                              f"it has {size} instructions, over the limit of "
                                              f"{caps.limits.max_insns}.", first))
                rewritten = None
            else:
                findings.append(Finding(Outcome.REWRITABLE, "isa", f"{base}; lowered to "
                                        f"v{caps.isa_version} ({size} instructions); a "
                                        f"restore verifies the lowered program.", first))
    return findings, rewritten


def check_map(spec: MapSpec, entries: int, caps: Capabilities) -> list[Finding]:
    """Findings for one map holding ``entries`` entries (its inner template checked too)."""
    findings: list[Finding] = []
    specs = [spec] + ([spec.inner] if spec.inner is not None else [])
    for s in specs:
        label = "" if s is spec else f"its inner map template {s.name!r}: "
        if s.type not in caps.map_types:
            offered = ", ".join(t.name for t in sorted(caps.map_types)) or "none"
            findings.append(_incompatible("map-type", f"{label}map type {s.type.name} is not "
                                          f"offered by {caps.name} (it offers {offered})."))
        if s.max_entries > caps.limits.max_map_entries:
            fits = " (its current contents would fit)" if s is spec and \
                entries <= caps.limits.max_map_entries else ""
            findings.append(_incompatible("max-entries", f"{label}max_entries {s.max_entries} is "
                                          f"over the limit of {caps.limits.max_map_entries} on "
                                          f"{caps.name}{fits}."))
        if s.key_size > caps.limits.max_key_size:
            findings.append(_incompatible("key-size", f"{label}{s.key_size}-byte keys are over "
                                          f"the limit of {caps.limits.max_key_size} on "
                                          f"{caps.name}."))
        if s.value_size > caps.limits.max_value_size:
            findings.append(_incompatible("value-size", f"{label}{s.value_size}-byte values are "
                                          f"over the limit of {caps.limits.max_value_size} on "
                                          f"{caps.name}."))
    if entries > caps.limits.max_map_entries:
        findings.append(_incompatible("entries", f"the map holds {entries} entries; "
                                      f"{caps.name} allows at most "
                                      f"{caps.limits.max_map_entries}."))
    return findings


def feature_name(bit: int) -> str:
    from offload.virtio.features import Feature

    return Feature(bit).name if bit in Feature._value2member_map_ else f"feature bit {bit}"


def check_features(source_negotiated: int, target_offered: int) -> list[Finding]:
    """One finding per feature bit the source negotiated and the target does not offer."""
    missing = source_negotiated & ~target_offered
    return [_incompatible("feature", f"the source negotiated {feature_name(bit)} (bit {bit}), "
                          f"which the target does not offer.")
            for bit in range(missing.bit_length()) if missing >> bit & 1]


def map_charge(spec: MapSpec, ncpus: int) -> int:
    """Device memory a restore of this map takes: the map, and for a map of maps the inner
    template the restore creates first."""
    inner = map_memory(spec.inner, ncpus) if spec.inner is not None else 0
    return map_memory(spec, ncpus) + inner


def check_memory(specs: Sequence[MapSpec], caps: Capabilities, ncpus: int) -> list[Finding]:
    """One finding when the maps together need more device memory than the target has."""
    charges = sorted(((map_charge(spec, ncpus), spec.name) for spec in specs), reverse=True)
    need = sum(charge for charge, _ in charges)
    if need <= caps.memory:
        return []
    largest = ", ".join(f"{name!r} {format_bytes(charge)}" for charge, name in charges[:3])
    return [_incompatible("memory", f"the snapshot's maps need {format_bytes(need)} of device "
                          f"memory (as created, whatever they hold now; largest: {largest}); "
                          f"{caps.name} has {format_bytes(caps.memory)}.")]


# ---------------------------------------------------------------- the plan
def _worst(findings: Sequence[Finding]) -> Outcome:
    return max((f.outcome for f in findings), default=Outcome.COMPATIBLE)


def plan(snapshot: Snapshot, target: Capabilities, offered_features: int | None = None,
         allow_fallback: bool = False, ncpus: int | None = None) -> Plan:
    """A report per object of ``snapshot`` on ``target``.

    ``offered_features`` is what the target device offers (``target.features`` by default);
    ``ncpus`` its CPU count, which per-CPU maps are charged for (the snapshot's by default).
    The maps that would be restored must fit the target's memory together (a device finding).
    Programs and maps joined by map references or tail-call links form groups that must be
    placed together: if any member cannot be offloaded, the whole group stays in the guest
    (FALLBACK) when ``allow_fallback``, otherwise it is INCOMPATIBLE.
    """
    reports: list[Report] = []
    features = check_features(snapshot.features,
                              target.features if offered_features is None else offered_features)
    found: dict[tuple[str, str], tuple[list[Finding], ProgramSpec | None]] = {}
    for prog in snapshot.programs:
        found["program", prog.name] = check_program(prog.spec, target,
                                                    prog.verifier.stack_depth)
    for state in snapshot.maps:
        found["map", state.name] = (check_map(state.spec, state.entry_count, target), None)
    groups = _groups(snapshot)
    for key, (findings, rewritten) in found.items():
        group = groups[key]
        blockers = [k for k in group if k != key and _worst(found[k][0]) >= Outcome.FALLBACK]
        findings = list(findings)
        if blockers and _worst(findings) < Outcome.FALLBACK:
            names = ", ".join(f"{kind} {name!r}" for kind, name in sorted(blockers))
            findings.append(_incompatible("group", f"it shares state with {names}, which "
                                          f"cannot be offloaded to {target.name}."))
        outcome = _worst(findings)
        if outcome == Outcome.INCOMPATIBLE and allow_fallback:
            outcome = Outcome.FALLBACK
            findings.append(Finding(Outcome.FALLBACK, "fallback", "it stays in the guest, "
                                    "not offloaded, as fallback is allowed."))
        reports.append(Report(key[0], key[1], outcome, tuple(findings),
                              rewritten if outcome == Outcome.REWRITABLE else None))
    placed = {r.name for r in reports if r.kind == "map" and r.outcome != Outcome.FALLBACK}
    features += check_memory([s.spec for s in snapshot.maps if s.name in placed], target,
                             snapshot.cpus if ncpus is None else ncpus)
    device = Report("device", snapshot.device, _worst(features), tuple(features))
    return Plan(target.name, (device, *reports))


def _groups(snapshot: Snapshot) -> dict[tuple[str, str], frozenset[tuple[str, str]]]:
    """Connected objects: a program and the maps it references, a map and what it links to."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: tuple[str, str], b: tuple[str, str]) -> None:
        parent[find(a)] = find(b)

    for prog in snapshot.programs:
        find(("program", prog.name))
        for ref in prog.spec.map_refs:
            union(("program", prog.name), ("map", ref.map_name))
    for state in snapshot.maps:
        find(("map", state.name))
        kind = "program" if state.spec.type == MapType.PROG_ARRAY else "map"
        if state.spec.type in LINK_MAP_TYPES:
            for link in state.links:
                union(("map", state.name), (kind, link.target))
    members: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for node in list(parent):
        members[find(node)].add(node)
    return {node: frozenset(members[find(node)]) for node in parent}
