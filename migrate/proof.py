"""Restore with proof: the restored program behaves, frame by frame, as the source's did.

A restore onto another device may rewrite a program (CO-RE relocations resolved again, ISA
lowering) and re-create its maps on other limits. The target's verifier shows the result is
safe, not that it is the same program. Translation validation shows that for the frames at
hand: the snapshot is restored twice on scratch devices - once as it ran on the source (its
own capabilities, the reference engine) and once as it will run on the target (the plan's
rewrites, the target's backend) - and every frame runs through both attached programs in
order. The verdict, the frame as it leaves, the redirect and every map entry the frame
changed must be identical; the first difference refuses, naming the frame and, when the two
runs can be traced, the source instruction where their paths part.

For a rewritten program, frames built from the samples run too (each sample cut at every
length that can flip a packet-bounds check, and bytes of its headers changed), and the proof
reports the branch coverage of the source program: each conditional jump has two edges, and
an edge is covered when some frame took it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from offload.device.pair import DevicePair
from offload.errors import OffloadError
from offload.isa import InsnClass, Instruction, JmpOp
from offload.lowering import LoweringError, lower_with_report
from offload.uapi import XdpAction

from .compat import Outcome
from .errors import SnapshotError
from .proof_words import checked
from .restore import RestoreResult, restore
from .snapshot import Snapshot

#: Frames built from the samples for a rewritten program, at most.
MAX_GENERATED = 256
#: Header bytes a generated frame may change (Ethernet, IPv4/IPv6 and the next header).
MUTATED_BYTES = 64
#: Ingress interface and receive queue both runs see.
INGRESS_IFINDEX = 1

PairFactory = Callable[[], DevicePair]


class ProofError(SnapshotError):
    """A proof that could not be carried out (nothing attached, no frames, a scratch device
    that refused the snapshot); distinct from a proof that found a difference."""


class NoFrames(ProofError):
    """Nothing to prove with: the snapshot has no sample and no frames were given."""


@dataclass(frozen=True, slots=True)
class Observed:
    """What one frame through one program did, in the terms the proof compares."""

    verdict: str
    data: bytes
    redirect: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Difference:
    """The first frame whose runs disagree, and how."""

    frame: int  # index over every frame run, samples first
    generated: bool
    what: str
    insn: int | None = None  # source instruction where the two paths part, when known

    def describe(self) -> str:
        kind = "generated frame" if self.generated else "frame"
        where = f"; the paths part after insn {self.insn}" if self.insn is not None else ""
        return f"{kind} {self.frame}: {self.what}{where}"


@dataclass(frozen=True, slots=True)
class Proof:
    """The result of running the frames through both programs."""

    program: str
    rewritten: bool
    frames: int  # sampled (or given) frames run
    generated: int  # frames built from them and run
    branches_covered: int
    branches_total: int
    difference: Difference | None = None

    @property
    def ok(self) -> bool:
        return self.difference is None

    def summary(self) -> str:
        result = "identical" if self.ok else "DIFFERENT"
        return (f"{self.program}: "
                f"{checked(self.frames, self.generated, self.branches_covered, self.branches_total)}"
                f", {result}")

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "program": self.program, "rewritten": self.rewritten, "frames": self.frames,
            "generated": self.generated, "branches_covered": self.branches_covered,
            "branches_total": self.branches_total, "ok": self.ok,
        }
        if self.difference is not None:
            diff = self.difference
            out["difference"] = {"frame": diff.frame, "generated": diff.generated,
                                 "what": diff.what, "insn": diff.insn}
        return out


# ------------------------------------------------------------------------------- frames
def generated_frames(samples: Sequence[bytes], budget: int = MAX_GENERATED) -> list[bytes]:
    """Frames built from the samples to reach the other side of the program's checks.

    Cuts first: a sample cut at every length from the Ethernet header's 14 bytes on flips each
    ``data + N > data_end`` check it crosses. Then header bytes changed one at a time (to 0,
    to 0xff, and one bit flipped), which flips comparisons of protocol fields. Duplicates of a
    sample or of each other are left out; samples are taken in turn so each contributes.
    """
    seen = {bytes(s) for s in samples}
    out: list[bytes] = []

    def candidates(sample: bytes) -> Iterator[bytes]:
        for length in range(min(14, len(sample)), len(sample)):
            yield sample[:length]
        for offset in range(min(MUTATED_BYTES, len(sample))):
            for value in (0, 0xFF, sample[offset] ^ 1):
                if value != sample[offset]:
                    yield sample[:offset] + bytes((value,)) + sample[offset + 1:]

    streams = [candidates(bytes(s)) for s in samples]
    while streams and len(out) < budget:
        for stream in list(streams):
            frame = next(stream, None)
            if frame is None:
                streams.remove(stream)
                continue
            if frame not in seen:
                seen.add(frame)
                out.append(frame)
                if len(out) >= budget:
                    break
    return out


# ------------------------------------------------------------------------------- runs
def _observe(outcome: Any) -> Observed:
    action = outcome.action
    verdict = action.name if isinstance(action, XdpAction) else str(action)
    redirect = None
    if action == XdpAction.REDIRECT:
        target = outcome.redirect_target
        if target is not None and hasattr(target, "describe"):
            redirect = target.describe
        elif outcome.redirect_ifindex is not None:
            redirect = f"ifindex {outcome.redirect_ifindex}"
    return Observed(verdict, bytes(outcome.data), redirect, outcome.error)


def _compare(src: Observed, dst: Observed) -> str | None:
    if src.error != dst.error:
        return f"the source run {'faulted: ' + src.error if src.error else 'ran cleanly'}, " \
               f"the target's {'faulted: ' + dst.error if dst.error else 'ran cleanly'}"
    if src.verdict != dst.verdict:
        return f"verdict XDP_{src.verdict} on the source, XDP_{dst.verdict} on the target"
    if src.redirect != dst.redirect:
        return f"redirected to {src.redirect} on the source, to {dst.redirect} on the target"
    if src.data != dst.data:
        if len(src.data) != len(dst.data):
            return (f"the frame leaves with {len(src.data)} bytes on the source, "
                    f"{len(dst.data)} on the target")
        at = next(i for i, (a, b) in enumerate(zip(src.data, dst.data)) if a != b)
        return (f"output byte {at} is {src.data[at]:#04x} on the source, "
                f"{dst.data[at]:#04x} on the target")
    return None


class _Side:
    """One scratch device holding the restored snapshot, with its maps watched."""

    def __init__(self, pair: DevicePair, result: RestoreResult) -> None:
        self.pair = pair
        self.result = result
        if self.result.attached is None:
            raise ProofError("the snapshot has no attached program: no frame would reach one")
        self.handle = self.result.programs[self.result.attached]
        backend = pair.device.backend
        self.maps = {name: backend.map(handle) for name, handle in self.result.maps.items()}
        self.full_compare = set()
        for name, live in self.maps.items():
            if hasattr(live, "track_dirty"):
                live.track_dirty(True)
            else:
                self.full_compare.add(name)

    @classmethod
    def restored(cls, pair: DevicePair, snapshot: Snapshot, what: str) -> _Side:
        try:
            result = restore(snapshot, pair.driver)
        except OffloadError as err:
            raise ProofError(f"the {what} scratch device refused the snapshot: {err}") from err
        return cls(pair, result)

    def run(self, frame: bytes, on_step: Callable[..., None] | None = None) -> Observed:
        kwargs: dict[str, Any] = {"ingress_ifindex": INGRESS_IFINDEX, "rx_queue_index": 0}
        if on_step is not None:
            kwargs["on_step"] = on_step
        try:
            outcome = self.pair.device.backend.run_xdp(self.handle, frame, **kwargs)
        except OffloadError as err:
            return Observed("ABORTED", bytes(frame), None, str(err))
        return _observe(outcome)

    def dirty(self, name: str) -> set[bytes]:
        live = self.maps[name]
        return live.take_dirty() if hasattr(live, "take_dirty") else set()

    def entry(self, name: str, key: bytes) -> bytes | None:
        live = self.maps[name]
        if hasattr(live, "export_entry"):
            found = live.export_entry(key)
            return None if found is None else bytes(found[1])
        try:
            return bytes(live.lookup(key))
        except OffloadError:
            return None

    def contents(self, name: str) -> dict[bytes, bytes]:
        return {bytes(k): bytes(v) for k, v in self.maps[name].items()}

    def close(self) -> None:
        for live in self.maps.values():
            if hasattr(live, "track_dirty"):
                live.track_dirty(False)


def _map_difference(src: _Side, dst: _Side) -> str | None:
    """The first map entry the frame left different on the two sides."""
    for name in sorted(src.maps):
        if name not in dst.maps:
            continue
        if name in src.full_compare or name in dst.full_compare:
            before, after = src.contents(name), dst.contents(name)
            keys = sorted(set(before) | set(after))
            pairs = ((k, before.get(k), after.get(k)) for k in keys)
        else:
            keys = sorted(src.dirty(name) | dst.dirty(name))
            pairs = ((k, src.entry(name, k), dst.entry(name, k)) for k in keys)
        for key, a, b in pairs:
            if a != b:
                return (f"map {name!r} key {key.hex()}: "
                        f"{'absent' if a is None else a.hex()} on the source, "
                        f"{'absent' if b is None else b.hex()} on the target")
    return None


# ------------------------------------------------------------------------------- coverage
def _branches(insns: Sequence[Instruction]) -> dict[int, int]:
    """Conditional jumps by slot, with the slot they jump to."""
    out: dict[int, int] = {}
    slot = 0
    for insn in insns:
        if insn.cls in (InsnClass.JMP, InsnClass.JMP32) and insn.jmp_op not in (
                JmpOp.JA, JmpOp.CALL, JmpOp.EXIT):
            out[slot] = slot + 1 + insn.off
        slot += insn.width
    return out


class _Tracer:
    """Records the slots the attached program executes (tail calls leave it) and the edges of
    its conditional jumps."""

    def __init__(self, branches: dict[int, int]) -> None:
        self.branches = branches
        self.edges: set[tuple[int, bool]] = set()
        self.path: list[int] = []
        self.program: object = None
        self.last: int | None = None

    def start(self) -> None:
        self.path = []
        self.program = None
        self.last = None

    def __call__(self, pc: int, regs: list[int], run: Any) -> None:
        current = getattr(run, "program", None)
        if self.program is None:
            self.program = current
        if current is not self.program:
            self.last = None
            return
        last = self.last
        if last is not None and last in self.branches:
            self.edges.add((last, pc == self.branches[last] and pc != last + 1))
        self.path.append(pc)
        self.last = pc


def _origin_map(original: Sequence[Instruction], rewritten: Sequence[Instruction],
                isa: int) -> list[int] | None:
    """For each slot of the rewritten program, the source slot it came from: the lowering's
    slot map when the rewrite has its shape; None otherwise (then no instruction is named)."""
    original_slots = sum(i.width for i in original)
    if sum(i.width for i in rewritten) == original_slots:
        return list(range(original_slots))
    try:
        lowering = lower_with_report(original, isa)
    except LoweringError:
        return None
    if sum(i.width for i in lowering.instructions) != sum(i.width for i in rewritten):
        return None
    origin: list[int] = []
    slot_map = lowering.slot_map
    for old in range(len(slot_map) - 1):
        origin.extend([old] * (slot_map[old + 1] - slot_map[old]))
    return origin


def _parting(source: list[int], target: list[int], origin: list[int]) -> int | None:
    """The last source slot both paths executed before they part."""
    mapped: list[int] = []
    for pc in target:
        if pc < len(origin):
            slot = origin[pc]
            if not mapped or mapped[-1] != slot:
                mapped.append(slot)
    collapsed: list[int] = []
    for pc in source:
        if not collapsed or collapsed[-1] != pc:
            collapsed.append(pc)
    for i, (a, b) in enumerate(zip(collapsed, mapped)):
        if a != b:
            return collapsed[i - 1] if i else a
    if len(collapsed) != len(mapped):
        shorter = min(len(collapsed), len(mapped))
        return collapsed[shorter - 1] if shorter else None
    return None


# ------------------------------------------------------------------------------- the proof
@dataclass
class _Plan:
    frames: list[bytes]
    generated: int
    rewritten: bool
    name: str
    original: tuple[Instruction, ...]
    final: tuple[Instruction, ...]
    isa: int
    branches: dict[int, int] = field(default_factory=dict)


def prove(snapshot: Snapshot, frames: Sequence[bytes], *, source: PairFactory,
          target: PairFactory, reference: PairFactory | None = None,
          generate: bool | None = None, budget: int = MAX_GENERATED) -> Proof:
    """Run ``frames`` (then, for a rewritten program, frames built from them) through the
    attached program as the source ran it and as the target will run it.

    ``source`` builds a scratch device with the snapshot's own capabilities on the reference
    engine; ``target`` a scratch device like the target (its capabilities and backend).
    ``reference`` builds one like the target on the reference engine: with it, a difference
    names the source instruction where the paths part. ``generate`` forces frame generation
    on or off (default: only when the plan rewrites the attached program).
    """
    if not frames:
        raise NoFrames("there are no frames to prove with: save with --sample N, or give "
                         "frames with --prove-frames FILE.pcap")
    src = _Side.restored(source(), snapshot, "source")
    dst = _Side.restored(target(), snapshot, "target")
    return _prove(snapshot, frames, src, dst, generate, budget,
                  None if reference is None else (reference, source))


def prove_restored(snapshot: Snapshot, frames: Sequence[bytes],
                   source: tuple[DevicePair, RestoreResult],
                   target: tuple[DevicePair, RestoreResult], *,
                   generate: bool | None = None, budget: int = MAX_GENERATED,
                   trace: bool = True) -> Proof:
    """:func:`prove` on devices that already hold the state, restored and attached (a live
    migration's copies, fed the same deltas as the destination); their maps change as the
    frames run. A difference names the frame, not the instruction (the state the frames
    started from is not the snapshot's, so it cannot be replayed). Without ``trace`` the
    source runs untraced - faster, and no branch is counted (0 of 0)."""
    if not frames:
        raise NoFrames("there are no frames to prove with.")
    return _prove(snapshot, frames, _Side(*source), _Side(*target), generate, budget, None,
                  trace)


def _prove(snapshot: Snapshot, frames: Sequence[bytes], src: _Side, dst: _Side,
           generate: bool | None, budget: int,
           replay: tuple[PairFactory, PairFactory] | None, trace: bool = True) -> Proof:
    try:
        name = src.result.attached or ""
        report = dst.result.plan.report("program", name)
        rewritten = report.outcome == Outcome.REWRITABLE and report.rewritten is not None
        original = snapshot.program(name).spec.instructions
        final = report.rewritten.instructions if rewritten and report.rewritten else original
        samples = [bytes(f) for f in frames]
        extra = generated_frames(samples, budget) if (
            rewritten if generate is None else generate) else []
        plan = _Plan(samples + extra, len(extra), rewritten, name, tuple(original),
                     tuple(final), dst.pair.device.caps.isa_version,
                     _branches(original) if trace else {})
        tracer = _Tracer(plan.branches)
        for index, frame in enumerate(plan.frames):
            tracer.start()
            what = _compare(src.run(frame, tracer if trace else None), dst.run(frame)) or \
                _map_difference(src, dst)
            if what is not None:
                insn = _locate(snapshot, plan, index, *replay) if replay else None
                diff = Difference(index, index >= len(samples), what, insn)
                return _result(plan, tracer, diff)
        return _result(plan, tracer, None)
    finally:
        src.close()
        dst.close()


def _result(plan: _Plan, tracer: _Tracer, diff: Difference | None) -> Proof:
    return Proof(plan.name, plan.rewritten, len(plan.frames) - plan.generated, plan.generated,
                 len(tracer.edges), 2 * len(plan.branches), diff)


def _locate(snapshot: Snapshot, plan: _Plan, index: int, reference: PairFactory,
            source: PairFactory) -> int | None:
    """Replay the frames up to the differing one on two traced reference runs and name the
    source instruction where the paths part."""
    origin = _origin_map(plan.original, plan.final, plan.isa)
    if origin is None:
        return None
    try:
        src = _Side.restored(source(), snapshot, "source")
        dst = _Side.restored(reference(), snapshot, "target")
    except ProofError:
        return None
    try:
        for frame in plan.frames[:index]:
            src.run(frame)
            dst.run(frame)
        first, second = _Tracer({}), _Tracer({})
        src.run(plan.frames[index], first)
        dst.run(plan.frames[index], second)
        return _parting(first.path, second.path, origin)
    finally:
        src.close()
        dst.close()

