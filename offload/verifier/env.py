"""What every check needs besides the state: the program, the device, the maps, counters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..caps.capabilities import Capabilities
from ..maps.spec import MapSpec
from ..uapi import ProgType
from .ops import Op
from .program import Program
from .reject import Reject
from .state import Reg, RegType

MapResolver = Mapping[int, MapSpec] | Callable[[int], MapSpec | None]
T = TypeVar("T")

#: Results ``Env.cached`` keeps before it starts over (bounds memory on the largest programs).
MEMO_LIMIT = 1 << 16
_MISSING = object()


@dataclass(slots=True)
class PointerUses:
    """The pointers one instruction used, over every explored path (facts for engines):
    by register, (type, map handle, inner map, stack frame counted back from the current)."""

    op: Op
    regs: dict[int, set[tuple[RegType, int, bool, int]]]


@dataclass(slots=True)
class Env:
    """Per-verification context; ``next_id`` hands out ids for pointers and linked scalars."""

    prog: Program
    caps: Capabilities
    prog_type: ProgType
    lddw: dict[int, Reg] = field(default_factory=dict)  # slot -> register an lddw loads
    id_gen: int = 0
    stack_depth: dict[int, int] = field(default_factory=dict)  # function -> bytes used
    #: slot -> the pointers its memory access or helper call was seen with (facts for engines)
    accesses: dict[int, PointerUses] = field(default_factory=dict)
    #: slot -> the fact that a 64-bit add/sub/mul/lsh never wraps, None once a path wraps
    no_wrap: dict[int, Any] = field(default_factory=dict)
    #: handles of the maps of maps among the lddw's (inner map values are named by them)
    outer_maps: frozenset[int] | None = None
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict)  # for ``cached``
    #: the precision tracker (``precision.Precision``); None compares every scalar in pruning
    precision: Any = None
    #: whether the program's license lets it call GPL-only helpers (kernel ``gpl_compatible``)
    gpl_compatible: bool = True
    #: keep a checkpoint at every prune point (kernel BPF_F_TEST_STATE_FREQ)
    state_freq: bool = False
    #: ``enum bpf_attach_type`` given at load (BPF_XDP_DEVMAP: a devmap entry's program)
    expected_attach_type: int = 0
    #: first slot -> the global functions (``globals.GlobalFunc``), verified on their own
    functions: dict[int, Any] = field(default_factory=dict)
    #: the global functions some explored path calls (first slots)
    called: set[int] = field(default_factory=set)
    #: what calls passed global functions' memory arguments: (type, map handle, map)
    mem_passed: set[tuple[RegType, int, MapSpec | None]] = field(default_factory=set)
    #: the first slot of the function verified on its own now: 0 the main program, else a
    #: global function's
    root: int = 0

    def cached(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` for a pure ``fn`` of immutable values, computed once per verification.

        The same operation on the same abstract values recurs across paths and loop iterations
        (in the XDP fixtures, three ALU results and branch narrowings in four are repeats), so
        remembering results changes nothing but the time taken.
        """
        key = (fn, args)
        value = self.memo.get(key, _MISSING)
        if value is _MISSING:
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            value = self.memo[key] = fn(*args)
        return value

    def demand(self, state: Any, *regnos: int) -> None:
        """The check being made relies on the values of these scalar registers."""
        if self.precision is not None:
            self.precision.demand_regs(state, regnos)

    def demand_packet(self, state: Any, length: int, meta: bool = False) -> None:
        """The check being made relies on ``length`` bytes of the packet (or metadata) length
        proven so far."""
        if self.precision is not None:
            self.precision.demand_packet(state, length, meta)

    def next_id(self) -> int:
        self.id_gen += 1
        return self.id_gen

    def note_stack(self, subprog: int, depth: int) -> None:
        if depth > self.stack_depth.get(subprog, 0):
            self.stack_depth[subprog] = depth


#: Licenses the kernel counts as GPL-compatible (``license_is_gpl_compatible``).
GPL_COMPATIBLE = frozenset({"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL",
                            "Dual MIT/GPL", "Dual MPL/GPL"})


def resolve_map(maps: MapResolver, handle: int) -> MapSpec:
    """The map an ``lddw`` names, in the kernel's words when there is none."""
    try:
        spec = maps(handle) if callable(maps) else maps.get(handle)
    except (KeyError, LookupError):
        spec = None
    if not isinstance(spec, MapSpec):
        raise Reject(f"fd {handle} is not pointing to valid bpf_map")
    return spec


def reg_name(regno: int) -> str:
    return f"R{regno}"
