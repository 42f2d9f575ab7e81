"""The reference interpreter for the whole eBPF ISA through v4 (RFC 9669).

It is the oracle every other engine is compared with, so it favours plain definitions: each
instruction is prepared once into a small step function over the register file, and the run
loop calls them one by one. Every memory access goes through :class:`~.memory.Memory`; every
failure is an :class:`ExecutionError` (or :class:`~.memory.MemoryFault`) carrying the
instruction index - never an IndexError, struct.error or a hang (an instruction budget bounds
every run).

Calls: ``call local`` pushes a frame with a fresh, zeroed 512-byte stack, saves r6-r9 and
r10, and ``exit`` restores them (at most ``max_call_frames`` frames, 8 as in the kernel).
Helpers are looked up in a table; ``callx`` takes the helper id from its register (the
convention of the conformance suites). A helper may end the run (:meth:`Execution.finish`) or
replace the program with another (:class:`TailCall`).

``bpf_loop`` runs its callback in the same loop, one frame per call (:mod:`.callbacks`).

``may_goto`` behaves as in Linux: every call frame (the main program's, each ``call local``'s,
a tail-called program's) starts with a hidden counter of ``BPF_MAX_LOOPS``; a ``may_goto``
falls through and takes one from it while it is not zero, and jumps once it is.

With ``provenance`` (a device's programs, the soundness oracle) every register also carries
the region it was derived from and every access is checked against it (:mod:`.provenance`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from ..helpers.prototypes import CALLBACK_HELPERS
from ..isa.instruction import Instruction
from ..isa.opcodes import (
    ATOMIC_FETCH,
    CALLX,
    LDDW,
    AluOp,
    AtomicOp,
    CallSrc,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    PseudoSrc,
    Source,
)
from ..isa.structure import Layout, StructureError, build_layout
from .alu import (
    ALU32_OPS,
    ALU64_OPS,
    ATOMIC_ARITH,
    M32,
    M64,
    bswap,
    jump_taken,
    sign_extend,
    to_little_endian,
)
from .callbacks import LoopRun, loop_exit, loop_step
from .errors import ExecutionError
from .memory import REGION_SHIFT, Memory, MemoryFault, ProvenanceFault, Region
from .provenance import (
    TAG,
    HelperSig,
    check_helper_args,
    lddw_tag,
    tagged_alu_step,
    tagged_memory_step,
)

Helper = Callable[..., int]
"""A helper: ``fn(execution, r1, r2, r3, r4, r5) -> r0``."""

DEFAULT_MAX_STEPS = 10_000_000
STACK_SIZE = 512
_ZERO_STACK = bytes(STACK_SIZE)
MAX_CALL_FRAMES = 8
MAX_TAIL_CALLS = 33
#: The hidden ``may_goto`` counter each call frame starts with (the kernel's BPF_MAX_LOOPS);
#: read whenever a frame starts, by every engine.
BPF_MAX_LOOPS = 8 * 1024 * 1024



class LoadError(ExecutionError):
    """A program this engine refuses before running it (unknown helper, unsupported form)."""


class TailCall(Exception):
    """Raised by a tail-call helper: continue with ``target`` from its first instruction,
    with r1 = ``ctx`` (the helper's first argument) and a fresh stack."""

    def __init__(self, target: Interpreter, ctx: int = 0) -> None:
        super().__init__("tail call")
        self.target = target
        self.ctx = ctx
        self.slot = 0  # the call instruction, filled in by the engine


class _Finish(Exception):
    def __init__(self, value: int) -> None:
        super().__init__("finish")
        self.value = value


@dataclass(slots=True)
class _Frame:
    return_pc: int
    #: r6-r9 and r10 of the caller, then (with provenance) their tags
    saved: tuple[int, ...]
    #: the ``bpf_loop`` call whose callback runs in this frame
    loop: LoopRun | None = None


@dataclass(slots=True)
class Execution:
    """The state of one run, handed to helpers as their first argument.

    ``env`` is whatever the host passed to :meth:`Interpreter.run` (a device puts its packet
    context there); helpers read and write program memory through ``memory``.
    """

    memory: Memory
    env: Any
    program: Interpreter
    max_steps: int
    steps: int = 0
    tail_calls: int = 0
    frames: list[_Frame] = field(default_factory=list)
    #: Called before every instruction of the reference interpreter (``execute_traced``).
    on_step: Callable[[int, list[int], Execution], None] | None = None
    #: The register file (with provenance, r0-r10 then their tags).
    regs: list[int] | tuple[()] = ()
    #: Pointers spilled to the stack: address -> (tag, value), with provenance only (made at
    #: the first spill).
    spills: dict[int, tuple[int, int]] | None = None
    #: Set by the fast engine around a verified helper call: what each argument a helper may
    #: read as a string may reach (``check_pointer``); None when nothing is checked.
    arg_reach: Mapping[int, Callable[[Region], bool]] | None = None
    #: The ``may_goto`` counter of each call depth, set when the frame starts (``stack_for``).
    loops: dict[int, int] = field(default_factory=dict)

    @property
    def tags(self) -> list[int] | None:
        """The provenance tags of r0-r10 (region slot, 0 for a number, the value of a map
        pointer), or None when the program runs without provenance."""
        regs = self.regs
        # a register file that long is the list made for provenance, never the empty tuple
        return cast("list[int]", regs)[TAG:TAG + 11] if len(regs) > TAG else None

    def check_pointer(self, regno: int, address: int) -> None:
        """Before a helper reads through argument ``regno`` that it may also take as a
        number (``trace_printk``'s ``%s``): the address must lie in memory the argument was
        derived from (with provenance) or that the verifier proved it may reach (the fast
        engine on a verified program)."""
        regs = self.regs
        if len(regs) > TAG:
            tag = regs[regno + TAG]
            if address >> REGION_SHIFT != tag:
                raise self.memory.provenance_fault(f"R{regno}", tag, address, 1, False,
                                                   " (read by a helper as a string)")
        elif self.arg_reach is not None:
            admits = self.arg_reach.get(regno)
            region = self.memory.region_at(address)
            if admits is None or region is None or not admits(region):
                raise ProvenanceFault(f"R{regno} is read by a helper as a string, and the "
                                      "verifier did not prove it points to memory the program "
                                      "may read", address=address, size=1, write=False)

    def finish(self, value: int) -> None:
        """End the run now with r0 = value (an unwinding helper)."""
        raise _Finish(value & M64)

    def stack_for(self, depth: int) -> Region:
        """The zeroed stack frame for call depth ``depth`` (0 is the main program)."""
        region = self.memory.stack(depth, STACK_SIZE)
        region.buffer[:] = _ZERO_STACK
        self.loops[depth] = BPF_MAX_LOOPS
        if self.spills:
            slot = region.base >> REGION_SHIFT
            for address in [a for a in self.spills if a >> REGION_SHIFT == slot]:
                del self.spills[address]
        return region


@dataclass(frozen=True, slots=True)
class ExecResult:
    r0: int
    steps: int


Step = Callable[[list[int], Execution], int]
EXIT_PC = -1


class Interpreter:
    """A prepared program. ``run``/``execute`` may be called any number of times.

    ``resolve_lddw`` turns a pseudo ``lddw`` (map fd, map value, ...) into its 64-bit value;
    without it such instructions are refused at load time.

    ``provenance`` turns pointer provenance on: it gives each helper's pointer arguments and
    whether it returns a pointer (a helper missing from it is refused at load time). The
    arguments of a run that point into a mapped region are the pointers the program is given.
    Off (None) for the conformance suites' convention, whose programs may compute addresses.
    """

    def __init__(self, insns: Sequence[Instruction], helpers: Mapping[int, Helper] | None = None,
                 *, resolve_lddw: Callable[[Instruction], int] | None = None,
                 max_steps: int = DEFAULT_MAX_STEPS, max_call_frames: int = MAX_CALL_FRAMES,
                 max_insns: int = 1_000_000, layout: Layout | None = None,
                 provenance: Mapping[int, HelperSig] | None = None) -> None:
        self.helpers = dict(helpers or {})
        self.max_steps = max_steps
        self.max_call_frames = max_call_frames
        self._resolve_lddw = resolve_lddw
        self.provenance = dict(provenance) if provenance is not None else None
        # Each instruction on its own first (fields, then what this engine supports), in
        # program order as the kernel resolves them; then the program's shape as a whole.
        steps: list[Step | None] = []
        for insn in insns:
            problem = insn.field_problem()
            if problem is not None:
                raise StructureError(problem, insn_index=len(steps))
            steps.append(self._prepare(insn, len(steps)))
            if insn.width == 2:
                steps.append(None)
        self.layout = layout if layout is not None else build_layout(insns, max_insns=max_insns)
        self._steps = steps

    # ------------------------------------------------------------------ running
    def run(self, memory: Memory, *args: int, env: Any = None) -> int:
        """Run with r1.. = args and return r0."""
        return self.execute(memory, *args, env=env).r0

    def execute(self, memory: Memory, *args: int, env: Any = None) -> ExecResult:
        run, regs = self._start(memory, args, env)
        r0 = _loop(self, regs, run)
        return ExecResult(r0, run.steps)

    def execute_traced(self, memory: Memory, *args: int, env: Any = None,
                       on_step: Callable[[int, list[int], Execution], None]) -> ExecResult:
        """``execute``, calling ``on_step(pc, regs, run)`` before every instruction (the
        soundness oracle compares each machine state with the verifier's). ``regs[0:11]``
        are r0-r10; ``run.tags`` their provenance tags (None without provenance);
        ``run.program`` tells which program runs after a tail call; ``run.frames`` holds the
        callers (``saved``: their r6-r10, then with provenance those registers' tags)."""
        run, regs = self._start(memory, args, env)
        run.on_step = on_step
        r0 = _loop(self, regs, run)
        return ExecResult(r0, run.steps)

    def _start(self, memory: Memory, args: tuple[int, ...],
               env: Any) -> tuple[Execution, list[int]]:
        """A new run: r1.. = args, r10 = the top of a fresh main frame."""
        if len(args) > 5:
            raise ValueError("a program takes at most five arguments (r1-r5)")
        run = Execution(memory, env, self, self.max_steps)
        frame = run.stack_for(0)
        if self.provenance is None:
            regs = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, frame.end_address]
            for n, arg in enumerate(args, 1):
                regs[n] = arg & M64
        else:
            regs = [0] * 22
            regs[10] = frame.end_address
            regs[10 + TAG] = frame.base >> REGION_SHIFT
            mapped = memory._regions
            for n, arg in enumerate(args, 1):
                regs[n] = arg = arg & M64
                if arg >> REGION_SHIFT in mapped:
                    regs[n + TAG] = arg >> REGION_SHIFT
        run.regs = regs
        return run, regs

    def _restart(self, regs: list[int], run: Execution, ctx: int) -> None:
        """The register file for this program after a tail call: r1 = ctx (a pointer keeps
        its region: the call checked it), r10 = a fresh main frame."""
        frame = run.stack_for(0)
        regs[:] = [0] * 11
        regs[1] = ctx & M64
        regs[10] = frame.end_address
        if self.provenance is not None:
            regs += [0] * 11
            if run.memory.region_at(regs[1]) is not None:
                regs[1 + TAG] = regs[1] >> REGION_SHIFT
            regs[10 + TAG] = frame.base >> REGION_SHIFT

    def _run(self, regs: list[int], run: Execution) -> tuple[TailCall | None, int]:
        """One program from slot 0: (None, r0) at exit, (the tail call, 0) on a tail call."""
        if run.on_step is not None:
            return _run_program(self, regs, run, _traced(self._steps, run.on_step))
        return _run_program(self, regs, run)

    # ------------------------------------------------------------------ preparation
    def _prepare(self, insn: Instruction, slot: int) -> Step:
        cls = insn.cls
        tagged = self.provenance is not None
        if cls in (InsnClass.ALU, InsnClass.ALU64):
            return tagged_alu_step(insn, slot) if tagged else _alu_step(insn, slot)
        if cls in (InsnClass.JMP, InsnClass.JMP32):
            return self._jump_step(insn, slot)
        if insn.opcode == LDDW:
            return self._lddw_step(insn, slot)
        if cls == InsnClass.LD:
            raise LoadError("legacy packet access (BPF_LD_ABS/BPF_LD_IND) is not supported",
                            insn_index=slot)
        return tagged_memory_step(insn, slot) if tagged else _memory_step(insn, slot)

    def _lddw_step(self, insn: Instruction, slot: int) -> Step:
        d, nxt = insn.dst, slot + 2
        if insn.src == PseudoSrc.IMM64:
            value = insn.imm64
        elif insn.src == PseudoSrc.FUNC:
            value = slot + 1 + insn.imm  # a subprogram's address: its first slot
        elif self._resolve_lddw is None:
            raise LoadError(f"lddw {PseudoSrc(insn.src).name.lower()} needs a device to resolve "
                            "it; this engine has none", insn_index=slot)
        else:
            value = self._resolve_lddw(insn) & M64
        if self.provenance is not None:
            tag, td = lddw_tag(insn, value), d + TAG

            def tagged(r: list[int], ex: Execution) -> int:
                r[d] = value
                r[td] = tag
                return nxt
            return tagged

        def step(r: list[int], ex: Execution) -> int:
            r[d] = value
            return nxt
        return step

    def _jump_step(self, insn: Instruction, slot: int) -> Step:
        op = insn.jmp_op
        nxt = slot + 1
        if op == JmpOp.EXIT:
            return _exit_step if self.provenance is None else _tagged_exit_step
        if op == JmpOp.CALL:
            return self._call_step(insn, slot)
        target = slot + 1 + insn.jump_offset
        if op == JmpOp.JA:
            return lambda r, ex: target
        if op == JmpOp.JCOND:  # may_goto (the field checks admit no other condition)
            def may_goto(r: list[int], ex: Execution) -> int:
                depth = len(ex.frames)
                left = ex.loops[depth]
                if left:
                    ex.loops[depth] = left - 1
                    return nxt
                return target
            return may_goto
        d, s = insn.dst, insn.src
        wide = insn.cls == InsnClass.JMP
        if insn.source == Source.X:
            def step(r: list[int], ex: Execution) -> int:
                return target if jump_taken(op, r[d], r[s], wide=wide) else nxt
            return step
        imm = insn.imm & M64

        def step_imm(r: list[int], ex: Execution) -> int:
            return target if jump_taken(op, r[d], imm, wide=wide) else nxt
        return step_imm

    def _call_step(self, insn: Instruction, slot: int) -> Step:
        if self.provenance is not None:
            return self._tagged_call_step(insn, slot)
        nxt = slot + 1
        if insn.opcode == CALLX:
            d = insn.dst

            def callx(r: list[int], ex: Execution) -> int:
                fn = ex.program.helpers.get(r[d])
                if fn is None:
                    raise ExecutionError(f"callx to unknown helper #{r[d]}", insn_index=slot)
                r[0] = fn(ex, r[1], r[2], r[3], r[4], r[5]) & M64
                r[1] = r[2] = r[3] = r[4] = r[5] = 0
                return nxt
            return callx
        if insn.src == CallSrc.LOCAL:
            target = slot + 1 + insn.imm
            limit = self.max_call_frames

            def call_local(r: list[int], ex: Execution) -> int:
                if len(ex.frames) + 1 >= limit:
                    raise ExecutionError(
                        f"the call stack is too deep: more than {limit} frames", insn_index=slot)
                ex.frames.append(_Frame(nxt, (r[6], r[7], r[8], r[9], r[10])))
                r[10] = ex.stack_for(len(ex.frames)).end_address
                return target
            return call_local
        if insn.src == CallSrc.KFUNC:
            raise LoadError(f"calls to kernel functions (kfunc #{insn.imm}) are not supported",
                            insn_index=slot)
        fn = self.helpers.get(insn.imm)
        if fn is None:
            raise LoadError(f"invalid func unknown#{insn.imm}", insn_index=slot)
        if insn.imm in CALLBACK_HELPERS:
            return self._callback_step(slot, None)
        helper: Helper = fn

        def call(r: list[int], ex: Execution) -> int:
            r[0] = helper(ex, r[1], r[2], r[3], r[4], r[5]) & M64
            r[1] = r[2] = r[3] = r[4] = r[5] = 0
            return nxt
        return call

    def _callback_step(self, slot: int,
                       check_args: Callable[[list[int], Execution], None] | None) -> Step:
        """``call bpf_loop``: the engine runs the callback itself (:mod:`.callbacks`)."""
        tagged = self.provenance is not None

        def new_frame(return_pc: int, r: list[int], run: LoopRun) -> _Frame:
            saved: tuple[int, ...] = (r[6], r[7], r[8], r[9], r[10])
            if tagged:
                saved += (r[17], r[18], r[19], r[20], r[21])
            return _Frame(return_pc, saved, run)
        return loop_step(slot, lambda: self.layout.subprograms, self.max_call_frames,
                         new_frame, check_args)

    def _tagged_call_step(self, insn: Instruction, slot: int) -> Step:
        """Calls with provenance: helper arguments checked against their tags, pointer
        results tagged, r6-r10's tags saved across local calls."""
        nxt = slot + 1
        if insn.src == CallSrc.LOCAL and insn.opcode != CALLX:
            target = slot + 1 + insn.imm
            limit = self.max_call_frames

            def call_local(r: list[int], ex: Execution) -> int:
                if len(ex.frames) + 1 >= limit:
                    raise ExecutionError(
                        f"the call stack is too deep: more than {limit} frames", insn_index=slot)
                ex.frames.append(_Frame(nxt, (r[6], r[7], r[8], r[9], r[10],
                                              r[17], r[18], r[19], r[20], r[21])))
                frame = ex.stack_for(len(ex.frames))
                r[10] = frame.end_address
                r[21] = frame.base >> REGION_SHIFT
                return target
            return call_local
        if insn.opcode != CALLX and insn.src == CallSrc.KFUNC:
            raise LoadError(f"calls to kernel functions (kfunc #{insn.imm}) are not supported",
                            insn_index=slot)
        sigs = self.provenance or {}
        if insn.opcode == CALLX:
            d = insn.dst

            def callx(r: list[int], ex: Execution) -> int:
                fn = ex.program.helpers.get(r[d])
                sig = sigs.get(r[d])
                if fn is None or sig is None:
                    raise ExecutionError(f"callx to unknown helper #{r[d]}", insn_index=slot)
                return _tagged_call(fn, sig, r, ex, nxt)
            return callx
        fn = self.helpers.get(insn.imm)
        if fn is None:
            raise LoadError(f"invalid func unknown#{insn.imm}", insn_index=slot)
        sig = sigs.get(insn.imm)
        if sig is None:
            raise LoadError(f"helper #{insn.imm} has no prototype to check its pointer "
                            "arguments against", insn_index=slot)
        helper: Helper = fn
        checked: HelperSig = sig
        if insn.imm in CALLBACK_HELPERS:
            return self._callback_step(slot, lambda r, ex: check_helper_args(checked, r, ex))

        def call(r: list[int], ex: Execution) -> int:
            return _tagged_call(helper, checked, r, ex, nxt)
        return call


def _tagged_call(fn: Helper, sig: HelperSig, r: list[int], ex: Execution, nxt: int) -> int:
    if sig.args:
        check_helper_args(sig, r, ex)
    r0 = fn(ex, r[1], r[2], r[3], r[4], r[5]) & M64
    r[0] = r0
    r[TAG] = ex.memory.tag_of(r0) if sig.returns_pointer else 0
    r[1] = r[2] = r[3] = r[4] = r[5] = 0
    r[12] = r[13] = r[14] = r[15] = r[16] = 0
    return nxt


def _exit_step(r: list[int], ex: Execution) -> int:
    if not ex.frames:
        return EXIT_PC
    frame = ex.frames.pop()
    if frame.loop is not None:
        again = loop_exit(r, ex, frame)
        if again is not None:
            return again
    r[6], r[7], r[8], r[9], r[10] = frame.saved
    return frame.return_pc


def _tagged_exit_step(r: list[int], ex: Execution) -> int:
    if not ex.frames:
        return EXIT_PC
    frame = ex.frames.pop()
    if frame.loop is not None:
        again = loop_exit(r, ex, frame)
        if again is not None:
            return again
    r[6], r[7], r[8], r[9], r[10], r[17], r[18], r[19], r[20], r[21] = frame.saved
    return frame.return_pc


def _loop(program: Interpreter, regs: list[int], run: Execution) -> int:
    """Run until the main program exits; a tail call swaps the program and starts over."""
    call, r0 = program._run(regs, run)
    if call is None:
        return r0
    return _loop_after_tail_call(call, regs, run)


def _loop_after_tail_call(call: TailCall, regs: list[int], run: Execution) -> int:
    """Follow tail calls (at most MAX_TAIL_CALLS) until a program exits."""
    while True:
        if run.tail_calls >= MAX_TAIL_CALLS:
            raise ExecutionError(f"more than {MAX_TAIL_CALLS} tail calls",
                                 insn_index=call.slot)
        run.tail_calls += 1
        run.frames.clear()
        run.spills = None
        run.program = program = call.target
        program._restart(regs, run, call.ctx)
        next_call, r0 = program._run(regs, run)
        if next_call is None:
            return r0
        call = next_call


def _run_program(program: Interpreter, regs: list[int], run: Execution,
                 steps: Sequence[Step | None] | None = None) -> tuple[TailCall | None, int]:
    """Execute ``program`` (or ``steps`` standing for its instructions) from slot 0:
    (None, r0) at exit, (the call, 0) on a tail call."""
    if steps is None:
        steps = program._steps
    pc = current = 0
    budget = run.max_steps - run.steps
    count = 0
    try:
        while pc >= 0:
            count += 1
            if count > budget:
                raise ExecutionError(
                    f"instruction budget of {run.max_steps} exhausted (the program may not "
                    "terminate)", insn_index=pc)
            current = pc
            # an lddw's second slot is None; the layout admits no jump there
            pc = steps[current](regs, run)  # type: ignore[misc]  # see above
        return None, regs[0]
    except MemoryFault as fault:
        raise fault.at(current) from None
    except _Finish as finish:
        return None, finish.value
    except TailCall as call:
        call.slot = current
        return call, 0
    finally:
        run.steps += count


def _traced(steps: Sequence[Step | None],
            on_step: Callable[[int, list[int], Execution], None]) -> list[Step | None]:
    """The steps with ``on_step(pc, regs, run)`` called before each (the plain loop pays
    nothing for tracing)."""
    def wrap(pc: int, step: Step) -> Step:
        def traced(regs: list[int], run: Execution) -> int:
            on_step(pc, regs, run)
            return step(regs, run)
        return traced
    return [None if step is None else wrap(pc, step) for pc, step in enumerate(steps)]


def _alu_step(insn: Instruction, slot: int) -> Step:
    d, s = insn.dst, insn.src
    nxt = slot + 1
    op = insn.alu_op
    wide = insn.cls == InsnClass.ALU64
    if op == AluOp.END:
        width = insn.imm
        if wide or insn.source == Endian.TO_BE:
            return _end_step(d, nxt, lambda v: bswap(v, width))
        return _end_step(d, nxt, lambda v: to_little_endian(v, width))
    fn = (ALU64_OPS if wide else ALU32_OPS)[(op, insn.off)]
    if insn.source == Source.X:
        if wide:
            def step_reg(r: list[int], ex: Execution) -> int:
                r[d] = fn(r[d], r[s])
                return nxt
            return step_reg

        def step_reg32(r: list[int], ex: Execution) -> int:
            r[d] = fn(r[d] & M32, r[s] & M32)
            return nxt
        return step_reg32
    imm = insn.imm & (M64 if wide else M32)
    if wide:
        def step_imm(r: list[int], ex: Execution) -> int:
            r[d] = fn(r[d], imm)
            return nxt
        return step_imm

    def step_imm32(r: list[int], ex: Execution) -> int:
        r[d] = fn(r[d] & M32, imm)
        return nxt
    return step_imm32


def _end_step(d: int, nxt: int, convert: Callable[[int], int]) -> Step:
    def step(r: list[int], ex: Execution) -> int:
        r[d] = convert(r[d])
        return nxt
    return step


def _memory_step(insn: Instruction, slot: int) -> Step:
    d, s, off = insn.dst, insn.src, insn.off
    nxt = slot + 1
    size = insn.size.nbytes
    cls, mode = insn.cls, insn.mode
    if cls == InsnClass.LDX:
        if mode == Mode.MEMSX:
            bits = size * 8

            def load_sx(r: list[int], ex: Execution) -> int:
                r[d] = sign_extend(ex.memory.load((r[s] + off) & M64, size), bits)
                return nxt
            return load_sx

        def load(r: list[int], ex: Execution) -> int:
            r[d] = ex.memory.load((r[s] + off) & M64, size)
            return nxt
        return load
    if cls == InsnClass.ST:
        value = insn.imm & M64

        def store_imm(r: list[int], ex: Execution) -> int:
            ex.memory.store((r[d] + off) & M64, size, value)
            return nxt
        return store_imm
    if mode == Mode.ATOMIC:
        return _atomic_step(insn, slot)

    def store(r: list[int], ex: Execution) -> int:
        ex.memory.store((r[d] + off) & M64, size, r[s])
        return nxt
    return store


def _atomic_step(insn: Instruction, slot: int) -> Step:
    """Atomic read-modify-write (RFC 9669 section 5.3); runs are single-threaded, so the
    read and the write simply happen in one step."""
    d, s, off = insn.dst, insn.src, insn.off
    nxt = slot + 1
    size = insn.size.nbytes
    mask = (1 << (size * 8)) - 1
    imm = insn.imm
    if imm == AtomicOp.CMPXCHG:
        def cmpxchg(r: list[int], ex: Execution) -> int:
            address = (r[d] + off) & M64
            old = ex.memory.load(address, size)
            if old == r[0] & mask:
                ex.memory.store(address, size, r[s])
            r[0] = old
            return nxt
        return cmpxchg
    if imm == AtomicOp.XCHG:
        def xchg(r: list[int], ex: Execution) -> int:
            address = (r[d] + off) & M64
            old = ex.memory.load(address, size)
            ex.memory.store(address, size, r[s])
            r[s] = old
            return nxt
        return xchg
    combine = ATOMIC_ARITH[imm & ~ATOMIC_FETCH]
    fetch = bool(imm & ATOMIC_FETCH)

    def rmw(r: list[int], ex: Execution) -> int:
        address = (r[d] + off) & M64
        old = ex.memory.load(address, size)
        ex.memory.store(address, size, combine(old, r[s]) & mask)
        if fetch:
            r[s] = old
        return nxt
    return rmw
