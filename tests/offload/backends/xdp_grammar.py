"""Hypothesis strategies for verifier-clean XDP programs, and for near misses of them.

A program is assembler text over two maps, handle 1 an ARRAY and handle 2 a HASH (u32 keys,
u64 values, :data:`MAP_ENTRIES` entries). Register roles keep every program safe by
construction: r6 the context, r7 ``data``, r8 ``data_end``, r9 scratch pointer; r2..r5 are
scalars (re-initialised after every helper call, which clobbers r1..r5). The prologue checks
that ``check`` bytes of packet exist and returns XDP_PASS otherwise; every packet access stays
inside those bytes, or has its own bounds check when its offset is variable. Branches only go
forward, map values are dereferenced only after a null check, and r0 ends as an XDP action.

``mutation`` turns a clean program into one that breaks exactly one rule, for comparing
verifiers: each name in :data:`MUTATIONS` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from offload.maps.spec import MapSpec
from offload.uapi import MapType

MAP_ENTRIES = 8
MAP_SPECS = {1: MapSpec("arr", MapType.ARRAY, 4, 8, MAP_ENTRIES),
             2: MapSpec("hash", MapType.HASH, 4, 8, MAP_ENTRIES)}
SCALARS = ("%r2", "%r3", "%r4", "%r5")
ALU = ("add", "sub", "mul", "or", "and", "xor", "mov", "div", "mod")
SHIFTS = ("lsh", "rsh", "arsh")
JUMPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset")
SIZES = {"b": 1, "h": 2, "w": 4, "dw": 8}
#: Rule breakers: the kernel (privileged) and the built-in verifier should both refuse these,
#: except where noted in the differential test.
MUTATIONS = ("no_bounds_check", "off_by_one", "no_null_check", "uninit_register",
             "uninit_stack", "stack_out_of_frame", "pointer_return", "write_ctx",
             "unbounded_var_offset", "backward_jump_loop", "scalar_deref")


@dataclass(frozen=True)
class Generated:
    text: str
    check: int
    mutation: str | None = None
    detail: str = ""  # what the mutation touched, e.g. "lookup 1 3" (action, map handle, key)


class _Emitter:
    def __init__(self, draw, check: int) -> None:
        self.draw = draw
        self.check = check
        self.lines: list[str] = []
        self.labels = 0
        self.last_map = ""

    def label(self) -> str:
        self.labels += 1
        return f"l{self.labels}"

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def scalar(self) -> str:
        return self.draw(st.sampled_from(SCALARS))

    def init_scalars(self) -> None:
        for reg in SCALARS:
            if self.draw(st.booleans()):
                self.emit(f"mov {reg}, {self.draw(st.integers(-2**31, 2**31 - 1))}")
            else:
                size = self.draw(st.sampled_from(sorted(SIZES)))
                self.emit(f"ldx{size} {reg}, [%r7+{self.offset(SIZES[size])}]")

    def offset(self, size: int) -> int:
        return self.draw(st.integers(0, self.check - size))

    # -- statements ------------------------------------------------------------------------
    def alu(self) -> None:
        draw, dst = self.draw, self.scalar()
        width = draw(st.sampled_from(("", "32")))
        kind = draw(st.sampled_from(("imm", "reg", "shift", "neg", "endian")))
        if kind == "shift":
            op = draw(st.sampled_from(SHIFTS))
            self.emit(f"{op}{width} {dst}, {draw(st.integers(0, 31 if width else 63))}")
        elif kind == "neg":
            self.emit(f"neg{width} {dst}")
        elif kind == "endian":
            self.emit(f"{draw(st.sampled_from(('le', 'be')))}{draw(st.sampled_from((16, 32, 64)))}"
                      f" {dst}")
        elif kind == "imm":
            op = draw(st.sampled_from(ALU))
            low = 1 if op in ("div", "mod") else -2**31
            self.emit(f"{op}{width} {dst}, {draw(st.integers(low, 2**31 - 1))}")
        else:
            self.emit(f"{draw(st.sampled_from(ALU))}{width} {dst}, {self.scalar()}")

    def load(self) -> None:
        size = self.draw(st.sampled_from(sorted(SIZES)))
        self.emit(f"ldx{size} {self.scalar()}, [%r7+{self.offset(SIZES[size])}]")

    def store(self) -> None:
        size = self.draw(st.sampled_from(sorted(SIZES)))
        off = self.offset(SIZES[size])
        if self.draw(st.booleans()):
            self.emit(f"stx{size} [%r7+{off}], {self.scalar()}")
        else:
            self.emit(f"st{size} [%r7+{off}], {self.draw(st.integers(-2**31, 2**31 - 1))}")

    def variable_access(self, *, checked: bool = True, masked: bool = True) -> None:
        """pkt + (scalar & mask), bounds-checked again, then a one-byte load or store."""
        mask = self.draw(st.sampled_from((1, 3, 7, 15, 31)))
        skip = self.label()
        self.emit("mov %r9, %r7")
        index = self.scalar()
        if masked:
            self.emit(f"and {index}, {mask}")
        self.emit(f"add %r9, {index}", "mov %r1, %r9", "add %r1, 1")
        if checked:
            self.emit(f"jgt %r1, %r8, {skip}")
        if self.draw(st.booleans()):
            self.emit(f"ldxb {self.scalar()}, [%r9+0]")
        else:
            self.emit(f"stxb [%r9+0], {self.scalar()}")
        self.emit(f"{skip}:")

    def map_op(self, *, null_check: bool = True) -> None:
        draw = self.draw
        handle = draw(st.sampled_from((1, 2)))
        key = draw(st.integers(0, MAP_ENTRIES + 1))
        self.emit(f"stw [%r10-4], {key}", f"lddw %r1, map_fd({handle})", "mov %r2, %r10",
                  "add %r2, -4")
        action = draw(st.sampled_from(("lookup", "lookup", "update", "delete")))
        self.last_map = f"{action} {handle} {key}"
        if action == "update":
            flags = draw(st.integers(0, 2))
            self.emit(f"stdw [%r10-16], {draw(st.integers(-2**31, 2**31 - 1))}",
                      "mov %r3, %r10", "add %r3, -16", f"mov %r4, {flags}", "call 2")
        elif action == "delete":
            self.emit("call 3")
        else:
            skip = self.label()
            self.emit("call 1")
            if null_check:
                self.emit(f"jeq %r0, 0, {skip}")
            self.emit("ldxdw %r1, [%r0+0]")
            if draw(st.booleans()):
                self.emit(f"add %r1, {draw(st.integers(-1000, 1000))}", "stxdw [%r0+0], %r1")
            else:
                self.emit("mov %r2, 1", "lock add [%r0+0], %r2")
            self.emit(f"{skip}:")
        self.init_scalars()

    def branch(self, depth: int) -> None:
        draw = self.draw
        skip = self.label()
        op = draw(st.sampled_from(JUMPS)) + draw(st.sampled_from(("", "32")))
        operand = self.scalar() if draw(st.booleans()) else str(draw(st.integers(-200, 200)))
        self.emit(f"{op} {self.scalar()}, {operand}, {skip}")
        self.block(depth + 1, draw(st.integers(1, 4)))
        self.emit(f"{skip}:")

    def block(self, depth: int, count: int) -> None:
        for _ in range(count):
            kinds = ["alu"] * 4 + ["load", "store", "variable", "map"] + \
                (["branch"] * 2 if depth < 2 else [])
            kind = self.draw(st.sampled_from(kinds))
            if kind == "alu":
                self.alu()
            elif kind == "load":
                self.load()
            elif kind == "store":
                self.store()
            elif kind == "variable":
                self.variable_access()
            elif kind == "map":
                self.map_op()
            else:
                self.branch(depth)


@st.composite
def xdp_programs(draw, mutation: str | None = None) -> Generated:
    """A verifier-clean XDP program (``mutation`` None), or one breaking the named rule."""
    check = draw(st.integers(14, 64))
    out = _Emitter(draw, check)
    bound = check + (1 if mutation == "off_by_one" else 0)
    out.emit("mov %r6, %r1", "ldxw %r7, [%r6+0]", "ldxw %r8, [%r6+4]")
    if mutation != "no_bounds_check":
        out.emit("mov %r9, %r7", f"add %r9, {check}", "jgt %r9, %r8, out")
    out.init_scalars()
    out.block(0, draw(st.integers(1, 8)))
    if mutation in ("no_bounds_check", "off_by_one"):
        out.emit(f"ldxb %r2, [%r7+{bound - 1}]")
    elif mutation == "no_null_check":
        out.map_op(null_check=False)
    elif mutation == "uninit_register":
        out.emit("call 7", "add %r0, %r3")  # r3 is clobbered by the call
    elif mutation == "uninit_stack":
        out.emit("ldxdw %r2, [%r10-64]")
    elif mutation == "stack_out_of_frame":
        out.emit("stdw [%r10-520], 1")
    elif mutation == "write_ctx":
        out.emit("stw [%r6+0], 0")
    elif mutation == "unbounded_var_offset":
        out.variable_access(checked=False, masked=False)
    elif mutation == "scalar_deref":
        out.emit("ldxb %r2, [%r3+0]")
    action = draw(st.integers(0, 4))
    out.emit(f"mov %r0, {action}")
    if mutation == "pointer_return":
        out.emit("mov %r0, %r7")
    elif mutation == "backward_jump_loop":
        out.emit("loop:", "add %r2, 1", "ja loop")
    out.emit("exit", "out:", "mov %r0, 2", "exit")
    return Generated("\n".join(out.lines), check, mutation, out.last_map)


def packets(min_size: int = 14, max_size: int = 96) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)
