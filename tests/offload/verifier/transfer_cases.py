"""Abstract operands, their concrete members, and both sides of one instruction.

The transfer-function tests compare what the verifier believes an instruction gives with what
the reference interpreter computes. An operand is a ``Scalar`` together with concrete values
it stands for: small operands (a tnum with a few unknown bits at interesting positions, a short
range across a sign or word boundary) are enumerated exactly, large ones are sampled at their
bounds and inside. Both sides run the real instruction: the verifier's ``check_alu`` /
``branch`` on a state holding the operands in r1 and r2, and the interpreter's prepared step
for the same ``Instruction`` on concrete registers.

``OFFLOAD_TRANSFER_EXAMPLES`` (a number) scales every test up for a slow, thorough run: it
becomes the hypothesis example count (then drawn at random instead of derandomized) and the
number of exhaustive operand pairs per instruction.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from offload.engine.interpreter import Interpreter
from offload.isa.instruction import VALID_OPCODES, Instruction
from offload.isa.opcodes import AluOp, Endian, InsnClass, JmpOp
from offload.verifier.alu import check_alu
from offload.verifier.branch import branch
from offload.verifier.env import Env
from offload.verifier.ops import Op
from offload.verifier.reject import Reject, VerifierBug
from offload.verifier.scalar import S32_MAX, S32_MIN, S64_MAX, S64_MIN, Scalar, s32, s64
from offload.verifier.state import Frame, Reg, RegType, State
from offload.verifier.tnum import U32, U64, UNKNOWN, Tnum

EXAMPLES = int(os.environ.get("OFFLOAD_TRANSFER_EXAMPLES", "0") or 0)
EXIT = Instruction(InsnClass.JMP | JmpOp.EXIT)


def budget(default: int, per: int = 1) -> int:
    """``default``, or on a thorough run one for every ``per`` examples asked for."""
    return max(EXAMPLES // per, default) if EXAMPLES else default


def hsettings(default: int) -> settings:
    """Hypothesis settings: reproducible by default, random and larger on a thorough run."""
    return settings(max_examples=budget(default), deadline=None, derandomize=not EXAMPLES,
                    database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


# ---------------------------------------------------------------- concrete values
#: Values at the edges that matter: 0, -1, the sign bits and word boundaries, shift widths.
EDGES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
         0xFFFFFFFF, 1 << 32, (1 << 32) + 0x80000000, 0x7FFF_FFFF_FFFF_FFFF,
         0x8000_0000_0000_0000, 0x8000_0000_7FFF_FFFF, 0xFFFF_FFFF_0000_0000,
         0xFFFF_FFFF_7FFF_FFFF, 0xFFFF_FFFF_8000_0000, U64, 31, 32, 63, 64)
#: Signed 32-bit immediates at the edges.
IMMS = (0, 1, 2, 3, 7, 8, 15, 16, 31, 32, 63, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
        0x7FFFFFFF, -1, -2, -0x80, -0x81, -0x8000, -0x80000000)

interesting = st.one_of(
    st.sampled_from(EDGES),
    st.builds(lambda e, d: (e + d) & U64, st.sampled_from(EDGES), st.integers(-3, 3)),
    st.integers(0, U64),
    st.integers(0, 300),
)


# ---------------------------------------------------------------- abstract operands
Operand = tuple[Scalar, list[int]]


def abstraction(values: Iterable[int]) -> Scalar:
    """The most precise Scalar holding every value given (each view's hull, the tnum's join)."""
    vs = [v & U64 for v in values]
    t = Tnum.const(vs[0])
    for v in vs[1:]:
        t = t.union(Tnum.const(v))
    lows = [v & U32 for v in vs]
    s = Scalar(t, min(vs), max(vs), min(map(s64, vs)), max(map(s64, vs)), min(lows), max(lows),
               min(map(s32, lows)), max(map(s32, lows))).sync()
    if s is None or not all(s.contains(v) for v in vs):
        raise AssertionError(f"sync lost a member of {vs}: {s}")
    return s


def members(s: Scalar, limit: int = 9) -> list[int] | None:
    """Every value of ``s`` when there are few (a tnum of at most ``limit`` unknown bits, or a
    range of at most 512 values); None otherwise."""
    t = s.var
    unknown = [i for i in range(64) if t.mask >> i & 1]
    if len(unknown) <= limit:
        out = []
        for combo in range(1 << len(unknown)):
            x = t.value
            for j, bit in enumerate(unknown):
                if combo >> j & 1:
                    x |= 1 << bit
            if s.contains(x):
                out.append(x)
        return out
    if s.umax - s.umin < 512:
        return [x for x in range(s.umin, s.umax + 1) if s.contains(x)]
    if s.smax - s.smin < 512:
        return [x & U64 for x in range(s.smin, s.smax + 1) if s.contains(x)]
    return None


def sample(s: Scalar, rng: random.Random, n: int = 12) -> list[int]:
    """Values of ``s``: all of them when few, else its bounds, their neighbours and some inside."""
    exact = members(s)
    if exact is not None:
        return exact
    t = s.var
    found = {s.umin, s.umax, s.smin & U64, s.smax & U64, t.value, t.value | t.mask}
    for base in (s.umin, s.umax, s.smin & U64, s.smax & U64):
        for low in (s.u32min, s.u32max, s.s32min & U32, s.s32max & U32):
            found.add((base & ~U32) | low)
    for _ in range(n):
        found.add(rng.randint(s.umin, s.umax))
        found.add(rng.randint(s.smin, s.smax) & U64)
        found.add(t.value | (rng.getrandbits(64) & t.mask))
    found |= {(x + d) & U64 for x in list(found) for d in (-1, 1)}
    return sorted(x for x in found if s.contains(x))


#: Bit positions where an unknown bit changes the most: signs, word and byte edges.
POSITIONS = (0, 1, 2, 6, 7, 8, 15, 16, 30, 31, 32, 33, 47, 62, 63)
#: Known parts under the unknown bits.
BASES = (0, U64, 1 << 31, 1 << 63, U32, 1 << 32, 0x80, 0x8000, (1 << 63) - 1, (1 << 31) - 1,
         0xFFFF_FFFF_0000_0000, 0x5A5A_5A5A_A5A5_A5A5)
#: Short ranges across the places where ranges are cut: (low, high), inclusive, as u64.
RANGES = ((0, 5), (U64 - 5, U64), (0x7D, 0x82), (0xFD, 0x102), (0x7FFD, 0x8002),
          (0xFFFD, 0x10002), ((1 << 31) - 3, (1 << 31) + 2),
          ((1 << 32) - 3, (1 << 32) + 2), ((1 << 63) - 3, (1 << 63) + 2), (U64 - 2, U64),
          (0xFFFF_FFFF_7FFF_FFFD, 0xFFFF_FFFF_8000_0002), (60, 66), (28, 34))


def small_tnum(rng: random.Random) -> Tnum:
    k = rng.randint(1, 4)
    mask = sum(1 << p for p in rng.sample(POSITIONS, k))
    return Tnum(rng.choice(BASES) & ~mask & U64, mask)


def wide_operands(seed: int | str, count: int) -> list[tuple[Operand, Operand]]:
    """Pairs of tnum operands with 8 and 4 unknown bits at interesting positions: every value
    of both is enumerated (4096 pairs), at the places where carries, signs and words meet."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sides = []
        for k in (8, 4):
            mask = sum(1 << p for p in rng.sample(POSITIONS, k))
            s = Scalar.from_tnum(Tnum(rng.choice(BASES) & ~mask & U64, mask))
            sides.append(_operand(s))
        out.append((sides[0], sides[1]))
    return out


def _operand(s: Scalar) -> Operand:
    exact = members(s)
    if exact is None:
        raise AssertionError(f"operand too large to enumerate: {s}")
    return s, exact


def small_operands(seed: int = 0) -> list[Operand]:
    """Operands whose values are all enumerated: constants at the edges, tnums with a few
    unknown bits at interesting positions, the abstraction of a few of their values, and short
    ranges (unsigned and signed) across each boundary."""
    rng = random.Random(seed)
    out = [_operand(Scalar.const(v)) for v in (0, 1, 0x80, 0x80000000, 1 << 63, U64, 63)]
    for lo, hi in RANGES:
        if lo <= hi:
            out.append(_operand(Scalar.urange(lo, hi)))
        slo, shi = s64(lo), s64(hi)
        if slo <= shi:
            out.append(_operand(Scalar.srange(slo, shi)))
        if (lo & U32) <= (hi & U32):  # the same low-word range, in the 32-bit view only
            out.append(_operand(abstraction([(lo & ~U32) | v for v in (lo & U32, hi & U32)])))
    for _ in range(budget(24, per=4) // 2):
        t = small_tnum(rng)
        out.append(_operand(Scalar.from_tnum(t)))
        values = members(Scalar.from_tnum(t)) or [t.value]
        out.append(_operand(abstraction(rng.sample(values, min(len(values), rng.randint(2, 4))))))
    return out


def pairs(operands: list[Operand], count: int, seed: int | str) -> list[tuple[Operand, Operand]]:
    """``count`` operand pairs, every operand at least once on each side."""
    rng = random.Random(seed)
    chosen = [(a, rng.choice(operands)) for a in operands]
    chosen += [(rng.choice(operands), b) for b in operands]
    chosen += [(rng.choice(operands), rng.choice(operands)) for _ in range(count)]
    return chosen


@st.composite
def operand(draw) -> Operand:
    """A full-width operand: a few values and an abstraction of them, made one of several ways
    (the exact hull, a range of one view only, a tnum, a zero-extended word)."""
    values = draw(st.lists(interesting, min_size=1, max_size=4))
    kind = draw(st.sampled_from(["set", "set", "urange", "srange", "u32", "s32", "tnum",
                                 "zext", "const", "unknown"]))
    if kind == "const":
        values = values[:1]
        s = Scalar.const(values[0])
    elif kind == "set":
        s = abstraction(values)
    elif kind == "urange":
        s = Scalar.urange(min(values), max(values))
    elif kind == "srange":
        svals = [s64(v) for v in values]
        s = Scalar.srange(min(svals), max(svals))
    elif kind in ("u32", "s32"):
        lows = [v & U32 for v in values]
        if kind == "u32":
            raw = Scalar(UNKNOWN, 0, U64, S64_MIN, S64_MAX, min(lows), max(lows), S32_MIN,
                         S32_MAX)
        else:
            slows = [s32(v) for v in lows]
            raw = Scalar(UNKNOWN, 0, U64, S64_MIN, S64_MAX, 0, U32, min(slows), max(slows))
        s = raw.sync()
    elif kind == "tnum":
        mask = draw(st.integers(0, U64)) & draw(st.integers(0, U64))
        for v in values[1:]:
            mask |= v ^ values[0]
        s = Scalar.from_tnum(Tnum(values[0] & ~mask & U64, mask))
    elif kind == "zext":
        values = [v & U32 for v in values]
        s = abstraction(values)
    else:
        s = Scalar.unknown()
    if s is None or not all(s.contains(v) for v in values):
        raise AssertionError(f"{kind} operand lost one of {values}: {s}")
    return s, values


def check_values(op: Operand, rng: random.Random) -> list[int]:
    """The values of a drawn operand to evaluate: the drawn ones and samples of the rest."""
    s, values = op
    extra = sample(s, rng, 4)
    if len(extra) > 40:
        extra = rng.sample(extra, 40)
    return sorted(set(values) | set(extra))


# ---------------------------------------------------------------- instructions
def alu_specs() -> list[tuple[str, int, int, int]]:
    """(name, class, operation, offset) of every ALU operation the interpreter runs, in both
    widths, except the byte swaps (``end_specs``)."""
    names = {AluOp.ADD: "add", AluOp.SUB: "sub", AluOp.MUL: "mul", AluOp.DIV: "div",
             AluOp.MOD: "mod", AluOp.OR: "or", AluOp.AND: "and", AluOp.XOR: "xor",
             AluOp.LSH: "lsh", AluOp.RSH: "rsh", AluOp.ARSH: "arsh", AluOp.NEG: "neg",
             AluOp.MOV: "mov"}
    out = []
    for cls, suffix in ((InsnClass.ALU64, ""), (InsnClass.ALU, "32")):
        for op, name in names.items():
            out.append((name + suffix, cls, op, 0))
        out += [("sdiv" + suffix, cls, AluOp.DIV, 1), ("smod" + suffix, cls, AluOp.MOD, 1)]
        for off in (8, 16, 32):
            if off == 32 and cls == InsnClass.ALU:
                continue  # no movsx from 32 bits to 32 bits
            out.append((f"movsx{off}{'64' if not suffix else '32'}", cls, AluOp.MOV, off))
    return out


def end_specs() -> list[tuple[str, int, int, int]]:
    """(name, class, source, width) of every byte-order conversion that is a valid opcode."""
    out = []
    for cls, source, name in ((InsnClass.ALU, Endian.TO_LE, "le"),
                              (InsnClass.ALU, Endian.TO_BE, "be"),
                              (InsnClass.ALU64, Endian.TO_LE, "bswap"),
                              (InsnClass.ALU64, Endian.TO_BE, "bswap_be")):
        if cls | AluOp.END | source not in VALID_OPCODES:
            continue
        out += [(f"{name}{w}", cls, source, w) for w in (16, 32, 64)]
    return out


JMP_OPS = (JmpOp.JEQ, JmpOp.JNE, JmpOp.JGT, JmpOp.JGE, JmpOp.JLT, JmpOp.JLE, JmpOp.JSET,
           JmpOp.JSGT, JmpOp.JSGE, JmpOp.JSLT, JmpOp.JSLE)


def _state(a: Scalar, b: Scalar) -> State:
    regs = [Reg(RegType.NOT_INIT)] * 11
    regs[1], regs[2] = Reg.scalar(a), Reg.scalar(b)
    regs[10] = Reg(RegType.PTR_TO_STACK)
    return State([Frame(regs, {}, -1, 0, 0)], 0, 0, 0, None, None)


def _env() -> Env:
    return Env(None, None, None)  # type: ignore[arg-type]  # scalar checks read no program


def engine_step(insns: list[Instruction]) -> Callable[[list[int]], int]:
    """The reference interpreter's prepared step for ``insns[0]``: regs -> next slot."""
    return Interpreter(insns)._steps[0]  # the exact function a run executes for the slot


def verifier_alu(insn: Instruction, a: Scalar, b: Scalar) -> Scalar | None:
    """What the verifier writes to r1 for ``insn`` (r1 = a, r2 = b); None if it refuses."""
    state = _state(a, b)
    try:
        check_alu(_env(), state, Op(insn))
    except VerifierBug:
        raise
    except Reject:
        return None
    reg = state.frame.regs[insn.dst]
    if reg.type != RegType.SCALAR:
        raise AssertionError(f"ALU on scalars gave {reg}")
    return reg.var


def engine_alu(insn: Instruction) -> Callable[[int, int], int]:
    """r1 after ``insn`` runs on the interpreter with r1 = x, r2 = y."""
    step = engine_step([insn, EXIT])

    def run(x: int, y: int) -> int:
        regs = [0] * 11
        regs[1], regs[2] = x, y
        step(regs, None)
        return regs[1]
    return run


def verifier_branch(insn: Instruction, a: Scalar,
                    b: Scalar) -> tuple[tuple[Scalar, Scalar] | None, tuple[Scalar, Scalar] | None]:
    """(r1, r2) on the taken and the fall-through edge; None for an edge declared impossible."""
    taken, fall = branch(_env(), _state(a, b), Op(insn))

    def regs(state: State | None) -> tuple[Scalar, Scalar] | None:
        if state is None:
            return None
        r1, r2 = state.frame.regs[1], state.frame.regs[2]
        return r1.var, r2.var
    return regs(taken), regs(fall)


def engine_jump(insn: Instruction) -> Callable[[int, int], bool]:
    """Whether the interpreter takes ``insn`` (offset +1) with r1 = x, r2 = y."""
    step = engine_step([insn, EXIT, EXIT])

    def run(x: int, y: int) -> bool:
        regs = [0] * 11
        regs[1], regs[2] = x, y
        return step(regs, None) == 2
    return run


def spread(xs: list[int], ys: list[int], limit: int, rng: random.Random):
    """All pairs of ``xs`` and ``ys``, or ``limit`` of them chosen at random (edges kept)."""
    if len(xs) * len(ys) <= limit:
        return [(x, y) for x in xs for y in ys]
    edge = [(x, y) for x in (xs[0], xs[-1]) for y in (ys[0], ys[-1])]
    return edge + [(rng.choice(xs), rng.choice(ys)) for _ in range(limit)]

