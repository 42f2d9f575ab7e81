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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..backends.base import XdpOutcome
from ..backends.builtin import BuiltinBackend
from ..caps.capabilities import Capabilities
from ..engine.interpreter import Execution, Interpreter
from ..engine.memory import Region
from ..errors import OffloadError
from ..isa.instruction import Instruction
from ..maps.spec import MapSpec
from ..program import FuncInfo
from ..uapi import ProgType
from ..verifier.program import Program
from ..verifier.state import State
from ..verifier.verifier import Observer
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


class StateRecorder(Observer):
    """A verifier observer keeping the program's layout and a copy of every processed
    state, by instruction."""

    #: every scalar compared when pruning, so every concrete state lies in some recorded one
    compares_all_scalars = True
    #: and a checkpoint at every prune point: the most pruning there is to get wrong
    keeps_every_state = True

    def __init__(self) -> None:
        self.program: Program | None = None
        self.by_slot: dict[int, list[State]] = {}
        #: (slot, index in by_slot[slot]) of every kept state, in the order processed: a
        #: path's states follow one another, which is where the oracle looks first
        self.sequence: list[tuple[int, int]] = []
        self.overflow = False

    def layout(self, prog: Program) -> None:
        self.program = prog

    def state(self, slot: int, state: State) -> None:
        kept = self.by_slot.get(slot)
        if kept is None:
            kept = self.by_slot[slot] = []
        if len(kept) < MAX_STATES_PER_INSN:
            self.sequence.append((slot, len(kept)))
            kept.append(state.copy())
        else:
            self.overflow = True

    @property
    def count(self) -> int:
        return sum(len(states) for states in self.by_slot.values())


@dataclass(slots=True)
class OracleReport:
    """What one program's check covered."""

    frames: int = 0
    steps: int = 0
    states: int = 0
    outcomes: list[XdpOutcome] = field(default_factory=list)


class _Tracer:
    """The step hook: finds an abstract state holding each machine state."""

    def __init__(self, prog: Program, recorder: StateRecorder, root: Interpreter,
                 owner: Callable[[Region], int | None], outer: frozenset[int]) -> None:
        self.prog = prog
        self.states = recorder.by_slot
        self.root = root
        self.owner = owner
        self.outer = outer
        self.sequence = recorder.sequence
        self.seq_of = {(slot, i): n for n, (slot, i) in enumerate(recorder.sequence)}
        self.prev = -1  # sequence number of the state that held at the previous step
        self.last: dict[int, int] = {}  # slot -> index of the state that matched last time
        self.escape: Escape | None = None
        self.frame = 0
        self.steps = 0

    def __call__(self, pc: int, regs: list[int], run: Execution) -> None:
        if self.escape is not None or run.program is not self.root:
            return  # the first escape is the report; a tail-called program is not ours
        self.steps += 1
        view = ConcreteView(regs, run, self.owner, self.outer)
        candidates = self.states.get(pc, ())
        n = len(candidates)
        likely = []
        following = self.prev + 1
        if following < len(self.sequence) and self.sequence[following][0] == pc:
            likely.append(self.sequence[following][1])  # the verifier's next state on the path
        hint = self.last.get(pc, 0)
        # the state that held last time here, or (a loop's next iteration) the one after it
        likely += [i for i in (hint, hint + 1) if i < n and i not in likely]
        best: list[str] | None = None
        for i in (*likely, *(i for i in range(n) if i not in likely)):
            problems = escapes(self.prog, pc, candidates[i], view)
            if not problems:
                self.last[pc] = i
                self.prev = self.seq_of[pc, i]
                return
            if best is None or len(problems) < len(best):
                best = problems
        if best is None:
            best = ["the verifier never reached this instruction"]
        self.escape = Escape(pc, str(self.prog.slots[pc]), self.frame, tuple(best), n)


class SoundnessOracle:
    """Runs frames through one program on a built-in backend's reference engine, checking
    every machine state against the states ``recorder`` kept while the program was verified
    for that backend (same capabilities, same maps)."""

    def __init__(self, backend: BuiltinBackend, handle: int, recorder: StateRecorder, *,
                 text: str = "") -> None:
        program = backend.programs.get(handle)
        if program is None or type(program.engine) is not Interpreter:
            raise ValueError("the oracle traces a program loaded on the reference engine")
        if recorder.program is None:
            raise ValueError("the recorder saw no verification")
        self.backend = backend
        self.handle = handle
        self.recorder = recorder
        self.text = text
        outer = frozenset(h for h, e in backend.maps.items() if e.map.spec.type.is_map_in_map)
        self._tracer = _Tracer(recorder.program, recorder, program.engine,
                               backend.map_of_region, outer)
        self.frames = 0

    @property
    def steps(self) -> int:
        return self._tracer.steps

    def run(self, frame: bytes, *, rx_queue_index: int = 0) -> XdpOutcome:
        """The outcome of one frame; a verifier bug raises :class:`SoundnessError`."""
        tracer = self._tracer
        tracer.frame = self.frames
        tracer.prev = -1
        outcome = self.backend.run_xdp(self.handle, frame, rx_queue_index=rx_queue_index,
                                       on_step=tracer)
        if tracer.escape is not None:
            raise SoundnessError(str(tracer.escape), program=self.text, frame=frame)
        if outcome.error is not None:
            raise SoundnessError(f"verifier bug: an accepted program failed at run time: "
                                 f"{outcome.error}", program=self.text, frame=frame)
        self.frames += 1
        return outcome


def check_program(insns: Sequence[Instruction], *, caps: Capabilities,
                  maps: Mapping[int, MapSpec] | None = None, frames: Sequence[bytes] = (b"",),
                  rx_queue_index: int = 0, seed: int = 1,
                  prog_type: ProgType = ProgType.XDP, text: str | None = None,
                  functions: Sequence[FuncInfo] = ()) -> OracleReport:
    """Verify ``insns`` (a refusal raises ``VerifierError``), then run every frame under the
    oracle; a verifier bug raises :class:`SoundnessError`."""
    shown = text if text is not None else "\n".join(str(i) for i in insns)
    backend = BuiltinBackend(caps, engine="reference", seed=seed)
    for handle, spec in (maps or {}).items():
        backend.create_map(handle, spec)
    recorder = StateRecorder()
    backend.load_program(PROGRAM_HANDLE, insns, prog_type=prog_type, name="checked",
                         license="GPL", observer=recorder, functions=functions)
    if recorder.overflow:
        raise SoundnessError("too many abstract states at one instruction to check",
                             program=shown, frame=None)
    oracle = SoundnessOracle(backend, PROGRAM_HANDLE, recorder, text=shown)
    report = OracleReport(states=recorder.count)
    for frame in frames:
        report.outcomes.append(oracle.run(frame, rx_queue_index=rx_queue_index))
    report.frames = oracle.frames
    report.steps = oracle.steps
    return report
