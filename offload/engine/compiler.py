"""Translation of a checked program into Python source: the fast engine's back end.

Each subprogram becomes one Python function whose registers are local variables; basic
blocks become straight-line code selected by a small decision tree on ``pc``, and a block that
jumps back to itself becomes a ``while`` loop. Constants are folded into the text. Memory
accesses inline the region lookup of :class:`~.memory.Memory` and fall back to it only to
raise the very same :class:`~.memory.MemoryFault`, attributed to the same instruction as the
reference interpreter would; ``call local`` is a Python call, so r6-r9 of the caller survive
by construction. The output is pure text - compiling and running it is ``fast.py``'s job.

With the verifier's facts (:mod:`.facts`), an access proven in bounds of one region indexes
that region alone without a bounds check (the packet buffer, the stack frame the fact names, a
value of the map it names - its owner is checked); any other access checks its bounds and that
the region it reaches is one the verifier proved it may reach; an access the verifier never
saw faults. Names the code needs from the device are listed in :attr:`Translator.names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from ..isa.structure import Layout
from .alu import M32, M64
from .facts import AccessFact, CallFact, Fact, NoWrapFact, Reach
from .interpreter import LoadError
from .memory import RegionKind

S64 = 1 << 63
S32 = 1 << 31

_STRUCT = {1: "B", 2: "H", 4: "I", 8: "Q"}
STACK_BYTES = 512
_NO_WRAP_FORMS = {AluOp.ADD: "{a} + {s}", AluOp.SUB: "{a} - {s}", AluOp.MUL: "{a} * {s}",
                  AluOp.LSH: "{a} << ({s} & 63)"}


def _u64(value: int) -> str:
    return hex(value & M64)


def _signed64_expr(expr: str) -> str:
    return f"((({expr}) ^ {hex(S64)}) - {hex(S64)})"


def _signed32_expr(expr: str) -> str:
    return f"(((({expr}) & {hex(M32)}) ^ {hex(S32)}) - {hex(S32)})"


class _Emitter:
    """Lines of source, each remembered with the slot it was emitted for (so an internal
    error in the generated code can name its instruction)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.slots: list[int] = []
        self.slot = 0

    def __call__(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)
        self.slots.append(self.slot)


class Translator:
    """Turns a :class:`Layout` into the source of ``def program(ex, r1, ..., r5)``.

    ``resolved`` maps the slot of each pseudo ``lddw`` to its value (bound as constants
    ``K<slot>`` in the namespace); helper functions are bound as ``H<id>``.

    ``facts`` (slot -> :data:`~.facts.Fact`) are the verifier's; each must apply to the
    instruction at its slot. Given facts, the translation is of a verified program: accesses
    without one are refused when they run.
    """

    def __init__(self, layout: Layout, *, max_call_frames: int,
                 facts: Mapping[int, Fact] | None = None) -> None:
        self.layout = layout
        self.max_call_frames = max_call_frames
        self.verified = facts is not None
        self.facts: dict[int, Fact] = dict(facts or {})
        for slot, fact in self.facts.items():
            insn = layout.slots[slot] if 0 <= slot < layout.size else None
            if insn is None or not fact.applies_to(insn):
                raise LoadError(f"the verifier's fact ({fact}) does not apply to this "
                                f"instruction ({insn})", insn_index=slot)
        #: What the code needs bound besides the base namespace, by name: ("map", handle)
        #: for the owner of a map's values; ("map pointer", handle) for the pointer an lddw
        #: of that map loads; ("owners", reach) for the owners of the map values a reach
        #: allows (a container); ("printed", args) for what a helper call's printed
        #: arguments may reach (``Execution.arg_reach``).
        self.names: dict[str, tuple[str, Any]] = {}
        self._shift = 0  # 1 while emitting an inlined call: the callee's frame is depth + 1
        self.leaders = layout.block_leaders()
        self._leader_set = set(self.leaders)
        self._predecessors = self._count_predecessors()
        self._loop_heads = self._find_loop_heads()

    def _find_loop_heads(self) -> set[int]:
        """Blocks a backward jump lands on: every cycle passes through one, so checking the
        budget there (and not in every block) still stops any run that does not end."""
        heads = set()
        for slot, insn in enumerate(self.layout.slots):
            if insn is not None and insn.is_jump and insn.jump_offset < 0:
                heads.add(slot + 1 + insn.jump_offset)
        return heads

    def _count_predecessors(self) -> dict[int, int]:
        """Edges into each block; entries of functions count one more (their callers)."""
        count = dict.fromkeys(self.leaders, 0)
        for start in self.layout.subprograms:
            count[start] += 1
        for start in self.leaders:
            last_slot = self._block_slots(start)[-1]
            last = self.layout.slots[last_slot]
            assert last is not None
            if last.is_exit:
                continue
            if last.is_jump:
                count[last_slot + 1 + last.jump_offset] += 1
                if last.is_unconditional_jump:
                    continue
            follower = last_slot + last.width
            if follower in count:
                count[follower] += 1
        return count

    def _chained(self, slot: int, end: int) -> bool:
        """Whether the block at ``slot`` is entered only by falling through into it, so it
        can follow its predecessor inline instead of going through the dispatch."""
        return slot < end and self._predecessors.get(slot) == 1 and \
            slot not in self.layout.subprograms

    # ------------------------------------------------------------------ functions
    def source(self) -> str:
        return self.emit()[0]

    def emit(self) -> tuple[str, list[int]]:
        """The source, and the slot each of its lines (from line 1) belongs to."""
        out = _Emitter()
        for number, start in enumerate(self.layout.subprograms):
            self._function(out, number, start)
        return "\n".join(out.lines) + "\n", out.slots

    def _function(self, out: _Emitter, number: int, start: int) -> None:
        _, end = self.layout.subprogram_bounds(number)
        blocks = [s for s in self.leaders if start <= s < end
                  and (s == start or not self._falls_into(s, end))]
        out(0, f"def F{start}(ex, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, depth):")
        out.slot = start
        out(1, "mem = ex.memory")
        out(1, "R = mem._regions")
        out(1, "SR = R[r10 >> 32]")
        out(1, "S = SR.buffer")
        # program-wide: a leaf call inlined here may use them too
        if any(_proven(fact, RegionKind.PACKET) for fact in self.facts.values()):
            out(1, "P = ex.env.packet")
            out(1, "PB = P.buffer")
            out(1, "PBASE = P.base")
        if any(_proven(fact, RegionKind.STACK) for fact in self.facts.values()):
            out(1, "SB = SR.base")
        out(1, "steps = ex.steps")
        out(1, "budget = ex.max_steps")
        if any(insn is not None and insn.is_may_goto for insn in self.layout.slots[start:end]):
            out(1, "loops = ex.loops[depth]")  # this frame's may_goto counter
        out(1, f"pc = {start}")
        out(1, "while True:")
        self._dispatch(out, 2, blocks, end)

    def _falls_into(self, slot: int, end: int) -> bool:
        """A chained block (emitted inline after the block before it)."""
        if not self._chained(slot, end):
            return False
        previous = max(s for s in self.leaders if s < slot)
        last_slot = self._block_slots(previous)[-1]
        last = self.layout.slots[last_slot]
        assert last is not None
        return not (last.is_exit or last.is_unconditional_jump) and \
            last_slot + last.width == slot

    def _dispatch(self, out: _Emitter, depth: int, blocks: list[int], end: int) -> None:
        if len(blocks) == 1:
            self._block(out, depth, blocks[0], end)
            return
        middle = len(blocks) // 2
        out(depth, f"if pc < {blocks[middle]}:")
        self._dispatch(out, depth + 1, blocks[:middle], end)
        out(depth, "else:")
        self._dispatch(out, depth + 1, blocks[middle:], end)

    def _block_slots(self, start: int) -> list[int]:
        slots = []
        slot = start
        size = self.layout.size
        while slot < size:
            insn = self.layout.slots[slot]
            assert insn is not None
            slots.append(slot)
            if insn.is_jump or insn.is_exit:
                break
            slot += insn.width
            if slot in self._leader_set:
                break
        return slots

    def _self_loop(self, start: int) -> bool:
        last_slot = self._block_slots(start)[-1]
        last = self.layout.slots[last_slot]
        assert last is not None
        return last.is_jump and not last.is_unconditional_jump and (
            last_slot + 1 + last.jump_offset == start)

    def _block(self, out: _Emitter, depth: int, start: int, end: int) -> None:
        """A block, then every block chained after it, as straight-line code."""
        while True:
            slots = self._block_slots(start)
            self_loop = self._self_loop(start)
            body = depth
            if self_loop:
                out(depth, "while True:")
                body = depth + 1
            out(body, f"steps += {len(slots)}")
            if start in self._loop_heads or self_loop:
                out(body, "if steps > budget:")
                out(body + 1, f"raise BudgetExhausted(budget, {start})")
            for slot in slots[:-1]:
                self._instruction(out, body, slot)
            follower = self._terminator(out, body, slots[-1], self_loop, end)
            if self_loop:  # a conditional jump is never last in a subprogram (structure check)
                follower = slots[-1] + 1
                if not self._chained(follower, end):
                    out(depth, f"pc = {follower}")
                    return
            if follower is None:
                return
            start = follower

    # ------------------------------------------------------------------ terminators
    def _terminator(self, out: _Emitter, depth: int, slot: int, self_loop: bool,
                    end: int) -> int | None:
        """Emit the block's last instruction; return the block to continue with inline."""
        insn = self.layout.slots[slot]
        assert insn is not None
        out.slot = slot
        if insn.is_exit:
            out(depth, "ex.steps = steps")
            out(depth, "return r0, r1, r2, r3, r4, r5")
            return None
        if insn.is_jump:
            target = slot + 1 + insn.jump_offset
            if insn.is_unconditional_jump:
                out(depth, f"pc = {target}")
                return None
            cond = self._condition(insn)
            if self_loop:
                out(depth, f"if {cond}:")
                out(depth + 1, "continue")
                out(depth, "break")
                return None
            if self._chained(slot + 1, end):
                out(depth, f"if {cond}:")
                out(depth + 1, f"pc = {target}")
                out(depth + 1, "continue")
                return slot + 1
            out(depth, f"pc = {target} if {cond} else {slot + 1}")
            return None
        self._instruction(out, depth, slot)
        follower = slot + insn.width
        if self._chained(follower, end):
            return follower
        out(depth, f"pc = {follower}")
        return None

    def _condition(self, insn: Instruction) -> str:
        op = insn.jmp_op
        if op == JmpOp.JCOND:
            # may_goto: taken once the frame's counter is used up; below zero stays taken
            return "(loops := loops - 1) < 0"
        wide = insn.cls == InsnClass.JMP
        d = f"r{insn.dst}"
        if insn.source == Source.X:
            s = f"r{insn.src}"
        else:
            s = hex(insn.imm & (M64 if wide else M32))
        if not wide:
            d = f"({d} & {hex(M32)})"
            if insn.source == Source.X:
                s = f"({s} & {hex(M32)})"
        if op in (JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT, JmpOp.JSLE):
            convert = _signed64_expr if wide else _signed32_expr
            d = convert(d)
            if insn.source == Source.X:
                s = convert(s)
            else:
                value = insn.imm  # already the signed immediate
                s = str(value)
        return {
            JmpOp.JEQ: f"{d} == {s}", JmpOp.JNE: f"{d} != {s}", JmpOp.JGT: f"{d} > {s}",
            JmpOp.JGE: f"{d} >= {s}", JmpOp.JLT: f"{d} < {s}", JmpOp.JLE: f"{d} <= {s}",
            JmpOp.JSET: f"({d} & {s}) != 0", JmpOp.JSGT: f"{d} > {s}",
            JmpOp.JSGE: f"{d} >= {s}", JmpOp.JSLT: f"{d} < {s}", JmpOp.JSLE: f"{d} <= {s}",
        }[op]

    # ------------------------------------------------------------------ instructions
    def _instruction(self, out: _Emitter, depth: int, slot: int) -> None:
        insn = self.layout.slots[slot]
        assert insn is not None
        out.slot = slot
        cls = insn.cls
        if cls in (InsnClass.ALU, InsnClass.ALU64):
            out(depth, self._alu(insn, slot))
        elif insn.opcode == LDDW:
            value = f"K{slot}" if insn.src != PseudoSrc.IMM64 else hex(insn.imm64)
            out(depth, f"r{insn.dst} = {value}")
        elif insn.is_call:
            self._call(out, depth, insn, slot)
        elif cls == InsnClass.LDX:
            self._load(out, depth, insn, slot)
        elif cls == InsnClass.ST:
            self._store(out, depth, insn, slot, hex(insn.imm & M64))
        elif insn.mode == Mode.ATOMIC:
            self._atomic(out, depth, insn, slot)
        else:
            self._store(out, depth, insn, slot, f"r{insn.src}")

    def _alu(self, insn: Instruction, slot: int) -> str:
        d = f"r{insn.dst}"
        wide = insn.cls == InsnClass.ALU64
        op = insn.alu_op
        if op == AluOp.END:
            width = insn.imm
            if (wide or insn.source == Endian.TO_BE) and width == 16:
                return f"{d} = (({d} & 0xff) << 8) | (({d} >> 8) & 0xff)"
            if wide or insn.source == Endian.TO_BE:
                return f"{d} = BSWAP({d}, {width})"
            return f"{d} = {d} & {hex((1 << width) - 1)}"
        mask = hex(M64 if wide else M32)
        if insn.source == Source.X:
            s = f"r{insn.src}" if wide else f"(r{insn.src} & {hex(M32)})"
        else:
            s = hex(insn.imm & (M64 if wide else M32))
        a = d if wide else f"({d} & {hex(M32)})"
        bits = 63 if wide else 31
        simple = {
            AluOp.ADD: f"({a} + {s}) & {mask}",
            AluOp.SUB: f"({a} - {s}) & {mask}",
            AluOp.MUL: f"({a} * {s}) & {mask}",
            AluOp.OR: f"{a} | {s}",
            AluOp.AND: f"{a} & {s}",
            AluOp.XOR: f"{a} ^ {s}",
            AluOp.LSH: f"({a} << ({s} & {bits})) & {mask}",
            AluOp.RSH: f"{a} >> ({s} & {bits})",
            AluOp.NEG: f"-{a} & {mask}",
        }
        if wide and isinstance(self.facts.get(slot), NoWrapFact) and op in _NO_WRAP_FORMS:
            # The verifier proved the result stays below 2**64 on every path: no reduction.
            return f"{d} = {_NO_WRAP_FORMS[op].format(a=a, s=s)}"
        if op in simple and insn.off == 0:
            return f"{d} = {simple[op]}"
        if op == AluOp.MOV and insn.off == 0:
            return f"{d} = {s}"
        if op == AluOp.DIV and insn.off == 0:
            return f"{d} = ({a} // {s}) if {s} else 0"
        if op == AluOp.MOD and insn.off == 0:
            return f"{d} = ({a} % {s}) if {s} else {a}"
        table = "ALU64" if wide else "ALU32"
        return f"{d} = {table}[({int(op)}, {insn.off})]({a}, {s})"

    def _address(self, out: _Emitter, depth: int, base: int, off: int) -> None:
        out(depth, f"a = (r{base} + {off}) & {hex(M64)}" if off else f"a = r{base}")
        out(depth, "g = R.get(a >> 32)")

    @staticmethod
    def _in_frame(base: int, off: int, size: int) -> bool:
        """An access at r10+off that lies inside the 512-byte frame whatever the run: r10 is
        read-only and always the frame's end, so no lookup or bounds check is needed."""
        return base == 10 and -STACK_BYTES <= off and off + size <= 0

    def _load(self, out: _Emitter, depth: int, insn: Instruction, slot: int) -> None:
        size = insn.size.nbytes
        sx = insn.mode == Mode.MEMSX
        if self._in_frame(insn.src, insn.off, size):
            value = f"S[{STACK_BYTES + insn.off}]" if size == 1 else \
                f"UNPACK_{_STRUCT[size]}(S, {STACK_BYTES + insn.off})[0]"
            out(depth, f"r{insn.dst} = {_sext(value, size) if sx else value}")
            return
        fact = self._access_fact(out, depth, insn, slot)
        if fact is not None and fact.proven and fact.single:
            self._proven_load(out, depth, insn, slot, fact)
            return
        self._address(out, depth, insn.src, insn.off)
        if fact is not None:
            self._check_reach(out, depth, slot, fact, f"R{insn.src}", "a", size, False)
            out(depth, "if g.reader is not None or not "
                       f"(g.start <= a - g.base <= g.end - {size}):")
        else:
            out(depth, "if g is None or g.reader is not None or not "
                       f"(g.start <= a - g.base <= g.end - {size}):")
        fast = f"UNPACK_{_STRUCT[size]}(g.buffer, a - g.base)[0]"
        slow = f"LOAD(mem, {slot}, a, {size})"
        out(depth + 1, f"r{insn.dst} = {_sext(slow, size) if sx else slow}")
        out(depth, "else:")
        out(depth + 1, f"r{insn.dst} = {_sext(fast, size) if sx else fast}")

    def _store(self, out: _Emitter, depth: int, insn: Instruction, slot: int,
               value: str) -> None:
        size = insn.size.nbytes
        mask = hex((1 << (size * 8)) - 1)
        if self._in_frame(insn.dst, insn.off, size):
            if size == 1:
                out(depth, f"S[{STACK_BYTES + insn.off}] = {value} & 0xff")
            else:
                out(depth, f"PACK_{_STRUCT[size]}(S, {STACK_BYTES + insn.off}, "
                           f"{value} & {mask})")
            return
        fact = self._access_fact(out, depth, insn, slot)
        if fact is not None and fact.proven and fact.single:
            buffer, index = self._proven_place(out, depth, insn.dst, insn.off, slot, fact,
                                               size, True)
            if size == 1:
                out(depth, f"{buffer}[{index}] = {value} & 0xff")
            else:
                out(depth, f"PACK_{_STRUCT[size]}({buffer}, {index}, {value} & {mask})")
            return
        self._address(out, depth, insn.dst, insn.off)
        if fact is not None:
            self._check_reach(out, depth, slot, fact, f"R{insn.dst}", "a", size, True)
            out(depth, "if not g.writable or not "
                       f"(g.start <= a - g.base <= g.end - {size}):")
        else:
            out(depth, "if g is None or not g.writable or not "
                       f"(g.start <= a - g.base <= g.end - {size}):")
        out(depth + 1, f"FAULT(mem, {slot}, a, {size}, True)")
        out(depth, f"PACK_{_STRUCT[size]}(g.buffer, a - g.base, {value} & {mask})")

    def _access_fact(self, out: _Emitter, depth: int, insn: Instruction,
                     slot: int) -> AccessFact | None:
        """The verifier's fact for this access; in a verified program, an access without one
        was never reached by the verifier: running it is refused."""
        fact = self.facts.get(slot)
        if isinstance(fact, AccessFact):
            return fact
        if self.verified:
            reg = insn.src if insn.cls == InsnClass.LDX else insn.dst
            write = insn.cls != InsnClass.LDX
            out(depth, f"a = (r{reg} + {insn.off}) & {hex(M64)}")
            out(depth, f"UNVERIFIED(mem, {slot}, a, {insn.size.nbytes}, {write}, 'R{reg}')")
        return None

    def _proven_load(self, out: _Emitter, depth: int, insn: Instruction, slot: int,
                     fact: AccessFact) -> None:
        """A load the verifier proved in bounds of one region: no bounds check (a verifier
        bug shows up as an internal ExecutionError, see fast.py, or stays inside it)."""
        size = insn.size.nbytes
        (kind,) = fact.kinds
        if kind == RegionKind.CONTEXT:
            self._address(out, depth, insn.src, insn.off)
            self._check_reach(out, depth, slot, fact, f"R{insn.src}", "a", size, False)
            value = f"g.reader(a - g.base, {size})[0]"
        else:
            buffer, index = self._proven_place(out, depth, insn.src, insn.off, slot, fact,
                                               size, False)
            value = f"{buffer}[{index}]" if size == 1 else \
                f"UNPACK_{_STRUCT[size]}({buffer}, {index})[0]"
        if insn.mode == Mode.MEMSX:
            value = _sext(value, size)
        out(depth, f"r{insn.dst} = {value}")

    def _proven_place(self, out: _Emitter, depth: int, reg: int, off: int, slot: int,
                      fact: AccessFact, size: int, write: bool) -> tuple[str, str]:
        """The buffer and index of a proven packet, stack or map value access: only the
        region the fact names is ever indexed."""
        (kind,) = fact.kinds
        if kind == RegionKind.PACKET:  # a proven packet pointer: no wrap-around to mask
            return "PB", _packet_index(reg, off)
        if kind == RegionKind.STACK:
            (frame,) = fact.frames
            if frame == self._shift:
                return "S", _offset_index(reg, off, "SB")
            out(depth, f"g = FRAME_AT(mem, depth + {self._shift - frame})")
            out(depth, "if g is None:")
            out(depth + 1, f"PFAULT(mem, {slot}, (r{reg} + {off}) & {hex(M64)}, {size}, "
                           f"{write}, 'R{reg}', {fact.describe()!r})")
            return "g.buffer", _offset_index(reg, off, "g.base")
        out(depth, f"a = (r{reg} + {off}) & {hex(M64)}" if off else f"a = r{reg}")
        out(depth, "g = R.get(a >> 32)")
        self._check_reach(out, depth, slot, fact, f"R{reg}", "a", size, write)
        return "g.buffer", "a - g.base"

    def _reach_test(self, reach: Reach) -> str:
        """An expression true when region ``g`` is memory ``reach`` allows."""
        tests = []
        for kind in sorted(reach.kinds, key=lambda k: k.value):
            if kind == RegionKind.CONTEXT:
                tests.append("g.kind is K_CONTEXT")
            elif kind == RegionKind.PACKET:
                tests.append("g.kind is K_PACKET")
            elif kind == RegionKind.RINGBUF:
                tests.append("g.kind is K_RINGBUF")
            elif kind == RegionKind.STACK:
                for frame in sorted(reach.frames):
                    tests.append("g is SR" if frame == self._shift else
                                 f"g is FRAME_AT(mem, depth + {self._shift - frame})")
            elif kind == RegionKind.MAP_VALUE:
                if len(reach.maps) == 1 and not reach.inner_of:
                    (handle,) = reach.maps
                    self.names[f"M{handle}"] = ("map", handle)
                    tests.append(f"g.owner is M{handle}")
                else:
                    name = f"MS{len(self.names)}"
                    self.names[name] = ("owners", reach)
                    tests.append(f"g.owner in {name}")
        return " or ".join(tests) or "False"

    def _check_reach(self, out: _Emitter, depth: int, slot: int, reach: Reach, who: str,
                     address: str, size: int, write: bool) -> None:
        """Fault unless region ``g`` (looked up for ``address``) is one ``reach`` allows."""
        out(depth, f"if g is None or not ({self._reach_test(reach)}):")
        out(depth + 1, f"PFAULT(mem, {slot}, {address}, {size}, {write}, {who!r}, "
                       f"{reach.describe()!r})")

    def _atomic(self, out: _Emitter, depth: int, insn: Instruction, slot: int) -> None:
        size = insn.size.nbytes
        mask = hex((1 << (size * 8)) - 1)
        d, s = f"r{insn.dst}", f"r{insn.src}"
        fact = self._access_fact(out, depth, insn, slot)
        out(depth, f"a = ({d} + {insn.off}) & {hex(M64)}")
        if fact is not None:
            out(depth, "g = R.get(a >> 32)")
            self._check_reach(out, depth, slot, fact, d.upper(), "a", size, True)
        out(depth, "try:")
        out(depth + 1, f"old = mem.load(a, {size})")
        if insn.imm == AtomicOp.CMPXCHG:
            out(depth + 1, f"if old == r0 & {mask}:")
            out(depth + 2, f"mem.store(a, {size}, {s})")
            out(depth + 1, "r0 = old")
        elif insn.imm == AtomicOp.XCHG:
            out(depth + 1, f"mem.store(a, {size}, {s})")
            out(depth + 1, f"{s} = old")
        else:
            symbol = {AtomicOp.ADD: "+", AtomicOp.OR: "|", AtomicOp.AND: "&",
                      AtomicOp.XOR: "^"}[AtomicOp(insn.imm & ~ATOMIC_FETCH)]
            out(depth + 1, f"mem.store(a, {size}, (old {symbol} {s}) & {mask})")
            if insn.imm & ATOMIC_FETCH:
                out(depth + 1, f"{s} = old")
        out(depth, "except MemoryFault as fault:")
        out(depth + 1, f"raise fault.at({slot}) from None")

    def _check_call(self, out: _Emitter, depth: int, slot: int, fact: CallFact) -> None:
        """A helper's pointer arguments must reach what the verifier proved they reach, and
        its map pointers be maps the verifier saw there."""
        for arg in fact.memory:
            reg = f"r{arg.regno}"
            inner = depth
            if arg.nullable:
                out(depth, f"if {reg}:")
                inner = depth + 1
            out(inner, f"g = R.get({reg} >> 32)")
            self._check_reach(out, inner, slot, arg, f"R{arg.regno}", reg, 0, False)
        for regno, handles in fact.map_args:
            self.names.update((f"MP{h}", ("map pointer", h)) for h in handles)
            allowed = " and ".join(f"r{regno} != MP{h}" for h in sorted(handles))
            out(depth, f"if {allowed or 'True'}:")
            out(depth + 1, f"PFAULT(mem, {slot}, r{regno}, 0, False, 'R{regno}', "
                           f"'a map pointer the program loaded')")

    def _call(self, out: _Emitter, depth: int, insn: Instruction, slot: int) -> None:
        args = "r1, r2, r3, r4, r5"
        if insn.is_local_call:
            target = slot + 1 + insn.imm
            out(depth, f"if depth + 2 > {self.max_call_frames}:")
            out(depth + 1, f"raise TooDeep({self.max_call_frames}, {slot})")
            inline = self._inlinable(target)
            if inline is not None:
                self._inline_call(out, depth, inline)
                return
            out(depth, "ex.steps = steps")
            out(depth, f"r0, r1, r2, r3, r4, r5 = F{target}(ex, r0, {args}, r6, r7, r8, r9, "
                       "ex.stack_for(depth + 1).end_address, depth + 1)")
            out(depth, "steps = ex.steps")
            return
        if insn.src == CallSrc.HELPER and insn.opcode != CALLX and \
                insn.imm in CALLBACK_HELPERS:
            self._loop_call(out, depth, slot)
            return
        fact = self.facts.get(slot)
        if isinstance(fact, CallFact):
            self._check_call(out, depth, slot, fact)
            if fact.printed:
                self.names[f"PR{slot}"] = ("printed", fact.printed)
                out(depth, f"ex.arg_reach = PR{slot}")
        out(depth, "ex.steps = steps")
        out(depth, "try:")
        if insn.opcode == CALLX:
            out(depth + 1, f"r0 = CALLX(ex, r{insn.dst}, {slot})({args}) & {hex(M64)}")
        else:
            assert insn.src == CallSrc.HELPER
            out(depth + 1, f"r0 = H{insn.imm}(ex, {args}) & {hex(M64)}")
        out(depth, "except MemoryFault as fault:")
        out(depth + 1, f"raise fault.at({slot}) from None")
        out(depth, "except TailCall as call:")
        out(depth + 1, f"call.slot = {slot}")
        out(depth + 1, "raise")
        if isinstance(fact, CallFact) and fact.printed:
            out(depth, "ex.arg_reach = NO_REACH")
        out(depth, "r1 = r2 = r3 = r4 = r5 = 0")


    def _loop_call(self, out: _Emitter, depth: int, slot: int) -> None:
        """``bpf_loop`` (``callbacks.py``): the callback's function called in a Python loop,
        each call in a fresh frame one deeper, the step budget checked after each."""
        out(depth, "r0 = LOOP_REFUSAL(r1, r4)")
        out(depth, "if r0 is None:")
        body = depth + 1
        out(body, "cb = FUNCS.get(r2)")
        out(body, "if cb is None:")
        out(body + 1, f"raise NotCallback(r2, {slot})")
        out(body, f"if depth + 2 > {self.max_call_frames}:")
        out(body + 1, f"raise TooDeep({self.max_call_frames}, {slot})")
        out(body, "n = r1 & 0xffffffff")
        out(body, "r0 = 0")
        out(body, "ex.steps = steps")
        out(body, "while r0 < n:")
        out(body + 1, "stop = cb(ex, 0, r0, r3, 0, 0, 0, 0, 0, 0, 0, "
                      "ex.stack_for(depth + 1).end_address, depth + 1)[0]")
        out(body + 1, "r0 += 1")
        out(body + 1, "if ex.steps > budget:")
        out(body + 2, f"raise BudgetExhausted(budget, {slot})")
        out(body + 1, "if stop:")
        out(body + 2, "break")
        out(body, "steps = ex.steps")
        out(depth, "r1 = r2 = r3 = r4 = r5 = 0")

    def _inlinable(self, target: int) -> list[int] | None:
        """The slots of a leaf subprogram that can stand in the caller's code: one straight
        block ending in exit, no calls, and no use of r10 (so its own stack frame, which the
        caller cannot see, is never touched)."""
        number = self.layout.subprograms.index(target)
        start, end = self.layout.subprogram_bounds(number)
        slots = [s for s in range(start, end) if self.layout.slots[s] is not None]
        if len(slots) > 32:
            return None
        for slot in slots:
            insn = self.layout.slots[slot]
            assert insn is not None
            if insn.is_call or insn.is_jump or insn.opcode == LDDW and insn.src != \
                    PseudoSrc.IMM64 or 10 in (insn.dst, insn.src):
                return None
            if insn.is_exit and slot != slots[-1]:
                return None
        last = self.layout.slots[slots[-1]]
        return slots if last is not None and last.is_exit else None

    def _inline_call(self, out: _Emitter, depth: int, slots: list[int]) -> None:
        """A leaf call as straight-line code; r6-r9 keep the caller's values, as ``exit``
        restores them."""
        written = sorted({insn.dst for insn in (self.layout.slots[s] for s in slots)
                          if insn is not None and 6 <= insn.dst <= 9 and _writes(insn)} |
                         {insn.src for insn in (self.layout.slots[s] for s in slots)
                          if insn is not None and 6 <= insn.src <= 9 and _fetches(insn)})
        for reg in written:
            out(depth, f"k{reg} = r{reg}")
        out(depth, f"steps += {len(slots)}")
        self._shift += 1
        for slot in slots[:-1]:
            self._instruction(out, depth, slot)
        self._shift -= 1
        for reg in written:
            out(depth, f"r{reg} = k{reg}")


def _packet_index(reg: int, off: int) -> str:
    """Where ``[rN+off]`` lies in the packet buffer, for a proven packet pointer."""
    return _offset_index(reg, off, "PBASE")


def _offset_index(reg: int, off: int, base: str) -> str:
    """Where ``[rN+off]`` lies in a buffer mapped at ``base``."""
    return f"r{reg} - {base} + {off}" if off else f"r{reg} - {base}"


def _sext(value: str, size: int) -> str:
    return f"SEXT({value}, {size * 8})"


def _proven(fact: Fact | None, kind: RegionKind) -> bool:
    """A proven access to one region of this kind (the function binds its buffer)."""
    return isinstance(fact, AccessFact) and fact.proven and fact.single and \
        kind in fact.kinds


def _writes(insn: Instruction) -> bool:
    """Whether an instruction (of a leaf subprogram) sets its dst register."""
    return insn.cls in (InsnClass.ALU, InsnClass.ALU64, InsnClass.LDX) or insn.opcode == LDDW


def _fetches(insn: Instruction) -> bool:
    """Whether an atomic fetch or exchange writes its src register."""
    return insn.cls == InsnClass.STX and insn.mode == Mode.ATOMIC and bool(
        insn.imm & ATOMIC_FETCH)


def translate(layout: Layout, *, max_call_frames: int,
              facts: Mapping[int, Fact] | None = None) -> str:
    """The Python source for a program: one function ``F<slot>`` per subprogram."""
    return Translator(layout, max_call_frames=max_call_frames, facts=facts).source()

