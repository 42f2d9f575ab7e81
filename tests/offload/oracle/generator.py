"""Random XDP programs, most of them verifier-accepted, for differential and soundness tests.

A program is built from snippets. Hypothesis draws only a few numbers per program: a program
seed (maps, stack layout, prologue), one ``(kind, seed)`` pair per top-level snippet, the frames
and the receive queue. Each snippet expands deterministically from its own seed, nested
snippets (branch and loop bodies, called functions) from the parent's random source, so
shrinking removes whole snippets or lowers a kind (kind 0 is plain arithmetic) without
disturbing the others, while generation stays cheap.

Safety by construction, the rules every snippet keeps:

- r6 holds the context in every function; r7-r9 hold scalars (``Fn.scalars``; in a function
  that receives a pointer to its caller's stack, r9 holds that pointer); r0-r5 are scratch,
  set and used within one snippet, since helper calls clobber r1-r5.
- Stack, per function: 8-byte scalar slots just below fp, always initialised by the
  prologue (keys, values, spills, atomics, variable offsets); pointer spill slots below them,
  only read back within the snippet that spilled; a buffer below those, initialised by the
  prologue or not (``Fn.buf_init``: helpers fill it, and reads then stay in that snippet).
- Packet pointers are derived afresh from the context in every snippet that uses them and
  bounds-checked there, so helpers that move the packet never leave a stale one behind.
- Map values are touched only after a null check, within ``value_size``; variable offsets
  into anything are bounded by masks, compares (64- and 32-bit, signed and unsigned), modulo,
  shifts or linked copies first.
- Loops count a callee-saved register or a reserved stack slot to a constant; branches only go
  forward and every instruction is reachable. ``bpf_loop`` callbacks run a few times (a small
  constant or bounded count), find the context spilled right below their caller's scalar
  slots (the callback context points there) and return 0 or 1.

``RISKY`` kinds break one rule each, near the boundary (a byte past a bounds check, an
unchecked lookup, a stale packet pointer...), so some programs must be refused; those the
verifier accepts are run like any other and must not fault.

Some snippets know their values exactly: ``arith`` runs packet bytes through arithmetic whose
every result the RFC 9669 model (tests/offload/engine/rfc9669_model.py) enumerates, indexes
the stack with the result in a region sized for the largest one (or one byte short, as a near
miss the verifier must refuse), adds frames driving the result to its extremes when it comes
first in the program, and checks the result against the model's table at run time (the
program returns ``ALU_MISMATCH`` otherwise); ``probe`` reads back parts of a spilled constant
(near misses change it first); ``join`` meets pointers of several kinds in one register.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from math import gcd

from hypothesis import strategies as st

from offload.isa import Instruction, assemble
from offload.maps.spec import MapSpec
from offload.program import ArgKind, FuncArg, FuncInfo, FuncProto, Linkage
from offload.uapi import MapType
from service import frames
from tests.offload.engine.rfc9669_model import model_alu, model_jump, model_swap

SIZE_NAMES = {1: "b", 2: "h", 4: "w", 8: "dw"}
SIZES = (1, 2, 4, 8)
ALU_OPS = ("add", "sub", "mul", "div", "mod", "or", "and", "xor", "lsh", "rsh", "arsh", "mov",
           "sdiv", "smod")
DIVS = ("div", "mod", "sdiv", "smod")
SHIFTS = ("lsh", "rsh", "arsh")
JUMPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset")
ENDIAN = ("be16", "be32", "be64", "le16", "le32", "le64", "bswap16", "bswap32", "bswap64")
ATOMIC_OPS = ("add", "or", "and", "xor")
INTERESTING = (0, 1, -1, 2, 7, 8, 15, 16, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, -0x80000000,
               -2, 63, 64, 1500)
#: Helpers that take nothing and return a number.
PLAIN_HELPERS = (5, 7, 8, 42, 118, 125, 160, 208)

# Stack layout of the main function and of called functions (offsets from fp).
MAIN_SLOTS, MAIN_PTRS, MAIN_BUF, MAIN_BUF_SIZE = 8, (-72, -80), -152, 64
SUB_SLOTS, SUB_PTRS, SUB_BUF, SUB_BUF_SIZE = 4, (-40,), -72, 32
MAX_CALL_DEPTH = 2
#: What a program returns when an engine's arithmetic differs from the RFC 9669 model.
ALU_MISMATCH = 0x5EED_0BAD_A1A1_A1A1


@dataclass(frozen=True)
class Generated:
    """One generated program with everything needed to load and run it."""

    insns: tuple[Instruction, ...]
    text: str
    maps: dict[int, MapSpec]
    frames: tuple[bytes, ...]
    rx_queue: int
    kinds: tuple[str, ...] = ()  # top-level snippet kinds, for statistics
    risky: bool = False  # a snippet breaks a rule on purpose
    #: BTF func_info as ``verify`` takes it: the global functions among the subprograms
    functions: tuple[FuncInfo, ...] = ()

    def listing(self) -> str:
        """The text with slot numbers, as failure messages show it."""
        out, slot = [], 0
        lines = [ln for ln in self.text.splitlines() if ln.strip()]
        insns = iter(self.insns)
        for line in lines:
            if line.endswith(":"):
                out.append(line)
                continue
            insn = next(insns, None)
            out.append(f"{slot:4d}: {line}")
            slot += insn.width if insn is not None else 1
        return "\n".join(out)


@dataclass
class MapInfo:
    handle: int
    spec: MapSpec

    @property
    def type(self) -> MapType:
        return self.spec.type

    @property
    def value_size(self) -> int:
        return self.spec.value_size

    @property
    def key_size(self) -> int:
        return self.spec.key_size

    @property
    def writable(self) -> bool:
        return not self.spec.frozen


@dataclass
class Fn:
    """A function being generated: its registers, stack layout and lines."""

    name: str
    depth: int
    scalars: list[str]
    slots: int
    ptr_slots: tuple[int, ...]
    buf: int
    buf_size: int
    buf_init: bool
    arg: tuple[str, int] | None = None  # register holding a pointer to the caller's stack
    lines: list[str] = field(default_factory=list)
    reserved: set[int] = field(default_factory=set)  # scalar slots loops count in
    loop: int = 0  # loop nesting
    counter: str | None = None  # the innermost loop's counter register, if a register
    trips: int = 1  # iterations of the enclosing loops, multiplied
    callback: bool = False  # a bpf_loop callback: every exit returns 0 or 1
    in_callback: bool = False  # a callback or a function it calls: no tail calls
    #: a global function (BTF func_info) taking this many numbers: verified once, on its own
    global_args: int = 0

    @property
    def s_base(self) -> int:
        return -8 * self.slots

    def free_slots(self) -> list[int]:
        return [k for k in range(1, self.slots + 1) if k not in self.reserved]


def _bits(limit: int) -> int:
    """The most low bits a mask may keep and stay within ``limit``."""
    return (limit + 1).bit_length() - 1


class _Builder:
    """Expands seeds into program text (see the module docstring for the rules)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.labels = 0
        self.functions: list[Fn] = []
        self.maps: dict[int, MapInfo] = {}
        self.risky = False
        self.first = False  # expanding the first top-level snippet (nothing ran before it)
        self.witnesses: list[bytes] = []  # frames that drive a snippet to its extreme values
        rng = self.rng
        handle = 1
        for _ in range(rng.randint(1, 3)):
            self.maps[handle] = MapInfo(handle, _data_map(rng, handle))
            handle += 1
        if rng.random() < 0.35:
            vs = rng.choice((8, 16, 24, 32))
            frozen = rng.random() < 0.2
            self.maps[handle] = MapInfo(handle, MapSpec(f"global{handle}", MapType.ARRAY, 4, vs,
                                                        1, frozen=frozen))
            handle += 1
        if rng.random() < 0.25:
            self.maps[handle] = MapInfo(handle, MapSpec(f"devmap{handle}", MapType.DEVMAP, 4, 4,
                                                        4))
            handle += 1
        if rng.random() < 0.25:
            self.maps[handle] = MapInfo(handle, MapSpec(f"progs{handle}", MapType.PROG_ARRAY,
                                                        4, 4, 4))
            handle += 1
        # redirect targets and event streams (redirect and helper snippets use them)
        for kind, key_size, value_size, entries in (
                (MapType.CPUMAP, 4, rng.choice((4, 8)), 4), (MapType.XSKMAP, 4, 4, 4),
                (MapType.PERF_EVENT_ARRAY, 4, 4, rng.choice((1, 2, 4))),
                (MapType.RINGBUF, 0, 0, rng.choice((4096, 8192)))):
            if rng.random() < 0.3:
                self.maps[handle] = MapInfo(handle, MapSpec(f"{kind.name.lower()}{handle}",
                                                            kind, key_size, value_size, entries))
                handle += 1

    # -- small tools -----------------------------------------------------------------------
    def label(self) -> str:
        self.labels += 1
        return f"L{self.labels}"

    @staticmethod
    def sc(fn: Fn, rng: random.Random) -> str:
        return rng.choice(fn.scalars)

    def data_maps(self, *, writable: bool = False, kinds: frozenset[MapType] | None = None
                  ) -> list[MapInfo]:
        out = [m for m in self.maps.values()
               if m.type in DATA_TYPES and m.spec.max_entries > 1 or
               m.type == MapType.ARRAY and m.spec.max_entries == 1]
        if writable:
            out = [m for m in out if m.writable]
        if kinds is not None:
            out = [m for m in out if m.type in kinds]
        return out

    @staticmethod
    def imm(rng: random.Random) -> int:
        if rng.random() < 0.6:
            return rng.choice(INTERESTING)
        return rng.randint(-(1 << 31), (1 << 31) - 1)

    @staticmethod
    def derive(fn: Fn, data: str = "%r2", end: str = "%r3") -> None:
        fn.lines += [f"ldxw {data}, [%r6+0]", f"ldxw {end}, [%r6+4]"]

    @staticmethod
    def check(fn: Fn, rng: random.Random, ptr: str, end: str, length: int, skip: str,
              tmp: str = "%r4") -> None:
        """Fall through only if ``length`` bytes from ``ptr`` lie before ``end``."""
        fn.lines += [f"mov {tmp}, {ptr}", f"add {tmp}, {length}"]
        form = rng.randrange(5)
        if form == 0:
            fn.lines.append(f"jgt {tmp}, {end}, {skip}")
        elif form == 1:
            fn.lines.append(f"jlt {end}, {tmp}, {skip}")
        elif form == 2:
            fn.lines += [f"jle {tmp}, {end}, +1", f"ja {skip}"]
        elif form == 3:
            fn.lines += [f"jge {end}, {tmp}, +1", f"ja {skip}"]
        else:  # strict: ptr + length < end
            fn.lines.append(f"jge {tmp}, {end}, {skip}")

    def bound(self, fn: Fn, rng: random.Random, dst: str, limit: int, skip: str,
              align: int = 1) -> None:
        """``dst`` := some scalar brought into [0, limit], a multiple of ``align`` when align
        > 1 (as the verifier's tnum sees it), by one of the ways programs bound indices."""
        src = self.sc(fn, rng)
        lines = fn.lines
        method = rng.randrange(11)
        if limit < align:
            lines.append(f"mov {dst}, 0")
            return
        if method == 0 or limit == 0:  # mask
            bits = rng.randint(max(0, _bits(limit) - 2), _bits(limit))
            mask = ((1 << bits) - 1) & ~(align - 1)
            if rng.random() < 0.3:
                lines += [f"mov32 {dst}, {src}", f"and32 {dst}, {mask}"]
            else:
                lines += [f"mov {dst}, {src}", f"and {dst}, {mask}"]
            return
        if method == 1:  # scaled: a small index shifted into place
            shift = align.bit_length() - 1
            bits = _bits(limit >> shift)
            lines += [f"mov {dst}, {src}", f"and {dst}, {(1 << bits) - 1}"]
            if shift:
                lines.append(f"lsh {dst}, {shift}")
            return
        if method == 2:  # unsigned compare
            op = rng.randrange(3)
            lines.append(f"mov {dst}, {src}")
            if op == 0:
                lines.append(f"jgt {dst}, {limit}, {skip}")
            elif op == 1:
                lines.append(f"jge {dst}, {limit + 1}, {skip}")
            else:
                lines += [f"jlt {dst}, {limit + 1}, +1", f"ja {skip}"]
        elif method == 3:  # signed compares from both sides
            lines += [f"mov {dst}, {src}", f"jsgt {dst}, {limit}, {skip}",
                      f"jslt {dst}, 0, {skip}"]
        elif method == 4:  # 32-bit compare of a zero-extended value
            lines += [f"mov32 {dst}, {src}",
                      rng.choice((f"jgt32 {dst}, {limit}, {skip}",
                                  f"jge32 {dst}, {limit + 1}, {skip}"))]
        elif method == 5:  # a linked copy: compare the original, use the copy
            lines += [f"mov {dst}, {src}", f"jgt {src}, {limit}, {skip}"]
        elif method == 6:  # unsigned modulo
            lines += [f"mov {dst}, {src}", f"mod {dst}, {limit + 1}"]
        elif method == 7:  # right shift of a 64-bit value
            bits = _bits(limit)
            lines += [f"mov {dst}, {src}", f"rsh {dst}, {64 - bits}" if bits else f"mov {dst}, 0"]
        elif method == 8:  # masked, then spilled and filled
            slot = rng.choice(fn.free_slots()) if fn.free_slots() else 0
            mask = ((1 << _bits(limit)) - 1) & ~(align - 1)
            lines += [f"mov {dst}, {src}", f"and {dst}, {mask}"]
            if slot:  # spilled whole, or narrow: by a store just wide enough for the value
                width = rng.choice([w for w in SIZES if 8 * w >= _bits(limit)])
                name = SIZE_NAMES[width]
                lines += [f"stx{name} [%r10-{8 * slot}], {dst}",
                          f"ldx{name} {dst}, [%r10-{8 * slot}]"]
            return
        elif method == 9:  # a 32-bit compare on the lower half after a 32-bit move
            lines += [f"mov {dst}, {src}", f"mov32 {dst}, {dst}", f"jle32 {dst}, {limit}, +1",
                      f"ja {skip}"]
        else:  # byte loaded from the always-initialised scalar slots
            slot = rng.randint(1, fn.slots)
            lines.append(f"ldxb {dst}, [%r10-{8 * slot - rng.randrange(8)}]")
            if limit < 255:
                lines.append(f"jgt {dst}, {limit}, {skip}")
        if align > 1:
            lines.append(f"and {dst}, {-align}")

    # -- programs --------------------------------------------------------------------------
    def main(self, snippets: list[tuple[str, int]]) -> tuple[str, tuple[str, ...]]:
        rng = self.rng
        fn = Fn("", 0, ["%r7", "%r8", "%r9"], MAIN_SLOTS, MAIN_PTRS, MAIN_BUF, MAIN_BUF_SIZE,
                buf_init=rng.random() < 0.6)
        fn.lines.append("mov %r6, %r1")
        for reg in fn.scalars:
            self.init_scalar(fn, rng, reg)
        self.init_stack(fn, rng)
        for index, (kind, seed) in enumerate(snippets):
            self.first = index == 0
            SNIPPETS[kind](self, fn, random.Random(seed), False)
        self.first = False
        self.epilogue(fn, rng)
        text = "\n".join(fn.lines + [line for sub in self.functions for line in sub.lines])
        return text + "\n", tuple(kind for kind, _ in snippets)

    def init_scalar(self, fn: Fn, rng: random.Random, reg: str) -> None:
        how = rng.randrange(5)
        if how == 0:
            # ingress_ifindex, rx_queue_index (egress_ifindex is a devmap program's only)
            fn.lines.append(f"ldxw {reg}, [%r6+{rng.choice((12, 16))}]")
        elif how == 1:
            fn.lines.append(f"mov {reg}, {self.imm(rng)}")
        elif how == 2:
            fn.lines.append(f"lddw {reg}, {rng.getrandbits(64):#x}")
        elif how == 3:
            fn.lines += [f"call {rng.choice((7, 7, 5, 8))}", f"mov {reg}, %r0"]
        else:
            fn.lines += [f"ldxw {reg}, [%r6+16]", f"add {reg}, {self.imm(rng)}"]

    def init_stack(self, fn: Fn, rng: random.Random) -> None:
        for k in range(1, fn.slots + 1):
            base = -8 * k
            how = rng.randrange(4)
            if how == 0:
                fn.lines.append(f"stdw [%r10{base}], {self.imm(rng)}")
            elif how == 1:
                fn.lines.append(f"stxdw [%r10{base}], {self.sc(fn, rng)}")
            elif how == 2:
                fn.lines += [f"stw [%r10{base}], {self.imm(rng)}",
                             f"stxw [%r10{base + 4}], {self.sc(fn, rng)}"]
            else:
                at = 0
                while at < 8:
                    size = rng.choice([s for s in SIZES if at % s == 0 and at + s <= 8])
                    if rng.random() < 0.5:
                        fn.lines.append(f"st{SIZE_NAMES[size]} [%r10{base + at:+d}], "
                                        f"{rng.randint(-128, 127)}")
                    else:
                        fn.lines.append(f"stx{SIZE_NAMES[size]} [%r10{base + at:+d}], "
                                        f"{self.sc(fn, rng)}")
                    at += size
        if fn.buf_init:
            if rng.random() < 0.5:
                fn.lines += [f"stdw [%r10{fn.buf + at:+d}], {rng.randint(-9, 9)}"
                             for at in range(0, fn.buf_size, 8)]
            else:  # the helper fills it whether or not the packet is long enough
                fn.lines += ["mov %r1, %r6", f"mov %r2, {rng.randint(0, 8)}", "mov %r3, %r10",
                             f"add %r3, {fn.buf}", f"mov %r4, {fn.buf_size}", "call 189"]

    def epilogue(self, fn: Fn, rng: random.Random) -> None:
        how = rng.randrange(4)
        if how == 0:
            fn.lines.append(f"mov %r0, {rng.randint(0, 4)}")
        elif how == 1:
            fn.lines += [f"mov %r0, {self.sc(fn, rng)}", "and %r0, 3"]
        elif how == 2:
            fn.lines += [f"mov32 %r0, {self.sc(fn, rng)}", "mod32 %r0, 5"]
        else:
            fn.lines.append(f"mov %r0, {self.sc(fn, rng)}")
        fn.lines.append("exit")

    def block(self, fn: Fn, rng: random.Random, count: int) -> None:
        """Nested snippets (branch and loop bodies, functions)."""
        for _ in range(count):
            kind = _pick(rng, NESTED_TABLE)
            if kind == "pkt_loop" and fn.loop:
                kind = "pkt"
            elif kind == "loop" and (fn.loop >= 2 or fn.trips >= 3):
                kind = "alu"
            if kind == "arith" and fn.callback:
                kind = "alu"  # its self-check returns a value no callback may return
            if kind in ("call", "callback") and (fn.loop or fn.depth >= MAX_CALL_DEPTH):
                kind = "stack"
            SNIPPETS[kind](self, fn, rng, True)


# -- maps ---------------------------------------------------------------------------------
DATA_TYPES = frozenset({MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.HASH, MapType.PERCPU_HASH,
                        MapType.LRU_HASH, MapType.LRU_PERCPU_HASH})
PERCPU_TYPES = frozenset({MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH})


def _data_map(rng: random.Random, handle: int) -> MapSpec:
    kind = rng.choice(sorted(DATA_TYPES))
    value_size = rng.choice((4, 8, 8, 16, 16, 24, 32, 48))
    if kind in (MapType.ARRAY, MapType.PERCPU_ARRAY):
        return MapSpec(f"m{handle}", kind, 4, value_size, rng.choice((2, 4, 8)))
    return MapSpec(f"m{handle}", kind, rng.choice((4, 4, 8)), value_size, rng.choice((2, 4, 8)))


def _key(b: _Builder, fn: Fn, rng: random.Random, m: MapInfo, reg: str = "%r2") -> None:
    """Put a key for ``m`` in a scalar slot and point ``reg`` at it."""
    slots = fn.free_slots() or [1]
    slot = rng.choice(slots)
    off = -8 * slot
    width = SIZE_NAMES[m.key_size]
    how = rng.randrange(4)
    entries = m.spec.max_entries
    if how == 0:
        fn.lines.append(f"st{width} [%r10{off}], {rng.randint(0, entries + 1)}")
    elif how == 1:
        fn.lines += [f"mov %r1, {b.sc(fn, rng)}", f"and %r1, {rng.choice((1, 3, 7, 15))}",
                     f"stx{width} [%r10{off}], %r1"]
    elif how == 2:
        fn.lines.append(f"stx{width} [%r10{off}], {b.sc(fn, rng)}")
    # else: whatever the slot holds
    fn.lines += [f"mov {reg}, %r10", f"add {reg}, {off}"]


def _value_ops(b: _Builder, fn: Fn, rng: random.Random, m: MapInfo, ptr: str, skip: str,
               count: int) -> None:
    """Accesses through ``ptr``, a non-null pointer to a value of ``m``; may change r0-r5
    but ``ptr`` only last."""
    vs = m.value_size
    lines = fn.lines
    for _ in range(count):
        size = rng.choice([s for s in SIZES if s <= vs])
        op = rng.randrange(9)
        write = m.writable and rng.random() < 0.5
        if op <= 2:  # constant offset
            off = rng.randint(0, vs - size)
            sz = SIZE_NAMES[size]
            if write:
                lines.append(rng.choice((f"stx{sz} [{ptr}+{off}], {b.sc(fn, rng)}",
                                         f"st{sz} [{ptr}+{off}], {b.imm(rng)}")))
            elif size < 8 and rng.random() < 0.3:
                lines.append(f"ldxs{sz} {b.sc(fn, rng)}, [{ptr}+{off}]")
            else:
                lines.append(f"ldx{sz} {b.sc(fn, rng)}, [{ptr}+{off}]")
        elif op <= 4:  # variable offset
            c = rng.randint(0, min(4, vs - size))
            b.bound(fn, rng, "%r1", vs - size - c, skip)
            lines += ["mov %r5, " + ptr, "add %r5, %r1"]
            sz = SIZE_NAMES[size]
            if write:
                lines.append(f"stx{sz} [%r5+{c}], {b.sc(fn, rng)}")
            else:
                lines.append(f"ldx{sz} {b.sc(fn, rng)}, [%r5+{c}]")
        elif op == 5 and m.writable and vs >= 4:  # atomics
            size = rng.choice([s for s in (4, 8) if s <= vs])
            off = rng.randrange(0, vs - size + 1, size)
            _atomic(b, fn, rng, ptr, off, size)
        elif op == 6:  # spill the pointer across a helper call
            spill = rng.choice(fn.ptr_slots)
            lines += [f"stxdw [%r10{spill}], {ptr}", f"call {rng.choice(PLAIN_HELPERS)}",
                      f"xor {b.sc(fn, rng)}, %r0", f"ldxdw {ptr}, [%r10{spill}]",
                      f"ldx{SIZE_NAMES[size]} {b.sc(fn, rng)}, [{ptr}+{vs - size}]"]
        elif op == 7 and m.writable:  # the helper writes packet bytes into the value
            length = rng.randint(1, vs)
            lines += ["mov %r1, %r6", f"mov %r2, {rng.randint(0, 40)}", f"mov %r3, {ptr}",
                      f"mov %r4, {length}", "call 189", f"add {b.sc(fn, rng)}, %r0"]
            return
        else:  # the value as another map's key
            others = [o for o in b.data_maps() if o.key_size <= vs and o.spec.max_entries > 1]
            if not others:
                continue
            other = rng.choice(others)
            off = rng.randint(0, vs - other.key_size)
            inner = b.label()
            lines += [f"mov %r2, {ptr}", f"add %r2, {off}", f"lddw %r1, map_fd({other.handle})",
                      "call 1", f"jeq %r0, 0, {inner}"]
            _value_ops(b, fn, rng, other, "%r0", inner, 1)
            lines.append(f"{inner}:")
            return


def _atomic(b: _Builder, fn: Fn, rng: random.Random, ptr: str, off: int, size: int) -> None:
    w = "32" if size == 4 else ""
    value = b.sc(fn, rng)
    tmp = "%r2" if ptr == "%r1" else "%r1"
    how = rng.randrange(1, 5)
    if how <= 1:
        fn.lines.append(f"lock {rng.choice(ATOMIC_OPS)}{w} [{ptr}{off:+d}], {value}")
    elif how == 2:  # the fetched old value lands in the source register
        fn.lines += [f"mov {tmp}, {value}",
                     f"lock fetch {rng.choice(ATOMIC_OPS)}{w} [{ptr}{off:+d}], {tmp}",
                     f"add {b.sc(fn, rng)}, {tmp}"]
    elif how == 3:
        fn.lines += [f"mov {tmp}, {value}", f"lock xchg{w} [{ptr}{off:+d}], {tmp}",
                     f"xor {b.sc(fn, rng)}, {tmp}"]
    else:
        base = ptr
        if ptr == "%r0":
            fn.lines.append("mov %r5, %r0")
            base = "%r5"
        fn.lines += [f"mov %r0, {b.sc(fn, rng)}", f"lock cmpxchg{w} [{base}{off:+d}], {value}",
                     f"mov {b.sc(fn, rng)}, %r0"]
        if base == "%r5":
            fn.lines.append("mov %r0, %r5")


# -- snippets -----------------------------------------------------------------------------
Snippet = Callable[[_Builder, Fn, random.Random, bool], None]


def s_alu(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    for _ in range(rng.randint(1, 4)):
        dst = b.sc(fn, rng)
        w = rng.choice(("", "32"))
        k = rng.random()
        if k < 0.06:
            fn.lines.append(f"neg{w} {dst}")
        elif k < 0.16:
            fn.lines.append(f"{rng.choice(ENDIAN)} {dst}")
        elif k < 0.26:
            form = rng.choice(("movsx864", "movsx1664", "movsx3264", "movsx832", "movsx1632"))
            fn.lines.append(f"{form} {dst}, {b.sc(fn, rng)}")
        elif k < 0.30:
            fn.lines.append(f"lddw {dst}, {rng.getrandbits(64):#x}")
        elif k < 0.36:  # shift by a register amount bounded by a mask
            fn.lines += [f"mov %r1, {b.sc(fn, rng)}", f"and %r1, {31 if w else 63}",
                         f"{rng.choice(SHIFTS)}{w} {dst}, %r1"]
        else:
            op = rng.choice(ALU_OPS)
            if rng.random() < 0.45:
                fn.lines.append(f"{op}{w} {dst}, {b.sc(fn, rng)}")
            elif op in SHIFTS:
                fn.lines.append(f"{op}{w} {dst}, {rng.randint(0, 31 if w else 63)}")
            elif op in DIVS:
                value = b.imm(rng) or rng.choice((1, -1, 3, 10))
                fn.lines.append(f"{op}{w} {dst}, {value}")
            else:
                fn.lines.append(f"{op}{w} {dst}, {b.imm(rng)}")


def s_ctx(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    field_off = rng.choice((12, 16))  # egress_ifindex (20): devmap programs only
    if rng.random() < 0.3:  # through a spilled copy of the context pointer
        spill = rng.choice(fn.ptr_slots)
        fn.lines += ["mov %r1, %r6", f"stxdw [%r10{spill}], %r1",
                     f"call {rng.choice(PLAIN_HELPERS)}", f"ldxdw %r1, [%r10{spill}]",
                     f"ldxw {b.sc(fn, rng)}, [%r1+{field_off}]"]
    else:
        fn.lines.append(f"ldxw {b.sc(fn, rng)}, [%r6+{field_off}]")


def _pkt_access(b: _Builder, fn: Fn, rng: random.Random, ptr: str, length: int) -> None:
    """One access inside ``length`` proven bytes from ``ptr``."""
    size = rng.choice([s for s in SIZES if s <= length])
    off = rng.randint(0, length - size)
    sz = SIZE_NAMES[size]
    if rng.random() < 0.25 and off:  # through a derived pointer
        c = rng.randint(1, off)
        fn.lines += [f"mov %r5, {ptr}", f"add %r5, {c}"]
        ptr, off = "%r5", off - c
    how = rng.randrange(5)
    if how == 0:
        fn.lines.append(f"stx{sz} [{ptr}+{off}], {b.sc(fn, rng)}")
    elif how == 1:
        fn.lines.append(f"st{sz} [{ptr}+{off}], {b.imm(rng)}")
    elif how == 2 and size < 8:
        fn.lines.append(f"ldxs{sz} {b.sc(fn, rng)}, [{ptr}+{off}]")
    else:
        fn.lines.append(f"ldx{sz} {b.sc(fn, rng)}, [{ptr}+{off}]")


def s_pkt(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    skip = b.label()
    length = rng.choice((1, 2, 4, 8, 14, 20, 34, 42, 54, 60, rng.randint(1, 90)))
    b.derive(fn)
    b.check(fn, rng, "%r2", "%r3", length, skip)
    for _ in range(rng.randint(1, 3)):
        _pkt_access(b, fn, rng, "%r2", length)
    if rng.random() < 0.25:  # the proven range survives a helper call in a spill
        spill = rng.choice(fn.ptr_slots)
        fn.lines += [f"stxdw [%r10{spill}], %r2", f"call {rng.choice(PLAIN_HELPERS)}",
                     f"ldxdw %r2, [%r10{spill}]"]
        _pkt_access(b, fn, rng, "%r2", length)
    fn.lines.append(f"{skip}:")


def s_pkt_var(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    skip = b.label()
    b.derive(fn)
    size = rng.choice(SIZES)
    c = rng.randint(0, 6)
    if rng.random() < 0.5:  # kernel style: add the index, then check again
        b.bound(fn, rng, "%r1", rng.choice((1, 7, 15, 31, 63, 255, 1500)), skip)
        fn.lines += ["mov %r5, %r2", "add %r5, %r1"]
        b.check(fn, rng, "%r5", "%r3", c + size, skip)
    else:  # within a range proven before
        length = rng.randint(c + size, 80)
        b.check(fn, rng, "%r2", "%r3", length, skip)
        b.bound(fn, rng, "%r1", length - c - size, skip)
        fn.lines += ["mov %r5, %r2", "add %r5, %r1"]
    sz = SIZE_NAMES[size]
    if rng.random() < 0.5:
        fn.lines.append(f"ldx{sz} {b.sc(fn, rng)}, [%r5+{c}]")
    else:
        fn.lines.append(f"stx{sz} [%r5+{c}], {b.sc(fn, rng)}")
    fn.lines.append(f"{skip}:")


def s_pkt_parse(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Ethernet, IPv4 with its variable header length, then the UDP/TCP ports."""
    skip = b.label()
    b.derive(fn)
    b.check(fn, rng, "%r2", "%r3", 34, skip)
    fn.lines += ["ldxh %r1, [%r2+12]", f"jne %r1, 0x0008, {skip}", "ldxb %r1, [%r2+23]"]
    if rng.random() < 0.7:
        fn.lines.append(f"jne %r1, {rng.choice((6, 17))}, {skip}")
    fn.lines += ["ldxb %r1, [%r2+14]", "and %r1, 15", "lsh %r1, 2"]
    if rng.random() < 0.5:
        fn.lines.append(f"jlt %r1, 20, {skip}")
    fn.lines.append("add %r2, %r1")
    b.check(fn, rng, "%r2", "%r3", 22, skip)
    reg = b.sc(fn, rng)
    fn.lines += [f"ldxh {reg}, [%r2+{rng.choice((14, 16))}]", f"be16 {reg}"]
    if rng.random() < 0.5:
        fn.lines.append(f"stxh [%r2+{rng.choice((14, 16, 18, 20))}], {b.sc(fn, rng)}")
    if rng.random() < 0.3:
        fn.lines += [f"ldxw %r4, [%r2+{rng.choice((14, 16))}]", f"add {reg}, %r4"]
    fn.lines.append(f"{skip}:")


def s_pkt_loop(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Walk the first bytes of the packet, checking each one."""
    loop, done = b.label(), b.label()
    n = rng.randint(1, 12)
    acc = b.sc(fn, rng)
    b.derive(fn)
    fn.lines += ["mov %r4, 0", f"{loop}:", "mov %r5, %r2", "add %r5, %r4", "mov %r1, %r5",
                 "add %r1, 1", f"jgt %r1, %r3, {done}"]
    if rng.random() < 0.3:
        fn.lines.append(f"stxb [%r5+0], {acc}")
    else:
        fn.lines += ["ldxb %r1, [%r5+0]", f"{rng.choice(('add', 'xor', 'or'))} {acc}, %r1"]
    step = rng.choice((1, 1, 2, 3))
    fn.lines.append(f"add %r4, {step}")
    fn.lines.append(rng.choice((f"jlt %r4, {n}, {loop}", f"jlt32 %r4, {n}, {loop}",
                                f"jle %r4, {n - 1}, {loop}", f"jsle32 %r4, {n - 1}, {loop}")))
    fn.lines.append(f"{done}:")


def s_meta(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    skip = b.label()
    delta = rng.choice((-4, -8, -12, -16, -20, -24, -28, -32, 4, 0, -6))
    fn.lines += ["mov %r1, %r6", f"mov %r2, {delta}", "call 54"]
    if rng.random() < 0.5:
        fn.lines.append(f"jne %r0, 0, {skip}")
    fn.lines += ["ldxw %r2, [%r6+8]", "ldxw %r3, [%r6+0]"]
    length = rng.choice((1, 4, 8, 12, 16, 32))
    b.check(fn, rng, "%r2", "%r3", length, skip)
    for _ in range(rng.randint(1, 2)):
        _pkt_access(b, fn, rng, "%r2", length)
    fn.lines.append(f"{skip}:")


def s_adjust(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Move the packet's head or tail, then derive and check the pointers again."""
    helper = rng.choice((44, 65))
    fn.lines.append("mov %r1, %r6")
    if rng.random() < 0.7:
        fn.lines.append(f"mov %r2, {rng.choice((-64, -16, -14, -8, -4, -1, 0, 1, 4, 8, 14, 20))}")
    else:
        fn.lines += [f"mov %r2, {b.sc(fn, rng)}", "and %r2, 31", "sub %r2, 16"]
    fn.lines.append(f"call {helper}")
    fn.lines.append(f"add {b.sc(fn, rng)}, %r0")
    s_pkt(b, fn, rng, nested)


def s_map_lookup(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    maps = [m for m in b.data_maps() if m.spec.max_entries > 1]
    if not maps:
        return s_global(b, fn, rng, nested)
    m = rng.choice(maps)
    skip = b.label()
    _key(b, fn, rng, m)
    fn.lines.append(f"lddw %r1, map_fd({m.handle})")
    if m.type in PERCPU_TYPES and rng.random() < 0.4:
        fn.lines += [rng.choice(("mov %r3, 0", "mov %r3, 1", "mov %r3, 2",
                                 f"mov %r3, {b.sc(fn, rng)}")), "call 195"]
    else:
        fn.lines.append("call 1")
    ptr = "%r0"
    how = rng.randrange(4)
    if how == 0:
        fn.lines.append(f"jeq %r0, 0, {skip}")
    elif how == 1:
        fn.lines += ["jne %r0, 0, +1", f"ja {skip}"]
    elif how == 2:  # the check on a copy covers the original
        fn.lines += ["mov %r1, %r0", f"jeq %r1, 0, {skip}"]
    else:
        fn.lines += ["mov %r4, %r0", f"jeq %r0, 0, {skip}"]
        ptr = "%r4"
    if ptr == "%r4":  # keep r4 out of the way of helpers below: copy into r0 again
        fn.lines.append("mov %r0, %r4")
        ptr = "%r0"
    _value_ops(b, fn, rng, m, ptr, skip, rng.randint(1, 3))
    fn.lines.append(f"{skip}:")


def s_map_update(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    maps = [m for m in b.data_maps(writable=True) if m.spec.max_entries > 1]
    if not maps:
        return s_alu(b, fn, rng, nested)
    m = rng.choice(maps)
    _key(b, fn, rng, m)
    if rng.random() < 0.7:
        if m.value_size <= 8 * fn.slots:
            fn.lines += ["mov %r3, %r10", f"add %r3, {-8 * fn.slots}"]
        elif fn.buf_init and m.value_size <= fn.buf_size:
            fn.lines += ["mov %r3, %r10", f"add %r3, {fn.buf}"]
        else:
            return s_map_delete(b, fn, rng, nested, m)
        fn.lines.append(rng.choice(("mov %r4, 0", "mov %r4, 0", "mov %r4, 1", "mov %r4, 2",
                                    f"mov %r4, {b.sc(fn, rng)}\nand %r4, 3")))
        fn.lines += [f"lddw %r1, map_fd({m.handle})", "call 2", f"add {b.sc(fn, rng)}, %r0"]
    else:
        s_map_delete(b, fn, rng, nested, m)


def s_map_delete(b: _Builder, fn: Fn, rng: random.Random, nested: bool,
                 m: MapInfo | None = None) -> None:
    if m is None:
        maps = [m for m in b.data_maps(writable=True) if m.spec.max_entries > 1]
        if not maps:
            return s_alu(b, fn, rng, nested)
        m = rng.choice(maps)
        _key(b, fn, rng, m)
    fn.lines += [f"lddw %r1, map_fd({m.handle})", "call 3", f"xor {b.sc(fn, rng)}, %r0"]


def s_global(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    globals_ = [m for m in b.maps.values()
                if m.type == MapType.ARRAY and m.spec.max_entries == 1]
    if not globals_:
        return s_stack(b, fn, rng, nested)
    m = rng.choice(globals_)
    vs = m.value_size
    base = rng.randrange(vs)
    size = rng.choice([s for s in SIZES if s <= vs - base] or [1])
    if base + size > vs:
        base = 0
    fn.lines.append(f"lddw %r1, map_value({m.handle})+{base}")
    off = rng.randint(0, vs - base - size)
    if m.writable and rng.random() < 0.5:
        if size >= 4 and (base + off) % size == 0 and rng.random() < 0.5:
            _atomic(b, fn, rng, "%r1", off, size if size in (4, 8) else 4)
        else:
            fn.lines.append(f"stx{SIZE_NAMES[size]} [%r1+{off}], {b.sc(fn, rng)}")
    else:
        fn.lines.append(f"ldx{SIZE_NAMES[size]} {b.sc(fn, rng)}, [%r1+{off}]")


def s_stack(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Constant-offset reads and writes of the scalar slots, all sizes, sign-extending too."""
    free = fn.free_slots()
    for _ in range(rng.randint(1, 3)):
        size = rng.choice(SIZES)
        sz = SIZE_NAMES[size]
        write = free and rng.random() < 0.5
        slot = rng.choice(free) if write else rng.randint(1, fn.slots)
        off = -8 * slot + rng.randrange(0, 8, size)
        if write:
            fn.lines.append(rng.choice((f"stx{sz} [%r10{off}], {b.sc(fn, rng)}",
                                        f"st{sz} [%r10{off}], {b.imm(rng)}")))
        elif size < 8 and rng.random() < 0.4:
            fn.lines.append(f"ldxs{sz} {b.sc(fn, rng)}, [%r10{off}]")
        else:
            fn.lines.append(f"ldx{sz} {b.sc(fn, rng)}, [%r10{off}]")


def s_stack_var(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """A variable offset into the scalar slots or the initialised buffer."""
    skip = b.label()
    size = rng.choice(SIZES)
    use_buf = fn.buf_init and rng.random() < 0.5
    base, span = (fn.buf, fn.buf_size) if use_buf else (fn.s_base, 8 * fn.slots)
    write = (use_buf or not fn.reserved) and rng.random() < 0.5
    b.bound(fn, rng, "%r2", span - size, skip, align=size)
    fn.lines += ["mov %r1, %r10", f"add %r1, {base}", "add %r1, %r2"]
    sz = SIZE_NAMES[size]
    if write:
        if size >= 4 and rng.random() < 0.3:
            _atomic(b, fn, rng, "%r1", 0, size)
        else:
            fn.lines.append(rng.choice((f"stx{sz} [%r1+0], {b.sc(fn, rng)}",
                                        f"st{sz} [%r1+0], {b.imm(rng)}")))
    else:
        fn.lines.append(f"ldx{sz} {b.sc(fn, rng)}, [%r1+0]")
    fn.lines.append(f"{skip}:")


def s_spill(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Pointer spills and fills, partial scalar spills, a bounded scalar through a slot."""
    spill = rng.choice(fn.ptr_slots)
    how = rng.randrange(5)
    free = fn.free_slots()
    if how == 0:  # a stack pointer through a spill slot
        slot = rng.randint(1, fn.slots)
        fn.lines += ["mov %r1, %r10", f"add %r1, {-8 * slot}", f"stxdw [%r10{spill}], %r1",
                     f"ldxdw %r2, [%r10{spill}]", f"ldxdw {b.sc(fn, rng)}, [%r2+0]"]
    elif how == 1 and free:  # a partial spill of a scalar, read back in pieces
        slot = -8 * rng.choice(free)
        size = rng.choice((1, 2, 4))
        at = slot + rng.randrange(0, 8, size)
        fn.lines.append(f"stx{SIZE_NAMES[size]} [%r10{at}], {b.sc(fn, rng)}")
        rsize = rng.choice((1, 2, 4, 8))
        rat = slot + rng.randrange(0, 8, rsize)
        fn.lines.append(f"ldx{rng.choice(('', 's')) if rsize < 8 else ''}{SIZE_NAMES[rsize]} "
                        f"{b.sc(fn, rng)}, [%r10{rat}]")
    elif how == 2 and free:  # a bounded scalar keeps its bounds through an 8-byte spill
        skip = b.label()
        slot = -8 * rng.choice(free)
        limit = rng.choice((7, 15, 31, 8 * fn.slots - 1))
        b.bound(fn, rng, "%r3", limit, skip)
        fn.lines += [f"stxdw [%r10{slot}], %r3", f"call {rng.choice(PLAIN_HELPERS)}",
                     f"ldxdw %r3, [%r10{slot}]", "mov %r1, %r10", f"add %r1, {fn.s_base}",
                     "add %r1, %r3", f"ldxb {b.sc(fn, rng)}, [%r1+0]", f"{skip}:"]
    elif how == 3:  # the context pointer
        fn.lines += [f"stxdw [%r10{spill}], %r6", f"ldxdw %r1, [%r10{spill}]",
                     f"ldxw {b.sc(fn, rng)}, [%r1+{rng.choice((12, 16))}]"]
    else:  # an 8-byte scalar spill filled into another register
        slot = -8 * rng.choice(free or [1])
        src = b.sc(fn, rng)
        if free:
            fn.lines.append(f"stxdw [%r10{slot}], {src}")
        fn.lines.append(f"ldxdw {b.sc(fn, rng)}, [%r10{slot}]")


def _maps_of(b: _Builder, kind: MapType) -> list[MapInfo]:
    return [m for m in b.maps.values() if m.type == kind]


#: bpf_perf_event_output flags: the running CPU's stream, fixed indexes (some past the end
#: or another CPU's), packet bytes appended (some more than a short frame has), a bad bit.
PERF_FLAGS = (0xFFFFFFFF, 0, 1, 3, (14 << 32) | 0xFFFFFFFF, (64 << 32) | 0xFFFFFFFF,
              (200 << 32) | 0xFFFFFFFF, 1 << 52, (8 << 32) | 1)


def s_events(b: _Builder, fn: Fn, rng: random.Random) -> bool:
    """bpf_perf_event_output or bpf_ringbuf_output of scalar slots, or bpf_ringbuf_query;
    False when the program has no event map."""
    perf, rings = _maps_of(b, MapType.PERF_EVENT_ARRAY), _maps_of(b, MapType.RINGBUF)
    if not perf and not rings:
        return False
    size = rng.choice((0, 4, 8, 13, 8 * fn.slots))
    if perf and (not rings or rng.random() < 0.5):
        fn.lines += ["mov %r1, %r6", f"lddw %r2, map_fd({rng.choice(perf).handle})",
                     f"lddw %r3, {rng.choice(PERF_FLAGS):#x}", "mov %r4, %r10",
                     f"add %r4, {fn.s_base}", f"mov %r5, {size}", "call 25",
                     f"add {b.sc(fn, rng)}, %r0"]
    else:
        ring = rng.choice(rings).handle
        if rng.random() < 0.35:
            s_reserve(b, fn, rng, ring)
            return True
        output = rng.random() < 0.7
        if output:
            fn.lines += [f"lddw %r1, map_fd({ring})", "mov %r2, %r10",
                         f"add %r2, {fn.s_base}", f"mov %r3, {size}",
                         f"mov %r4, {rng.choice((0, 1, 2, 4))}", "call 130",
                         f"add {b.sc(fn, rng)}, %r0"]
        if not output or rng.random() < 0.5:
            fn.lines += [f"lddw %r1, map_fd({ring})",
                         f"mov %r2, {rng.choice((0, 1, 2, 3, 4))}", "call 134",
                         f"xor {b.sc(fn, rng)}, %r0"]
    return True


def s_reserve(b: _Builder, fn: Fn, rng: random.Random, ring: int) -> None:
    """bpf_ringbuf_reserve of a constant size (flags 1 sometimes: NULL at run time), then
    stores and loads inside it at constant and masked variable offsets, and a submit or a
    discard; every path releases it."""
    skip = b.label()
    size = rng.choice((0, 4, 8, 16, 64))
    lines = fn.lines
    lines += [f"lddw %r1, map_fd({ring})", f"mov %r2, {size}",
              f"mov %r3, {rng.choice((0, 0, 0, 1))}", "call 131", f"jeq %r0, 0, {skip}"]
    for _ in range(rng.randint(0, 3) if size else 0):
        width = rng.choice([w for w in SIZES if w <= size])
        off = rng.randrange(0, size - width + 1, width)
        if rng.random() < 0.5:
            lines.append(f"stx{SIZE_NAMES[width]} [%r0+{off}], {b.sc(fn, rng)}")
        else:
            lines.append(f"st{SIZE_NAMES[width]} [%r0+{off}], {rng.choice(INTERESTING)}")
        if rng.random() < 0.3:
            lines.append(f"ldx{SIZE_NAMES[width]} {b.sc(fn, rng)}, [%r0+{off}]")
    if size >= 8 and rng.random() < 0.4:  # a byte at a masked variable offset
        lines += [f"mov %r2, {b.sc(fn, rng)}", f"and %r2, {size - 1}", "mov %r1, %r0",
                  "add %r1, %r2", f"stb [%r1+0], {rng.randint(0, 255)}"]
    lines += ["mov %r1, %r0", f"mov %r2, {rng.choice((0, 1, 2))}",
              f"call {rng.choice((132, 133))}", f"{skip}:"]


def s_sk_lookup(b: _Builder, fn: Fn, rng: random.Random) -> None:
    """A TCP or UDP socket lookup of a tuple in the scalar slots (NULL on the device), the
    socket's fields read on the other path and the socket released."""
    skip = b.label()
    size = 36 if 8 * fn.slots >= 36 and rng.random() < 0.5 else 12
    fn.lines += ["mov %r1, %r6", "mov %r2, %r10", f"add %r2, {fn.s_base}", f"mov %r3, {size}",
                 f"mov %r4, {rng.choice((-1, 0))}", f"mov %r5, {rng.choice((0, 0, 1))}",
                 f"call {rng.choice((84, 85, 99))}", f"jeq %r0, 0, {skip}",
                 f"ldxw {b.sc(fn, rng)}, [%r0+{rng.choice((4, 44, 72))}]", "mov %r1, %r0",
                 "call 86", f"{skip}:"]


def r_reference(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """A reference kept or released twice: a socket never released, a reservation submitted
    and then written, or released twice (all refused)."""
    skip = b.label()
    rings = _maps_of(b, MapType.RINGBUF)
    if not rings or rng.random() < 0.4:
        fn.lines += ["mov %r1, %r6", "mov %r2, %r10", f"add %r2, {fn.s_base}", "mov %r3, 12",
                     "mov %r4, -1", "mov %r5, 0", "call 84", f"jeq %r0, 0, {skip}",
                     f"ldxw {b.sc(fn, rng)}, [%r0+4]", f"{skip}:"]
        return
    fn.lines += [f"lddw %r1, map_fd({rings[0].handle})", "mov %r2, 8", "mov %r3, 0",
                 "call 131", f"jeq %r0, 0, {skip}", "stxdw [%r10-8], %r0", "mov %r1, %r0",
                 "mov %r2, 0", "call 132", "ldxdw %r1, [%r10-8]"]
    if rng.random() < 0.5:
        fn.lines += ["stdw [%r1+0], 1"]
    else:
        fn.lines += ["mov %r2, 0", "call 133"]
    fn.lines.append(f"{skip}:")


def s_redirect(b: _Builder, fn: Fn, rng: random.Random) -> None:
    """bpf_redirect_map through a devmap, cpumap or xskmap (keys past the filled slots and
    past the end too, default actions in the flags), an xskmap socket's queue_id read, or
    bpf_redirect."""
    lines = fn.lines
    targets = [m for m in b.maps.values()
               if m.type in (MapType.DEVMAP, MapType.CPUMAP, MapType.XSKMAP)]
    xsks = _maps_of(b, MapType.XSKMAP)
    if xsks and rng.random() < 0.25:  # the socket a lookup finds: read its u32 queue_id
        skip = b.label()
        slot = -8 * rng.choice(fn.free_slots() or [1])
        lines += [f"stw [%r10{slot}], {rng.randint(0, 4)}",
                  f"lddw %r1, map_fd({rng.choice(xsks).handle})", "mov %r2, %r10",
                  f"add %r2, {slot}", "call 1", f"jeq %r0, 0, {skip}",
                  f"ldxw {b.sc(fn, rng)}, [%r0+0]", f"{skip}:"]
        return
    if targets and rng.random() < 0.8:
        lines += [f"lddw %r1, map_fd({rng.choice(targets).handle})",
                  f"mov %r2, {rng.randint(0, 5)}", f"mov %r3, {rng.randint(0, 3)}",
                  "call 51"]
    else:
        lines += [f"mov %r1, {rng.randint(0, 70)}", "mov %r2, 0", "call 23"]
    lines.append(f"mov {b.sc(fn, rng)}, %r0")


def s_helper(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    how = rng.randrange(15)
    lines = fn.lines
    if how == 14:
        s_sk_lookup(b, fn, rng)
        return
    if how >= 11 and s_events(b, fn, rng):
        return
    if how == 8:  # check_mtu: reads and writes the MTU in a scalar slot
        slot = -8 * rng.choice(fn.free_slots() or [1])
        lines += [f"stw [%r10{slot}], {rng.choice((0, 1500, 9000, 60))}", "mov %r1, %r6",
                  f"mov %r2, {rng.choice((0, 1, 2, 99))}", "mov %r3, %r10", f"add %r3, {slot}",
                  f"mov %r4, {rng.choice((0, 14, -14, 2000))}", f"mov %r5, {rng.randint(0, 2)}",
                  "call 163", f"add {b.sc(fn, rng)}, %r0", f"ldxw {b.sc(fn, rng)}, [%r10{slot}]"]
        return
    if how <= 1:
        lines += [f"call {rng.choice(PLAIN_HELPERS)}",
                  f"{rng.choice(('mov', 'add', 'xor'))} {b.sc(fn, rng)}, %r0"]
    elif how == 2:
        lines += ["mov %r1, %r6", "call 188", f"mov {b.sc(fn, rng)}, %r0"]
    elif how == 3:  # csum_diff over scalar slots, or from NULL
        size = rng.choice((0, 4, 8, 12, 16, 20)) if fn.slots * 8 >= 20 else 4
        if rng.random() < 0.3:
            lines += ["mov %r1, 0", "mov %r2, 0"]
        else:
            lines += ["mov %r1, %r10", f"add %r1, {fn.s_base}", f"mov %r2, {size}"]
        lines += ["mov %r3, %r10", f"add %r3, {fn.s_base + rng.choice((0, 4, 8))}",
                  f"mov %r4, {rng.choice((4, 8, 12, 6))}", f"mov %r5, {b.sc(fn, rng)}",
                  "call 28", f"add {b.sc(fn, rng)}, %r0"]
    elif how == 4:  # store_bytes from the scalar slots into the packet
        length = rng.randint(1, 8 * fn.slots)
        lines += ["mov %r1, %r6", f"mov %r2, {rng.randint(0, 70)}", "mov %r3, %r10",
                  f"add %r3, {fn.s_base}", f"mov %r4, {length}", "call 190",
                  f"add {b.sc(fn, rng)}, %r0"]
    elif how == 5 and fn.buf_init and fn.buf_size >= 64:  # fib_lookup on the buffer
        lines += [f"stb [%r10{fn.buf}], {rng.choice((2, 10, 0))}", "mov %r1, %r6",
                  "mov %r2, %r10", f"add %r2, {fn.buf}", "mov %r3, 64",
                  f"mov %r4, {rng.choice((0, 1, 2, 4))}", "call 69",
                  f"mov {b.sc(fn, rng)}, %r0",
                  f"ldxw {b.sc(fn, rng)}, [%r10{fn.buf + rng.randrange(0, 64, 4)}]"]
    elif how in (6, 9):  # redirect
        s_redirect(b, fn, rng)
    else:  # a tail call: slot 0 holds a program, the others are empty
        progs = [m for m in b.maps.values() if m.type == MapType.PROG_ARRAY]
        if progs and not fn.in_callback:  # an empty slot: the call falls through
            lines += ["mov %r1, %r6", f"lddw %r2, map_fd({progs[0].handle})",
                      f"mov %r3, {rng.randint(0, 5)}", "call 12"]
        else:
            s_load_bytes(b, fn, rng, nested)


def s_load_bytes(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """bpf_xdp_load_bytes into the buffer at a constant or variable offset, read back."""
    skip = b.label()
    lines = fn.lines
    offset = rng.choice((f"mov %r2, {rng.randint(0, 60)}",
                         f"mov %r2, {b.sc(fn, rng)}\nand %r2, 63",
                         f"mov %r2, {b.sc(fn, rng)}"))
    if fn.buf_init and rng.random() < 0.5:  # a variable offset needs initialised bytes
        length = rng.randint(1, fn.buf_size // 2)
        b.bound(fn, rng, "%r5", fn.buf_size - length, skip)
        lines += ["mov %r1, %r6", offset, "mov %r3, %r10", f"add %r3, {fn.buf}",
                  "add %r3, %r5", f"mov %r4, {length}", "call 189",
                  f"ldxdw {b.sc(fn, rng)}, [%r10{fn.buf + 8 * rng.randrange(fn.buf_size // 8)}]"]
    else:
        start = rng.randrange(0, fn.buf_size, 8)
        length = rng.randint(1, fn.buf_size - start)
        if fn.buf_init and rng.random() < 0.3:  # a bounded variable length (initialised)
            lines += [f"mov %r4, {b.sc(fn, rng)}", f"and %r4, {length - 1}", "add %r4, 1"]
        else:
            lines.append(f"mov %r4, {length}")
        lines += ["mov %r1, %r6", offset, "mov %r3, %r10", f"add %r3, {fn.buf + start}",
                  "call 189", f"add {b.sc(fn, rng)}, %r0"]
        for _ in range(rng.randint(1, 2)):
            size = rng.choice([s for s in SIZES if s <= length])
            at = rng.randrange(0, length - size + 1, size)
            lines.append(f"ldx{SIZE_NAMES[size]} {b.sc(fn, rng)}, [%r10{fn.buf + start + at}]")
    lines.append(f"{skip}:")


def s_atomic_stack(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    free = fn.free_slots()
    if not free:
        return s_alu(b, fn, rng, nested)
    size = rng.choice((4, 8))
    off = -8 * rng.choice(free) + rng.randrange(0, 8, size)
    _atomic(b, fn, rng, "%r10", off, size)


def s_branch(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """if / if-else around nested snippets, on a 64- or 32-bit condition."""
    other, end = b.label(), b.label()
    op = rng.choice(JUMPS) + rng.choice(("", "32"))
    operand = b.sc(fn, rng) if rng.random() < 0.4 else str(b.imm(rng))
    fn.lines.append(f"{op} {b.sc(fn, rng)}, {operand}, {other}")
    b.block(fn, rng, rng.randint(1, 2))
    if rng.random() < 0.4:
        fn.lines.append(f"{rng.choice(('ja', 'ja', 'ja32'))} {end}")
        fn.lines.append(f"{other}:")
        b.block(fn, rng, rng.randint(1, 2))
        fn.lines.append(f"{end}:")
    else:
        fn.lines.append(f"{other}:")


def s_degenerate(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Jumps whose edges meet at once: to the next instruction, or both to one label."""
    how = rng.randrange(5)
    reg = b.sc(fn, rng)
    if how == 0:
        op = rng.choice(JUMPS) + rng.choice(("", "32"))
        fn.lines.append(f"{op} {reg}, {rng.choice((b.sc(fn, rng), str(b.imm(rng))))}, +0")
    elif how == 1:
        fn.lines.append(rng.choice(("ja +0", "ja32 +0")))
    elif how == 2:
        target = b.label()
        fn.lines += [f"{rng.choice(JUMPS)} {reg}, {b.imm(rng)}, {target}", f"ja {target}",
                     f"{target}:"]
    elif how == 3:  # two jumps to the same place, then an add on either path
        target = b.label()
        fn.lines += [f"jeq {reg}, {b.imm(rng)}, {target}", f"jne {reg}, 0, {target}",
                     f"add {reg}, 1", f"{target}:"]
    else:
        fn.lines += [f"{rng.choice(JUMPS)}32 {reg}, {b.imm(rng)}, +1",
                     rng.choice(("ja +0", "ja32 +0"))]


def s_index(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """A bounded index (32-bit narrowing, linked copies, ...) into a map value or the stack."""
    skip = b.label()
    maps = [m for m in b.data_maps() if m.spec.max_entries > 1]
    if maps and rng.random() < 0.5:
        m = rng.choice(maps)
        _key(b, fn, rng, m)
        fn.lines += [f"lddw %r1, map_fd({m.handle})", "call 1", f"jeq %r0, 0, {skip}"]
        b.bound(fn, rng, "%r1", m.value_size - 1, skip)
        fn.lines += ["add %r0, %r1", f"ldxb {b.sc(fn, rng)}, [%r0+0]"]
        if m.writable and rng.random() < 0.5:
            fn.lines.append(f"stxb [%r0+0], {b.sc(fn, rng)}")
    else:
        b.bound(fn, rng, "%r1", 8 * fn.slots - 1, skip)
        fn.lines += ["mov %r2, %r10", f"add %r2, {fn.s_base}", "add %r2, %r1",
                     f"ldxb {b.sc(fn, rng)}, [%r2+0]"]
    fn.lines.append(f"{skip}:")


def s_early_exit(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    op = rng.choice(JUMPS) + rng.choice(("", "32"))
    fn.lines += [f"{op} {b.sc(fn, rng)}, {b.imm(rng)}, +2",
                 f"mov %r0, {rng.randint(0, 1 if fn.callback else 4)}", "exit"]


def s_loop(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """A loop counting to a constant in a callee-saved register or a stack slot."""
    top, done = b.label(), b.label()
    # Every iteration is verified on its own: keep the product of nested counts small.
    # Paths through a body multiply from one iteration to the next where their states
    # differ, so the bodies stay short and the counts small.
    n = rng.choice((1, 2, 2, 3, 4, 6)) if fn.loop == 0 else rng.randint(1, 2)
    if fn.trips * n > 6:
        n = max(1, 6 // fn.trips)
    body = 1 if n > 3 else rng.randint(1, 2)
    in_reg = len(fn.scalars) > 1 and rng.random() < 0.6
    free = fn.free_slots()
    if not in_reg and not free:
        return s_alu(b, fn, rng, nested)
    lines = fn.lines
    fn.loop += 1
    fn.trips *= n
    saved_counter = fn.counter
    if in_reg:
        counter = fn.scalars.pop(rng.randrange(len(fn.scalars)))
        fn.counter = counter
        form = rng.randrange(5)
        if form == 4:  # count down
            lines += [f"mov {counter}, {n}", f"{top}:"]
            b.block(fn, rng, body)
            lines += [f"sub {counter}, 1", rng.choice((f"jne {counter}, 0, {top}",
                                                       f"jsgt {counter}, 0, {top}",
                                                       f"jgt32 {counter}, 0, {top}"))]
        elif form == 3:  # test at the top
            lines += [f"mov {counter}, 0", f"{top}:",
                      rng.choice((f"jge {counter}, {n}, {done}", f"jge32 {counter}, {n}, {done}",
                                  f"jsge {counter}, {n}, {done}"))]
            _loop_index(b, fn, rng, counter, n)
            b.block(fn, rng, body)
            lines += [f"add {counter}, 1", f"{rng.choice(('ja', 'ja32'))} {top}", f"{done}:"]
        else:  # test at the bottom
            lines += [rng.choice((f"mov {counter}, 0", f"mov32 {counter}, 0")), f"{top}:"]
            _loop_index(b, fn, rng, counter, n)
            b.block(fn, rng, body)
            lines += [f"add {counter}, 1",
                      rng.choice((f"jlt {counter}, {n}, {top}", f"jlt32 {counter}, {n}, {top}",
                                  f"jle {counter}, {n - 1}, {top}",
                                  f"jle32 {counter}, {n - 1}, {top}",
                                  f"jne {counter}, {n}, {top}",
                                  f"jslt {counter}, {n}, {top}"))]
        fn.scalars.append(counter)
    else:
        slot = rng.choice(free)
        fn.reserved.add(slot)
        off = -8 * slot
        fn.counter = None
        lines += [f"stdw [%r10{off}], 0", f"{top}:"]
        b.block(fn, rng, body)
        lines += [f"ldxdw %r1, [%r10{off}]", "add %r1, 1", f"stxdw [%r10{off}], %r1",
                  rng.choice((f"jlt %r1, {n}, {top}", f"jlt32 %r1, {n}, {top}",
                              f"jne %r1, {n}, {top}"))]
        fn.reserved.discard(slot)
    fn.counter = saved_counter
    fn.loop -= 1
    fn.trips //= n


def _loop_index(b: _Builder, fn: Fn, rng: random.Random, counter: str, n: int) -> None:
    """Use the counter (below ``n`` here) as an index into the scalar slots."""
    if rng.random() < 0.5 and n <= fn.slots:
        fn.lines += [f"mov %r1, {counter}", "lsh %r1, 3", "mov %r2, %r10",
                     f"add %r2, {fn.s_base}", "add %r2, %r1",
                     f"ldxdw {b.sc(fn, rng)}, [%r2+0]"]


def s_call(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """A bpf-to-bpf call: context, scalars and a pointer into this frame's stack passed in."""
    if fn.loop or fn.depth >= MAX_CALL_DEPTH:
        return s_alu(b, fn, rng, nested)
    name = f"f{len(b.functions) + 1}"
    kind = rng.randrange(4)
    lines = fn.lines
    if kind == 0:  # a leaf: two scalars in, one out, no stack; every other one global
        callee = Fn(name, fn.depth + 1, [], 0, (), 0, 0, False,
                    global_args=2 * (len(b.functions) % 2))
        b.functions.append(callee)
        lines += [f"mov %r1, {b.sc(fn, rng)}", f"mov %r2, {rng.choice((b.sc(fn, rng), '7'))}",
                  f"call local {name}", f"{rng.choice(('mov', 'add', 'xor'))} "
                  f"{b.sc(fn, rng)}, %r0"]
        body = [f"{name}:", "mov %r0, %r1"]
        for _ in range(rng.randint(1, 4)):
            op = rng.choice(ALU_OPS)
            if op in SHIFTS:
                body.append(f"{op}{rng.choice(('', '32'))} %r0, {rng.randint(0, 31)}")
            elif op in DIVS:
                body.append(f"{op} %r0, %r2")
            else:
                body.append(f"{op}{rng.choice(('', '32'))} %r0, %r2")
        callee.lines = body + ["exit"]
        return
    if kind == 1:  # a checked packet pointer: the callee reads within the proven length
        skip = b.label()
        length = rng.randint(1, 40)
        b.derive(fn)
        b.check(fn, rng, "%r2", "%r3", length, skip)
        callee = Fn(name, fn.depth + 1, ["%r0"], 0, (), 0, 0, False)
        b.functions.append(callee)
        lines += ["mov %r1, %r2", f"mov %r2, {b.sc(fn, rng)}", f"call local {name}",
                  f"add {b.sc(fn, rng)}, %r0", f"{skip}:"]
        callee.lines.append(f"{name}:")
        callee.lines.append("mov %r0, %r2")
        size = rng.choice([s for s in SIZES if s <= length])
        off = rng.randint(0, length - size)
        callee.lines += [f"ldx{SIZE_NAMES[size]} %r3, [%r1+{off}]", "add %r0, %r3"]
        if rng.random() < 0.5:
            callee.lines.append(f"stx{SIZE_NAMES[size]} [%r1+{off}], %r0")
        callee.lines.append("exit")
        return
    # a full function: ctx, a scalar, a pointer to our scalar slots, another scalar
    callee = Fn(name, fn.depth + 1, ["%r7", "%r8"], SUB_SLOTS, SUB_PTRS, SUB_BUF, SUB_BUF_SIZE,
                buf_init=rng.random() < 0.5, arg=("%r9", 8 * fn.slots),
                in_callback=fn.in_callback)
    b.functions.append(callee)
    lines += ["mov %r1, %r6", f"mov %r2, {b.sc(fn, rng)}", "mov %r3, %r10",
              f"add %r3, {fn.s_base}", f"mov %r4, {rng.choice((b.sc(fn, rng), '3'))}",
              f"call local {name}", f"{rng.choice(('mov', 'add', 'xor'))} {b.sc(fn, rng)}, %r0"]
    callee.lines += [f"{name}:", "mov %r6, %r1", "mov %r7, %r2", "mov %r8, %r4", "mov %r9, %r3"]
    b.init_stack(callee, rng)
    b.block(callee, rng, rng.randint(1, 4))
    for _ in range(rng.randint(1, 2)):
        s_arg(b, callee, rng, True)
    callee.lines += [f"mov %r0, {b.sc(callee, rng)}", "exit"]


def s_callback(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """``bpf_loop`` with a callback that gets the context and this frame's scalar slots
    through a pointer to the spill slot below them, runs nested snippets and returns 0 or 1;
    the loop count is a small constant or a bounded scalar."""
    if fn.loop or fn.depth >= MAX_CALL_DEPTH:
        return s_alu(b, fn, rng, nested)
    name = f"f{len(b.functions) + 1}"
    callee = Fn(name, fn.depth + 1, ["%r7", "%r8"], SUB_SLOTS, SUB_PTRS, SUB_BUF, SUB_BUF_SIZE,
                buf_init=rng.random() < 0.5, arg=("%r9", 8 * fn.slots), callback=True,
                in_callback=True)
    b.functions.append(callee)
    lines = fn.lines
    skip = b.label()
    if rng.random() < 0.6:
        lines.append(f"mov %r1, {rng.choice((0, 1, 2, 2, 3))}")
    else:
        b.bound(fn, rng, "%r1", rng.choice((1, 3)), skip)
    spill = fn.s_base - 8  # the first pointer slot, right below the scalar slots
    lines += [f"stxdw [%r10{spill}], %r6", f"lddw %r2, func {name}", "mov %r3, %r10",
              f"add %r3, {spill}", "mov %r4, 0", "call 181",
              f"{rng.choice(('mov', 'add', 'xor'))} {b.sc(fn, rng)}, %r0", f"{skip}:"]
    callee.lines += [f"{name}:", "ldxdw %r6, [%r2+0]", "mov %r9, %r2", "add %r9, 8",
                     "mov %r7, %r1", f"mov %r8, {b.imm(rng)}"]
    b.init_stack(callee, rng)
    b.block(callee, rng, rng.randint(1, 3))
    for _ in range(rng.randint(1, 2)):
        s_arg(b, callee, rng, True)
    if rng.random() < 0.3:
        callee.lines.append("mov %r0, 0")
    else:
        callee.lines += [f"mov %r0, {b.sc(callee, rng)}", "and %r0, 1"]
    callee.lines.append("exit")


def s_arg(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Through the pointer to the caller's scalar slots (in a called function)."""
    if fn.arg is None:
        return s_stack(b, fn, rng, nested)
    reg, span = fn.arg
    how = rng.randrange(5)
    size = rng.choice(SIZES)
    sz = SIZE_NAMES[size]
    off = rng.randrange(0, span - size + 1, size)
    if how == 0:
        fn.lines.append(f"ldx{sz} {b.sc(fn, rng)}, [{reg}+{off}]")
    elif how == 1:
        fn.lines.append(f"stx{sz} [{reg}+{off}], {b.sc(fn, rng)}")
    elif how == 2:
        size = rng.choice((4, 8))
        _atomic(b, fn, rng, reg, rng.randrange(0, span - size + 1, size), size)
    elif how == 3:  # a variable offset
        skip = b.label()
        b.bound(fn, rng, "%r1", span - size, skip, align=size)
        fn.lines += [f"mov %r2, {reg}", "add %r2, %r1", f"ldx{sz} {b.sc(fn, rng)}, [%r2+0]",
                     f"{skip}:"]
    else:  # a helper writes into the caller's frame
        length = rng.randint(1, span - off)
        fn.lines += ["mov %r1, %r6", f"mov %r2, {rng.randint(0, 30)}", f"mov %r3, {reg}",
                     f"add %r3, {off}", f"mov %r4, {length}", "call 189",
                     f"add {b.sc(fn, rng)}, %r0"]


# -- arithmetic with exactly known results --------------------------------------------------
#: (mnemonic, 64-bit?, operands to draw from): a chain of these runs on a packet byte.
_CHAIN_OPS = (
    ("rsh", True, (1, 2, 3, 4)), ("rsh", False, (1, 2, 3)), ("and", True, (15, 31, 60, 0x3C)),
    ("and", False, (7, 63, 0xF0)), ("or", True, (1, 8, 32)), ("xor", True, (3, 0x20, 0x3F)),
    ("xor", False, (1, 0x30)), ("add", True, (-7, -1, 1, 5, 0x7FFFFFFF)),
    ("add", False, (-3, 2, 0x7FFFFFFF, -0x80000000)), ("sub", True, (1, 6, -2)),
    ("sub", False, (4, 200)), ("mul", True, (2, 3, 5)), ("mul", False, (3, 0x1000001)),
    ("div", True, (2, 3, 7)), ("div", False, (5, 9)), ("mod", True, (3, 10, 48, 64)),
    ("mod", False, (7, 33)), ("sdiv", True, (-2, 3, -7)), ("sdiv", False, (2, -5)),
    ("smod", True, (5, -6, 40)), ("smod", False, (-9, 17)), ("lsh", True, (1, 2, 56)),
    ("lsh", False, (1, 24, 28)), ("arsh", True, (1, 2, 60)), ("arsh", False, (1, 3, 31)),
    ("neg", True, (0,)), ("neg", False, (0,)), ("movsx8", True, (0,)), ("movsx8", False, (0,)),
    ("movsx16", True, (0,)), ("movsx32", True, (0,)), ("mov", False, (0,)),
    ("be16", False, (0,)), ("bswap16", True, (0,)), ("le16", False, (0,)),
    ("bswap32", True, (0,)), ("be64", False, (0,)),
)
_MASKS = (0xFF, 0x7F, 0x3F, 0xC3, 0x3)
_PROBES = (0, 1, 2, 0x3F, 0x40, 0x7F, 0x80, 0xC3, 0xFE, 0xFF)


def _chain_value(ops: list[tuple[str, bool, int]], x: int) -> int:
    """What the chain leaves in the register for input ``x``, by the RFC 9669 model."""
    for name, wide, k in ops:
        if name in ("be16", "bswap16", "le16", "bswap32", "be64"):
            kind, width = name[:-2], int(name[-2:])
            x = model_swap("le" if kind == "le" else "be", width, x)
        elif name.startswith("movsx") or name == "mov":
            x = model_alu(name, wide, x, x)
        else:
            x = model_alu(name, wide, x, k)
    return x


def _chain_text(ops: list[tuple[str, bool, int]], reg: str) -> list[str]:
    out = []
    for name, wide, k in ops:
        w = "" if wide else "32"
        if name in ("be16", "bswap16", "le16", "bswap32", "be64"):
            out.append(f"{name} {reg}")
        elif name == "neg":
            out.append(f"neg{w} {reg}")
        elif name == "mov":
            out.append(f"mov32 {reg}, {reg}")
        elif name.startswith("movsx"):
            out.append(f"{name}{'64' if wide else '32'} {reg}, {reg}")
        else:
            out.append(f"{name}{w} {reg}, {k}")
    return out


def _chain(rng: random.Random, limit: int) -> tuple[list[str], int, list[int], dict[int, int]]:
    """Ops turning a byte (masked by the returned mask) into values all within [0, limit],
    with every input's result: (ops text, mask, inputs, input -> result)."""
    for _ in range(40):
        ops = [(name, wide, rng.choice(ks)) for name, wide, ks in
               (rng.choice(_CHAIN_OPS) for _ in range(rng.randint(1, 4)))]
        mask = rng.choice(_MASKS)
        if not all(0 <= _chain_value(ops, x & mask) <= limit for x in _PROBES):
            continue  # most chains leave the range: a few inputs tell
        inputs = sorted({x & mask for x in range(256)})
        results = {x: _chain_value(ops, x) for x in inputs}
        if all(0 <= v <= limit for v in results.values()) and len(set(results.values())) > 1:
            return _chain_text(ops, "%r1"), mask, inputs, results
    ops = [("and", True, limit if limit & (limit + 1) == 0 else 15)]
    inputs = list(range(256))
    return _chain_text(ops, "%r1"), 0xFF, inputs, {x: _chain_value(ops, x) for x in inputs}


def _arith(b: _Builder, fn: Fn, rng: random.Random, one_short: bool) -> None:
    """A packet byte through a chain of arithmetic, then an index into the scalar slots: the
    slots are exactly as long as the largest result needs, or one byte short (a near miss
    the verifier must refuse: some byte value reaches past fp). Expanded first in the
    program, the snippet adds frames with the bytes giving the least and the largest result."""
    skip = b.label()
    span = 8 * fn.slots
    ops, mask, inputs, results = _chain(rng, span - 1)
    pos = rng.randint(0, 20)
    b.derive(fn)
    b.check(fn, rng, "%r2", "%r3", pos + 1, skip)
    fn.lines.append(f"ldxb %r1, [%r2+{pos}]")
    if mask != 0xFF:
        fn.lines.append(f"and %r1, {mask}")
    checked = not one_short and fn.depth == 0
    if checked:
        fn.lines.append("mov %r0, %r1")
    fn.lines += ops
    high = max(results.values())
    if one_short:
        length = high
    else:
        length = high + 1
        if checked:
            _self_check(b, fn, bytes(results.get(x, 0) for x in range(256)))
        fn.lines.append(f"jgt %r1, {high}, {skip}")  # never taken: the verifier may be vaguer
    fn.lines += ["mov %r4, %r10", f"add %r4, {-length}", "add %r4, %r1",
                 f"ldxb {b.sc(fn, rng)}, [%r4+0]", f"{skip}:"]
    if b.first:
        extremes = (max(inputs, key=results.__getitem__), min(inputs, key=results.__getitem__))
        for x in extremes:
            data = bytearray(rng.randbytes(pos + 1 + rng.randint(0, 40)))
            data[pos] = x
            b.witnesses.append(bytes(data))


def _self_check(b: _Builder, fn: Fn, table: bytes) -> None:
    """r0 holds a table index made of the inputs, r1 the result: the program returns
    ``ALU_MISMATCH`` unless the result is the table's entry, the RFC 9669 model's answer (both
    engines share their arithmetic, so comparing them alone would not tell)."""
    handle = max(b.maps) + 1
    b.maps[handle] = MapInfo(handle, MapSpec(f"expect{handle}", MapType.ARRAY, 4, len(table), 1,
                                             contents=((bytes(4), table),), frozen=True))
    ok = b.label()
    fn.lines += [f"lddw %r4, map_value({handle})+0", "add %r4, %r0", "ldxb %r4, [%r4+0]",
                 f"jeq %r4, %r1, {ok}", f"lddw %r0, {ALU_MISMATCH:#x}", "exit", f"{ok}:"]


def s_arith(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    (_arith if rng.random() < 0.5 else _pair)(b, fn, rng, one_short=False)


def r_arith(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    (_arith if rng.random() < 0.5 else _pair)(b, fn, rng, one_short=True)


_PAIR_OPS = ("add", "sub", "mul", "and", "or", "xor", "lsh", "rsh", "arsh", "div", "mod",
             "sdiv", "smod")
_PAIR_MASKS = (0x0F, 0x07, 0x3C, 0x03, 0xF0, 0x11)  # at most 16 values each
_JUMP_NAMES = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle", "jset")


def _pair_steps(rng: random.Random) -> list[tuple[str, ...]]:
    """Steps on x (r1) and y (r5): ("op", name, wide, operand) with operand "y" or a number,
    and one ("jump", name, wide, operand): x continues where the jump is not taken."""
    steps: list[tuple] = []
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.7:
            steps.append(("op", rng.choice(_PAIR_OPS), rng.random() < 0.6, "y"))
        else:
            name, wide, ks = rng.choice(_CHAIN_OPS)
            steps.append(("op", name, wide, rng.choice(ks)))
    jump = ("jump", rng.choice(_JUMP_NAMES), rng.random() < 0.6,
            "y" if rng.random() < 0.6 else rng.choice((0, 1, 7, 16, 40, -1)))
    steps.insert(rng.randint(0, len(steps)), jump)
    return steps


def _pair_value(steps: list[tuple], x: int, y: int) -> int | None:
    """x after the steps, or None where the jump leaves (the RFC 9669 model)."""
    for kind, name, wide, operand in steps:
        k = y if operand == "y" else operand
        if kind == "jump":
            if model_jump(name, wide, x, k):
                return None
        elif name in ("be16", "bswap16", "le16", "bswap32", "be64"):
            x = model_swap("le" if name.startswith("le") else "be", int(name[-2:]), x)
        elif name.startswith("movsx") or name == "mov":
            x = model_alu(name, wide, x, x)
        else:
            x = model_alu(name, wide, x, k)
    return x


def _pair_text(steps: list[tuple], skip: str) -> list[str]:
    out = []
    for kind, name, wide, operand in steps:
        w = "" if wide else "32"
        k = "%r5" if operand == "y" else operand
        if kind == "jump":
            out.append(f"{name}{w} %r1, {k}, {skip}")
        else:
            out += _chain_text([(name, wide, operand)], "%r1") if operand != "y" else \
                [f"{name}{w} %r1, %r5"]
    return out


def _pair(b: _Builder, fn: Fn, rng: random.Random, one_short: bool) -> None:
    """Two packet bytes, x and y, through arithmetic between them and a compare that refines
    x, then x indexes the scalar slots: exactly long enough for the largest x that passes the
    compare (every pair of inputs enumerated), or one byte short (a near miss)."""
    span = 8 * fn.slots
    for _ in range(30):
        steps = _pair_steps(rng)
        mx, my = rng.choice(_PAIR_MASKS), rng.choice(_PAIR_MASKS)
        probes = [(a & mx, c & my) for a in _PROBES[::3] for c in _PROBES[1::3]]
        values = [_pair_value(steps, x, y) for x, y in probes]
        if any(v is not None and not 0 <= v < span for v in values):
            continue
        pairs = [(x, y) for x in sorted({a & mx for a in range(256)})
                 for y in sorted({c & my for c in range(256)})]
        results = {p: _pair_value(steps, *p) for p in pairs}
        passing = {p: v for p, v in results.items() if v is not None}
        if passing and all(0 <= v < span for v in passing.values()) and \
                len(set(passing.values())) > 1:
            break
    else:
        return _arith(b, fn, rng, one_short)
    skip = b.label()
    p1, p2 = rng.randint(0, 16), rng.randint(0, 16)
    b.derive(fn)
    b.check(fn, rng, "%r2", "%r3", max(p1, p2) + 1, skip)
    fn.lines += [f"ldxb %r1, [%r2+{p1}]", f"ldxb %r5, [%r2+{p2}]", f"and %r1, {mx}",
                 f"and %r5, {my}"]
    checked = not one_short and fn.depth == 0 and mx < 16 and my < 16  # low masks
    if checked:
        fn.lines += ["mov %r0, %r1", "lsh %r0, 4", "add %r0, %r5"]
    fn.lines += _pair_text(steps, skip)
    high = max(passing.values())
    length = high if one_short else high + 1
    if not one_short:
        if checked:
            _self_check(b, fn, bytes(passing.get((i >> 4, i & 15), 0) for i in range(256)))
        fn.lines.append(f"jgt %r1, {high}, {skip}")  # never taken: the verifier may be vaguer
    fn.lines += ["mov %r4, %r10", f"add %r4, {-length}", "add %r4, %r1",
                 f"ldxb {b.sc(fn, rng)}, [%r4+0]", f"{skip}:"]
    if b.first and p1 != p2:
        top = max(passing, key=passing.__getitem__)
        low = min(passing, key=passing.__getitem__)
        for x, y in (top, low):
            data = bytearray(rng.randbytes(max(p1, p2) + 1 + rng.randint(0, 40)))
            data[p1], data[p2] = x, y
            b.witnesses.append(bytes(data))


# -- pointers of several kinds meeting in one register ----------------------------------------
def s_join(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """Each path puts a different kind of pointer (packet, stack, map value, global data) in
    r5; after the paths meet, one access (maybe at a bounded variable offset) through r5
    must suit every kind, and each engine must serve each kind at the same instruction."""
    kinds = ["pkt", "stack"]
    values = [m for m in b.data_maps() if m.spec.max_entries > 1]
    globals_ = [m for m in b.maps.values() if m.type == MapType.ARRAY and m.spec.max_entries == 1]
    if values:
        kinds.append("value")
    if globals_:
        kinds.append("global")
    if fn.reserved:
        kinds.remove("stack")
    chosen = rng.sample(kinds, min(len(kinds), rng.choice((2, 2, 3))))
    if len(chosen) < 2:
        return s_stack(b, fn, rng, nested)
    skip, join = b.label(), b.label()
    lines = fn.lines
    lengths = []
    value = rng.choice(values) if "value" in chosen else None
    glob = rng.choice(globals_) if "global" in chosen else None
    gbase = rng.randrange(glob.value_size) if glob else 0
    if value:
        _key(b, fn, rng, value)
        lines += [f"lddw %r1, map_fd({value.handle})", "call 1", f"jeq %r0, 0, {skip}"]
        lengths.append(value.value_size)
    if "pkt" in chosen:
        length = rng.randint(1, 40)
        b.derive(fn)
        b.check(fn, rng, "%r2", "%r3", length, skip)
        lengths.append(length)
    if "stack" in chosen:
        lengths.append(8 * fn.slots)
    if glob:
        lengths.append(glob.value_size - gbase)
    span = min(lengths)
    setups = {"pkt": ["mov %r5, %r2"], "stack": ["mov %r5, %r10", f"add %r5, {fn.s_base}"],
              "value": ["mov %r5, %r0"],
              "global": [f"lddw %r5, map_value({glob.handle if glob else 0})+{gbase}"]}
    labels = [b.label() for _ in chosen[1:]]
    for i, kind in enumerate(chosen):
        if i:
            lines.append(f"{labels[i - 1]}:")
        if i < len(chosen) - 1:
            op = rng.choice(JUMPS) + rng.choice(("", "32"))
            lines.append(f"{op} {b.sc(fn, rng)}, {b.imm(rng)}, {labels[i]}")
        lines += setups[kind]
        if i < len(chosen) - 1:
            lines.append(f"ja {join}")
    lines.append(f"{join}:")
    size = rng.choice([s for s in SIZES if s <= span])
    align = size if "stack" in chosen else 1  # stack accesses are aligned
    off = rng.randrange(0, span - size + 1, align)
    variable = rng.random() < 0.4 and off + size < span
    if variable:
        b.bound(fn, rng, "%r1", span - size - off, skip, align=align)
        lines.append("add %r5, %r1")
    aligned = not variable and (off + gbase) % size == 0 and off % size == 0  # for atomics
    sz = SIZE_NAMES[size]
    writable = glob is None or glob.writable
    how = rng.randrange(4)
    if how == 0 and writable:
        lines.append(f"stx{sz} [%r5+{off}], {b.sc(fn, rng)}")
    elif how == 1 and writable:
        lines.append(f"st{sz} [%r5+{off}], {b.imm(rng)}")
    elif how == 2 and writable and "pkt" not in chosen and size >= 4 and aligned:
        _atomic(b, fn, rng, "%r5", off, size)
    else:
        lines.append(f"ldx{sz} {b.sc(fn, rng)}, [%r5+{off}]")
    lines.append(f"{skip}:")


# -- constants through the stack ------------------------------------------------------------
def _probe(b: _Builder, fn: Fn, rng: random.Random, risky: bool) -> None:
    """A constant spilled whole (8 bytes), then a part of it read back and used as an index
    into the scalar slots sized exactly for it: the verifier must know the part to accept.

    Near misses (``risky``): the slots one byte short; or the spilled constant changed after
    the spill - by a store into it, an atomic, a helper filling it, a called function
    writing through a pointer, a variable-offset store - while the slots stay sized for the
    old part, so the run reaches past fp if the verifier kept the old constant.
    """
    free = fn.free_slots()
    if not free:
        return s_alu(b, fn, rng, False)
    span = 8 * fn.slots
    slot = -8 * rng.choice(free)
    size = rng.choice(SIZES)
    at = rng.randrange(0, 8, size)
    signed = size < 8 and rng.random() < 0.3
    part = rng.randint(0, min(span - 2, (1 << (8 * size - 1)) - 1))
    value = rng.getrandbits(64) & ~(((1 << (8 * size)) - 1) << (8 * at)) | part << (8 * at)
    how = rng.randrange(3)
    signed_imm = value - (1 << 64) if value >> 63 else value
    if how == 0 and -(1 << 31) <= signed_imm < (1 << 31):
        fn.lines.append(f"stdw [%r10{slot}], {signed_imm}")
    elif how == 1:
        fn.lines += [f"lddw %r1, {value:#x}", f"stxdw [%r10{slot}], %r1"]
    else:
        imm = rng.randint(-(1 << 31), (1 << 31) - 1)  # a 32-bit immediate, sign-extended
        value = imm & 0xFFFF_FFFF_FFFF_FFFF
        part = (value >> (8 * at)) & ((1 << (8 * size)) - 1)
        if part >= span - 1:
            imm, value, part = at << 3, (at << 3) << (8 * at), at << 3
            imm = value - (1 << 64) if value >> 63 else value
            if not -(1 << 31) <= imm < (1 << 31):
                imm, value, part = 0, 0, 0
        fn.lines += [f"mov %r1, {imm}", f"stxdw [%r10{slot}], %r1"]
    length = part + 1
    lines = fn.lines
    if rng.random() < 0.3:  # a spilled constant survives a helper call
        lines += [f"call {rng.choice(PLAIN_HELPERS)}", f"xor {b.sc(fn, rng)}, %r0"]
    if risky:
        clobber = rng.randrange(6)
        target = slot + at + rng.randrange(size)  # a byte of the part
        if clobber == 0:
            length = part  # one byte short
        elif clobber == 1:
            lines.append(f"stb [%r10{target}], {rng.randint(0x40, 0x7F)}")
        elif clobber == 2:  # one more in the part's lowest byte (which is below 0xff)
            if rng.random() < 0.5:
                lines += [f"lddw %r1, {1 << (8 * at):#x}", f"lock add [%r10{slot}], %r1"]
            else:
                half = slot + (at & 4)
                lines += [f"mov %r1, {1 << (8 * (at & 3))}", f"lock add32 [%r10{half}], %r1"]
        elif clobber == 3:
            lines += ["mov %r1, %r6", "mov %r2, 0", "mov %r3, %r10", f"add %r3, {slot}",
                      "mov %r4, 8", "call 189"]
        elif clobber == 4 and fn.depth < MAX_CALL_DEPTH and not fn.loop:
            name = f"f{len(b.functions) + 1}"
            callee = Fn(name, fn.depth + 1, [], 0, (), 0, 0, False)
            callee.lines = [f"{name}:", f"stb [%r1+{target - slot}], {rng.randint(64, 255)}",
                            "mov %r0, 0", "exit"]
            b.functions.append(callee)
            lines += ["mov %r1, %r10", f"add %r1, {slot}", f"call local {name}"]
        else:
            lines += [f"mov %r2, {b.sc(fn, rng)}", "and %r2, 7", "mov %r1, %r10",
                      f"add %r1, {slot}", "add %r1, %r2", "stb [%r1+0], 0x7f"]
    sz = SIZE_NAMES[size]
    lines.append(f"ldx{'s' if signed else ''}{sz} %r1, [%r10{slot + at:+d}]")
    lines += ["mov %r4, %r10", f"add %r4, {-length}", "add %r4, %r1",
              f"ldxb {b.sc(fn, rng)}, [%r4+0]"]


def s_probe(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    _probe(b, fn, rng, risky=False)


def r_probe(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    _probe(b, fn, rng, risky=True)


# -- near misses ----------------------------------------------------------------------------
def r_pkt_past_check(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    skip = b.label()
    length = rng.randint(1, 40)
    size = rng.choice(SIZES)
    b.derive(fn)
    b.check(fn, rng, "%r2", "%r3", length, skip)
    fn.lines += [f"ldx{SIZE_NAMES[size]} {b.sc(fn, rng)}, [%r2{length - size + 1:+d}]", f"{skip}:"]


def r_no_null_check(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    maps = [m for m in b.data_maps() if m.spec.max_entries > 1]
    if not maps:
        return r_uninit_stack(b, fn, rng, nested)
    m = rng.choice(maps)
    _key(b, fn, rng, m)
    fn.lines += [f"lddw %r1, map_fd({m.handle})", "call 1", f"ldxb {b.sc(fn, rng)}, [%r0+0]"]


def r_value_past_end(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    maps = [m for m in b.data_maps() if m.spec.max_entries > 1]
    if not maps:
        return r_pkt_past_check(b, fn, rng, nested)
    m = rng.choice(maps)
    skip = b.label()
    _key(b, fn, rng, m)
    fn.lines += [f"lddw %r1, map_fd({m.handle})", "call 1", f"jeq %r0, 0, {skip}"]
    if rng.random() < 0.5:
        b.bound(fn, rng, "%r1", m.value_size, skip)  # one too many
        fn.lines += ["add %r0, %r1", f"ldxb {b.sc(fn, rng)}, [%r0+0]"]
    else:
        fn.lines.append(f"ldxw {b.sc(fn, rng)}, [%r0+{m.value_size - 3}]")
    fn.lines.append(f"{skip}:")


def r_uninit_stack(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    if fn.buf_init:
        fn.lines.append(f"ldxdw {b.sc(fn, rng)}, [%r10{fn.ptr_slots[0]}]")
    else:
        fn.lines.append(f"ldxw {b.sc(fn, rng)}, [%r10{fn.buf + rng.randrange(0, fn.buf_size, 4)}]")


def r_stale_packet(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    skip = b.label()
    b.derive(fn)
    b.check(fn, rng, "%r2", "%r3", 8, skip)
    spill = fn.ptr_slots[0]
    fn.lines += [f"stxdw [%r10{spill}], %r2", "mov %r1, %r6",
                 f"mov %r2, {rng.choice((0, -8, 8))}", f"call {rng.choice((44, 65, 54))}",
                 f"ldxdw %r2, [%r10{spill}]", f"ldxb {b.sc(fn, rng)}, [%r2+0]", f"{skip}:"]


def r_unbounded_index(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    """An index bounded on one side only, or by a 32-bit compare of a 64-bit value."""
    skip = b.label()
    how = rng.randrange(3)
    src = b.sc(fn, rng)
    if how == 0:
        fn.lines += [f"mov %r1, {src}", f"jsgt %r1, 7, {skip}"]
    elif how == 1:
        fn.lines += [f"mov %r1, {src}", f"jgt32 %r1, 7, {skip}"]
    else:
        fn.lines += [f"mov %r1, {src}", f"jslt %r1, 0, {skip}"]
    fn.lines += ["mov %r2, %r10", f"add %r2, {fn.s_base}", "add %r2, %r1",
                 f"ldxb {b.sc(fn, rng)}, [%r2+0]", f"{skip}:"]


def r_misc(b: _Builder, fn: Fn, rng: random.Random, nested: bool) -> None:
    how = rng.randrange(7)
    reg = b.sc(fn, rng)
    if how == 6:  # pop or peek into the stack: the full profile has no queue or stack maps
        handle = max(b.maps) + 1
        kind = rng.choice((MapType.QUEUE, MapType.STACK))
        b.maps[handle] = MapInfo(handle, MapSpec(f"queue{handle}", kind, 0, 8, 4))
        fn.lines += [f"lddw %r1, map_fd({handle})", "mov %r2, %r10", f"add %r2, {fn.buf}",
                     f"call {rng.choice((88, 89))}", f"ldxdw {reg}, [%r10{fn.buf}]"]
        return
    if how == 0:  # misaligned stack
        fn.lines.append(f"ldxw {reg}, [%r10-{8 * rng.randint(1, fn.slots) - 2}]")
    elif how == 1:  # write to the context
        fn.lines.append(f"stxw [%r6+16], {reg}")
    elif how == 2:  # 32-bit mov with sign-extension from 32 bits is not an instruction
        src = rng.choice(fn.scalars)[2:]
        fn.lines.append(str(Instruction(0xBC, int(reg[2:]), int(src), 32, 0)))
    elif how == 3:  # an atomic on the packet
        skip = b.label()
        b.derive(fn)
        b.check(fn, rng, "%r2", "%r3", 8, skip)
        fn.lines += [f"lock add [%r2+0], {reg}", f"{skip}:"]
    elif how == 4:  # a pointer into a map value
        maps = [m for m in b.data_maps(writable=True) if m.value_size >= 8
                and m.spec.max_entries > 1]
        if maps:
            m = rng.choice(maps)
            skip = b.label()
            _key(b, fn, rng, m)
            fn.lines += [f"lddw %r1, map_fd({m.handle})", "call 1", f"jeq %r0, 0, {skip}",
                         "stxdw [%r0+0], %r6", f"{skip}:"]
    else:  # a packet access compared with a 32-bit jump
        skip = b.label()
        b.derive(fn)
        fn.lines += ["mov %r4, %r2", "add %r4, 4", f"jgt32 %r4, %r3, {skip}",
                     f"ldxw {reg}, [%r2+0]", f"{skip}:"]


SNIPPETS: dict[str, Snippet] = {
    "alu": s_alu, "ctx": s_ctx, "stack": s_stack, "pkt": s_pkt, "pkt_var": s_pkt_var,
    "pkt_parse": s_pkt_parse, "pkt_loop": s_pkt_loop, "meta": s_meta, "adjust": s_adjust,
    "map_lookup": s_map_lookup, "map_update": s_map_update, "map_delete": s_map_delete,
    "global": s_global, "stack_var": s_stack_var, "spill": s_spill, "helper": s_helper,
    "load_bytes": s_load_bytes, "atomic": s_atomic_stack, "branch": s_branch,
    "degenerate": s_degenerate, "index": s_index, "early_exit": s_early_exit, "loop": s_loop,
    "call": s_call, "arg": s_arg, "callback": s_callback,
    "r_pkt": r_pkt_past_check, "r_null": r_no_null_check, "r_value": r_value_past_end,
    "r_uninit": r_uninit_stack, "r_stale": r_stale_packet, "r_index": r_unbounded_index,
    "r_misc": r_misc, "arith": s_arith, "r_arith": r_arith, "probe": s_probe,
    "r_probe": r_probe, "join": s_join, "r_ref": r_reference,
}
RISKY = frozenset(k for k in SNIPPETS if k.startswith("r_"))
LOOPING = frozenset({"loop", "pkt_loop"})
#: (kind, weight) of top-level snippets; kind 0 is what shrinking ends at.
TOP_WEIGHTS = (
    ("alu", 10), ("ctx", 3), ("stack", 6), ("pkt", 8), ("pkt_var", 6), ("pkt_parse", 3),
    ("pkt_loop", 3), ("meta", 3), ("adjust", 3), ("map_lookup", 9), ("map_update", 4),
    ("map_delete", 2), ("global", 3), ("stack_var", 5), ("spill", 5), ("helper", 6),
    ("load_bytes", 4), ("atomic", 6), ("branch", 7), ("degenerate", 3), ("index", 5),
    ("early_exit", 2), ("loop", 5), ("call", 5), ("arith", 4), ("probe", 3), ("join", 4),
    ("callback", 3), ("risky", 6),
)
RISKY_KINDS = tuple(sorted(RISKY))
NESTED_WEIGHTS = tuple((k, w) for k, w in TOP_WEIGHTS if k != "risky") + (("arg", 4),)


def _table(weights: tuple[tuple[str, int], ...]) -> tuple[tuple[str, ...], list[int]]:
    return tuple(k for k, _ in weights), list(accumulate(w for _, w in weights))


TOP_TABLE = _table(TOP_WEIGHTS)
NESTED_TABLE = _table(NESTED_WEIGHTS)
TOP_TOTAL = TOP_TABLE[1][-1]


def _pick(rng: random.Random, table: tuple[tuple[str, ...], list[int]]) -> str:
    kinds, cumulative = table
    return kinds[bisect_right(cumulative, rng.randrange(cumulative[-1]))]


#: Hypothesis draws small numbers and range ends far more often than others: a drawn kind
#: is scattered over the table by this stride (coprime with the total), 0 staying 0.
_STRIDE = next(p for p in range(TOP_TOTAL // 3, TOP_TOTAL) if gcd(p, TOP_TOTAL) == 1)


def kind_of(draw: int) -> str:
    """The top-level kind for a drawn number in [0, TOP_TOTAL); 0 is plain arithmetic."""
    kinds, cumulative = TOP_TABLE
    return kinds[bisect_right(cumulative, draw * _STRIDE % TOP_TOTAL)]


# -- frames -----------------------------------------------------------------------------
def well_formed_frame(seed: int) -> bytes:
    """Ethernet + IPv4 (sometimes with options) + UDP, TCP or ICMP + a short payload, cut to
    a random length; mostly IPv4 ethertypes."""
    rng = random.Random(seed)
    payload = rng.randbytes(rng.randint(0, 40))
    proto = rng.choice((6, 17, 17, 1))
    if proto == 6:
        l4 = frames.tcp(rng.randint(1, 65535), rng.choice((22, 80, 443)),
                        frames.TCP_PSH | frames.TCP_ACK, payload, seq=rng.getrandbits(32),
                        ack=rng.getrandbits(32), window=512)
    elif proto == 17:
        l4 = frames.udp(rng.randint(1, 65535), rng.choice((53, 123, 4789)), payload)
    else:
        l4 = frames.icmp_echo(8, rng.getrandbits(16), 1, payload)
    options = bytes(4 * rng.choice((0, 0, 0, 1, 2)))
    ident, ttl = rng.getrandbits(16), rng.randint(1, 64)
    src, dst = rng.randbytes(4), rng.randbytes(4)
    packet = frames.ipv4(src, dst, proto, l4, ttl, ident=ident, frag=0x4000, options=options)
    ethertype = 0x0800 if rng.random() < 0.9 else rng.choice((0x86DD, 0x0806))
    mac_dst, mac_src = rng.randbytes(6), rng.randbytes(6)
    frame = frames.ether(packet, ethertype, src=mac_src, dst=mac_dst)
    return frame[:rng.choice((128, 128, 128, 40, 30))]


# -- assembling ---------------------------------------------------------------------------
_JUMPING = ("j", "call local", "lddw %r2, func")


@lru_cache(maxsize=1 << 16)
def _one(line: str) -> Instruction:
    (insn,) = assemble(line)
    return insn


def assemble_lines(text: str) -> tuple[Instruction, ...]:
    """``assemble(text)`` for generated text, memoised line by line (the assembler is most of
    the cost of building a program, and most lines recur): labels are resolved here, each
    line with its jump offset made numeric is assembled once."""
    labels: dict[str, int] = {}
    items: list[tuple[int, str]] = []
    slot = 0
    for line in text.splitlines():
        if not line:
            continue
        if line.endswith(":"):
            labels[line[:-1]] = slot
            continue
        items.append((slot, line))
        slot += 2 if line.startswith("lddw") else 1
    out = []
    for at, line in items:
        if line.startswith(_JUMPING):
            head, sep, target = line.rpartition(" ")
            if target in labels:
                line = f"{head}{sep}{labels[target] - at - 1:+d}"
        out.append(_one(line))
    return tuple(out)


# -- the strategy ---------------------------------------------------------------------------
def _mix(*parts: int) -> int:
    """One seed from several numbers; equal drawn seeds at other positions or in other shards
    give other programs (Hypothesis repeats small seeds often)."""
    return hash(parts) & 0xFFFF_FFFF_FFFF


def build(seed: int, snippets: list[tuple[int, int]], frames: tuple[bytes, ...] = (b"",),
          rx_queue: int = 0, salt: int = 0) -> Generated:
    """The program for these draws (also usable without Hypothesis, e.g. in a benchmark)."""
    named = [(kind_of(k), _mix(s, salt, i)) for i, (k, s) in enumerate(snippets)]
    named = [(RISKY_KINDS[s % len(RISKY_KINDS)] if k == "risky" else k, s) for k, s in named]
    return build_named(_mix(seed, salt, -1), named, frames, rx_queue)


def build_named(seed: int, snippets: list[tuple[str, int]], frames: tuple[bytes, ...] = (b"",),
                rx_queue: int = 0) -> Generated:
    """The program of these snippets, by kind name (``SNIPPETS``) and seed."""
    builder = _Builder(seed)
    text, kinds = builder.main(snippets)
    insns = assemble_lines(text)
    maps = {h: m.spec for h, m in builder.maps.items()}
    return Generated(insns, text, maps, frames + tuple(builder.witnesses), rx_queue, kinds,
                     any(k in RISKY for k in kinds), _functions(builder, text, insns))


def _functions(builder: _Builder, text: str, insns: Sequence[Instruction]
               ) -> tuple[FuncInfo, ...]:
    """func_info for the global functions: each at the slot of its label."""
    arity = {fn.name: fn.global_args for fn in builder.functions if fn.global_args}
    if not arity:
        return ()
    found = [FuncInfo(0, "main")]
    slot, widths = 0, iter(insns)
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.endswith(":"):
            name = line[:-1]
            if name in arity:
                proto = FuncProto((FuncArg(ArgKind.SCALAR),) * arity[name])
                found.append(FuncInfo(slot, name, Linkage.GLOBAL, proto))
            continue
        insn = next(widths, None)
        slot += insn.width if insn is not None else 1
    return tuple(found)


def frame(kind: int, seed: int, length: int) -> bytes:
    """Random bytes (kinds 0 and 1) or a well-formed Ethernet/IPv4 frame (2), from a seed."""
    if kind < 2:
        return random.Random(seed).randbytes(length)
    return well_formed_frame(seed)


SEEDS = st.integers(0, (1 << 32) - 1)
FRAMES = st.lists(st.builds(frame, st.integers(0, 2), SEEDS, st.integers(0, 128)),
                  min_size=2, max_size=4).map(tuple)


def xdp_programs(max_snippets: int = 8, salt: int = 0) -> st.SearchStrategy[Generated]:
    """Programs for the differential and soundness tests; ``salt`` makes parallel shards
    draw different programs from the same choices."""
    snippets = st.lists(st.tuples(st.integers(0, TOP_TOTAL - 1), SEEDS), min_size=1,
                        max_size=max_snippets)
    return st.builds(lambda seed, parts, frames, queue: build(seed, parts, frames, queue, salt),
                     SEEDS, snippets, FRAMES, st.integers(0, 3))
