"""The soundness oracle: run a verified program and check every machine state it reaches
against the abstract states the verifier explored there (state embedding).

``check_program`` loads a program on a built-in device with the reference engine, recording
every state the verifier processes, then runs it on each input frame, tracing every
instruction. Before each instruction the concrete state must lie inside at least one abstract
state the verifier had at that instruction (``embedding.escapes``): states reached through a
pruned path are covered by the state that pruned them, on the registers and slots pruning
compares. An accepted program that faults, or a state outside every abstract state, is a
verifier bug, reported with the program, the frame and the instruction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..backends.builtin import BuiltinBackend
from ..caps.capabilities import Capabilities
from ..engine.interpreter import Execution, Interpreter
from ..engine.memory import Region
from ..errors import OffloadError
from ..isa.instruction import Instruction
from ..maps.spec import MapSpec
from ..program import ProgType
from ..verifier.cfg import Program, layout
from ..verifier.state import State
from .concrete import ConcreteView
from .embedding import escapes

PROGRAM_HANDLE = 1 << 20
#: Abstract states kept per instruction before the recorder gives up (and says so).
MAX_STATES_PER_INSN = 4096


@dataclass(frozen=True, slots=True)
class Escape:
    """A concrete state outside every abstract state of its instruction: a verifier bug."""

    slot: int
    insn: str
    frame: int  # index of the input frame
    problems: tuple[str, ...]  # against the closest abstract state
    states: int  # abstract states the verifier had at this instruction

    def __str__(self) -> str:
        head = (f"verifier bug: at insn {self.slot} ({self.insn}) on frame {self.frame} the "
                f"machine state lies outside all {self.states} abstract states")
        return head + "".join(f"\n  {p}" for p in self.problems)


class SoundnessError(OffloadError):
    """The oracle found a verifier bug (an escape or a run-time fault of an accepted
    program)."""

    def __init__(self, message: str, *, program: str, frame: bytes | None) -> None:
        self.program = program
        self.frame = frame
        shown = frame.hex() if frame is not None else "-"
        super().__init__(f"{message}\nframe: {shown}\nprogram:\n{program}")


@dataclass(slots=True)
class StateRecorder:
    """A verifier observer keeping a copy of every processed state, by instruction."""

    by_slot: dict[int, list[State]] = field(default_factory=dict)
    overflow: bool = False

    def __call__(self, slot: int, state: State) -> None:
        kept = self.by_slot.setdefault(slot, [])
        if len(kept) < MAX_STATES_PER_INSN:
            kept.append(state.copy())
        else:
            self.overflow = True


@dataclass(slots=True)
class OracleReport:
    """What one program's check covered."""

    frames: int = 0
    steps: int = 0
    states: int = 0
    outcomes: list[tuple[int, bytes, int | None]] = field(default_factory=list)


class _Tracer:
    """The step hook: finds an abstract state holding each machine state."""

    def __init__(self, prog: Program, recorder: StateRecorder, root: Interpreter,
                 owner: object, outer: frozenset[int]) -> None:
        self.prog = prog
        self.states = recorder.by_slot
        self.root = root
        self.owner = owner
        self.outer = outer
        self.last: dict[int, int] = {}  # slot -> index of the state that matched last time
        self.escape: Escape | None = None
        self.frame = 0
        self.steps = 0

    def __call__(self, pc: int, regs: list[int], run: Execution) -> None:
        if self.escape is not None or run.program is not self.root:
            return  # the first escape is the report; a tail-called program is not ours
        self.steps += 1
        view = ConcreteView(regs, run, self.owner, self.outer)  # type: ignore[arg-type]
        candidates = self.states.get(pc, ())
        n = len(candidates)
        hint = self.last.get(pc, 0)
        # a loop's k-th iteration usually matches the k-th state: try the likely ones first
        likely = [i for i in (hint + 1, hint) if i < n]
        best: list[str] | None = None
        for i in (*likely, *(i for i in range(n) if i not in likely)):
            problems = escapes(self.prog, pc, candidates[i], view)
            if not problems:
                self.last[pc] = i
                return
            if best is None or len(problems) < len(best):
                best = problems
        insn = self.prog.slots[pc]
        if best is None:
            best = ["the verifier never reached this instruction"]
        self.escape = Escape(pc, str(insn), self.frame, tuple(best), len(candidates))


def check_program(insns: Sequence[Instruction], *, caps: Capabilities,
                  maps: Mapping[int, MapSpec] | None = None, frames: Sequence[bytes] = (b"",),
                  rx_queue_index: int = 0, seed: int = 1,
                  prog_type: ProgType = ProgType.XDP, text: str | None = None) -> OracleReport:
    """Verify ``insns`` (a refusal raises ``VerifierError``), then run every frame under the
    oracle; a verifier bug raises :class:`SoundnessError`."""
    shown = text if text is not None else "\n".join(str(i) for i in insns)
    backend = BuiltinBackend(caps, engine="reference", seed=seed)
    for handle, spec in (maps or {}).items():
        backend.create_map(handle, spec)
    recorder = StateRecorder()
    backend.load_program(PROGRAM_HANDLE, insns, prog_type=prog_type, name="checked",
                         license="GPL", observer=recorder)
    if recorder.overflow:
        raise SoundnessError("too many abstract states at one instruction to check",
                             program=shown, frame=None)
    program = backend.programs[PROGRAM_HANDLE]
    outer = frozenset(h for h, e in backend.maps.items() if e.map.spec.type.is_map_in_map)

    def owner(region: Region) -> int | None:
        return _owner(backend, region)

    tracer = _Tracer(layout(insns, caps), recorder, program.engine, owner, outer)
    report = OracleReport(states=sum(len(v) for v in recorder.by_slot.values()))
    for index, frame in enumerate(frames):
        tracer.frame = index
        outcome = backend.run_xdp(PROGRAM_HANDLE, frame, rx_queue_index=rx_queue_index,
                                  on_step=tracer)
        if tracer.escape is not None:
            raise SoundnessError(str(tracer.escape), program=shown, frame=frame)
        if outcome.error is not None:
            raise SoundnessError(f"verifier bug: an accepted program failed at run time: "
                                 f"{outcome.error}", program=shown, frame=frame)
        report.frames += 1
        report.outcomes.append((outcome.retval, outcome.data, outcome.redirect_ifindex))
    report.steps = tracer.steps
    return report


def _owner(backend: BuiltinBackend, region: Region) -> int | None:
    """The handle of the map whose value ``region`` maps."""
    for handle, entry in backend.maps.items():
        if entry.value_region is region:
            return handle
    for mapped, live in backend._value_regions.values():
        if mapped is region:
            for handle, entry in backend.maps.items():
                if entry.map is live:
                    return handle
    return None
