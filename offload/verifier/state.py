"""Abstract machine state: registers, stack slots, call frames.

Registers are immutable ``Reg`` values so a state copy at a branch only copies lists of
references. Pointer registers keep the kernel's split of the offset into a fixed part ``off``
and a variable part ``var`` (a ``Scalar``); packet pointers carry ``range``, the bytes past
``off`` proven to lie before ``data_end`` for every pointer sharing their ``id``
(kernel ``find_good_pkt_pointers``). The state also keeps ``pkt_len``: the packet length proven
by any comparison, which makes variable-offset accesses provable where the kernel's per-id
ranges are not.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Protocol

from ..maps.spec import MapSpec
from .scalar import Scalar

MAX_REGS = 11
SLOT = 8


class RegType(IntEnum):
    """The kernel's ``enum bpf_reg_type`` for what an XDP program can hold."""

    NOT_INIT = 0
    SCALAR = 1
    PTR_TO_CTX = 2
    CONST_PTR_TO_MAP = 3
    PTR_TO_MAP_VALUE = 4
    PTR_TO_MAP_VALUE_OR_NULL = 5
    PTR_TO_STACK = 6
    PTR_TO_PACKET = 7
    PTR_TO_PACKET_META = 8
    PTR_TO_PACKET_END = 9
    CONST_PTR_TO_MAP_OR_NULL = 10  # an inner map from a map-in-map lookup
    # Referenced objects (``refs``): a socket lookup's result and a ring buffer reservation.
    PTR_TO_SOCKET = 11
    PTR_TO_SOCKET_OR_NULL = 12
    PTR_TO_SOCK_COMMON = 13
    PTR_TO_SOCK_COMMON_OR_NULL = 14
    PTR_TO_RINGBUF_MEM = 15  # the kernel's PTR_TO_MEM | MEM_RINGBUF; ``range`` is its size
    PTR_TO_RINGBUF_MEM_OR_NULL = 16
    PTR_TO_FUNC = 17  # a subprogram's address (``lddw func``); ``off`` is its first slot
    #: a global function's memory argument (the kernel's PTR_TO_MEM): ``range`` bytes of
    #: whatever its callers passed (stack, map value, packet), NULL until checked
    PTR_TO_MEM = 18
    PTR_TO_MEM_OR_NULL = 19

    @property
    def maybe_null(self) -> bool:
        return self in MAYBE_NULL

    @property
    def is_pointer(self) -> bool:
        return self in POINTERS

    @property
    def is_packet(self) -> bool:
        return self in PACKETS


# Python 3.11 looks an enum member up through EnumType.__getattr__, at about ten times the cost
# of a global, so the checks that run on every instruction compare against these names.
UNINIT = RegType.NOT_INIT
SCALAR = RegType.SCALAR
PTR_TO_CTX = RegType.PTR_TO_CTX
PTR_TO_MAP_VALUE = RegType.PTR_TO_MAP_VALUE
PTR_TO_STACK = RegType.PTR_TO_STACK
PTR_TO_PACKET = RegType.PTR_TO_PACKET
PTR_TO_PACKET_META = RegType.PTR_TO_PACKET_META
POINTERS = frozenset(t for t in RegType if t >= PTR_TO_CTX)
PACKETS = frozenset({PTR_TO_PACKET, PTR_TO_PACKET_META})
#: Each maybe-NULL type and what a null check proves it is when it is not NULL.
NOT_NULL = {RegType.PTR_TO_MAP_VALUE_OR_NULL: RegType.PTR_TO_MAP_VALUE,
            RegType.CONST_PTR_TO_MAP_OR_NULL: RegType.CONST_PTR_TO_MAP,
            RegType.PTR_TO_SOCKET_OR_NULL: RegType.PTR_TO_SOCKET,
            RegType.PTR_TO_SOCK_COMMON_OR_NULL: RegType.PTR_TO_SOCK_COMMON,
            RegType.PTR_TO_RINGBUF_MEM_OR_NULL: RegType.PTR_TO_RINGBUF_MEM,
            RegType.PTR_TO_MEM_OR_NULL: RegType.PTR_TO_MEM}
MAYBE_NULL = frozenset(NOT_NULL)
#: Pointers to a socket (``struct bpf_sock``), which programs may only read.
SOCKETS = frozenset({RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCK_COMMON})


#: Names the kernel log uses (kernel ``reg_type_str``).
TYPE_NAMES = {
    RegType.NOT_INIT: "?", RegType.SCALAR: "scalar", RegType.PTR_TO_CTX: "ctx",
    RegType.CONST_PTR_TO_MAP: "map_ptr", RegType.PTR_TO_MAP_VALUE: "map_value",
    RegType.PTR_TO_MAP_VALUE_OR_NULL: "map_value_or_null", RegType.PTR_TO_STACK: "fp",
    RegType.PTR_TO_PACKET: "pkt", RegType.PTR_TO_PACKET_META: "pkt_meta",
    RegType.PTR_TO_PACKET_END: "pkt_end", RegType.CONST_PTR_TO_MAP_OR_NULL: "map_ptr_or_null",
    RegType.PTR_TO_SOCKET: "sock", RegType.PTR_TO_SOCKET_OR_NULL: "sock_or_null",
    RegType.PTR_TO_SOCK_COMMON: "sock_common",
    RegType.PTR_TO_SOCK_COMMON_OR_NULL: "sock_common_or_null",
    RegType.PTR_TO_RINGBUF_MEM: "ringbuf_mem", RegType.PTR_TO_RINGBUF_MEM_OR_NULL: "ringbuf_mem_or_null",
    RegType.PTR_TO_FUNC: "func", RegType.PTR_TO_MEM: "mem",
    RegType.PTR_TO_MEM_OR_NULL: "mem_or_null",
}

ZERO = Scalar.const(0)


class Reg(NamedTuple):
    """One register: its type, the scalar value or the pointer's variable offset, and more.

    Immutable (a named tuple, cheap to build and compare), so states share registers freely.
    ``range`` is the proven range of a packet pointer and the size of ring buffer memory;
    ``ref`` is the reference (``refs``) the pointer was derived from, 0 for none: every copy
    of an acquired object carries it, so releasing the object invalidates them all (the
    kernel's ``ref_obj_id``).
    """

    type: RegType
    var: Scalar = ZERO
    off: int = 0
    id: int = 0
    range: int = 0
    map: MapSpec | None = None
    map_handle: int = 0
    frameno: int = 0
    ref: int = 0

    @staticmethod
    def scalar(value: Scalar, id: int = 0) -> Reg:
        return Reg(SCALAR, value, 0, id)

    @staticmethod
    def const(value: int) -> Reg:
        return Reg(SCALAR, Scalar.const(value))

    @property
    def is_scalar(self) -> bool:
        return self.type == RegType.SCALAR

    @property
    def is_init(self) -> bool:
        return self.type != RegType.NOT_INIT

    @property
    def is_const(self) -> bool:
        return self.type == SCALAR and self.var.is_const

    # Copies with one field changed, for the checks that run often (``_replace`` is generic,
    # several times slower).
    def with_var(self, var: Scalar) -> Reg:
        return Reg(self.type, var, self.off, self.id, self.range, self.map, self.map_handle,
                   self.frameno, self.ref)

    def with_off(self, off: int) -> Reg:
        return Reg(self.type, self.var, off, self.id, self.range, self.map, self.map_handle,
                   self.frameno, self.ref)

    def with_id(self, id: int) -> Reg:
        return Reg(self.type, self.var, self.off, id, self.range, self.map, self.map_handle,
                   self.frameno, self.ref)

    def with_range(self, range: int) -> Reg:
        return Reg(self.type, self.var, self.off, self.id, range, self.map, self.map_handle,
                   self.frameno, self.ref)

    def __str__(self) -> str:
        name = TYPE_NAMES[self.type]
        if self.type == RegType.SCALAR:
            text = str(self.var)
            if self.var.is_const and not self.id:
                return text
            inner = ",".join(p for p in (f"id={self.id}" if self.id else "", text) if p)
            return f"scalar({inner})"
        if self.type == RegType.PTR_TO_STACK and self.var.is_const and self.var.value == 0:
            return f"fp{self.off}" if self.frameno == 0 else f"fp[{self.frameno}]{self.off}"
        parts = []
        if self.map is not None:
            parts.append(f"map={self.map.name},ks={self.map.key_size},vs={self.map.value_size}")
        if self.id:
            parts.append(f"id={self.id}")
        if self.ref:
            parts.append(f"ref_obj_id={self.ref}")
        if self.off:
            parts.append(f"off={self.off}")
        if self.type.is_packet:
            parts.append(f"r={self.range}")
        elif self.range:
            mem = self.type == RegType.PTR_TO_MEM or self.type == RegType.PTR_TO_MEM_OR_NULL
            parts.append(f"sz={self.range}" if mem else f"size={self.range}")
        if not (self.var.is_const and self.var.value == 0):
            parts.append(str(self.var))
        return f"{name}({','.join(parts)})"


NOT_INIT = Reg(RegType.NOT_INIT)
UNKNOWN = Reg(RegType.SCALAR, Scalar.unknown())


class ByteKind(IntEnum):
    """What one stack byte holds (the kernel's STACK_INVALID / MISC / ZERO / SPILL)."""

    INVALID = 0
    MISC = 1
    ZERO = 2
    SPILL = 3


BYTE_CHARS = {ByteKind.INVALID: "?", ByteKind.MISC: "m", ByteKind.ZERO: "0", ByteKind.SPILL: "r"}
_ALL_INVALID = (ByteKind.INVALID,) * SLOT
#: The kinds of a slot holding a register spilled whole.
FULL_SPILL = (ByteKind.SPILL,) * SLOT


class Slot(NamedTuple):
    """Eight stack bytes, lowest address first; ``spilled`` is the register stored in them."""

    kinds: tuple[ByteKind, ...] = _ALL_INVALID
    spilled: Reg | None = None

    @property
    def spilled_bytes(self) -> int:
        """How many bytes, from the lowest address, hold ``spilled``: 8, or fewer for a
        number spilled by a narrower store (its low bytes, little-endian); 0 for none."""
        kinds = self.kinds
        return SLOT if kinds is FULL_SPILL or kinds == FULL_SPILL else \
            kinds.count(ByteKind.SPILL)

    def __str__(self) -> str:
        if self.spilled is not None:
            return str(self.spilled)
        return "".join(BYTE_CHARS[k] for k in reversed(self.kinds))


EMPTY_SLOT = Slot()


class Frame:
    """One call frame: registers and the 512-byte stack, by 8-byte slot (slot 0 is fp-8)."""

    __slots__ = ("regs", "stack", "callsite", "subprog", "frameno", "cb_depth")

    def __init__(self, regs: list[Reg], stack: dict[int, Slot], callsite: int, subprog: int,
                 frameno: int, cb_depth: int = 0) -> None:
        self.regs = regs
        self.stack = stack
        #: slot of the call instruction that created it, -1 for main; for a callback, the
        #: helper call (``bpf_loop``) that runs it, where its ``exit`` returns to
        self.callsite = callsite
        self.subprog = subprog  # first slot of the function
        self.frameno = frameno
        #: callback iterations this frame's path has run at its current callback-calling
        #: helper (the kernel's ``callback_depth``; ``callbacks.py``)
        self.cb_depth = cb_depth


class PathNode:
    """A persistent list of the jumps a path took, to replay the failing path for the log."""

    __slots__ = ("src", "dst", "prev")

    def __init__(self, src: int, dst: int, prev: PathNode | None) -> None:
        self.src = src
        self.dst = dst
        self.prev = prev

    def jumps(self) -> list[tuple[int, int]]:
        out = []
        node: PathNode | None = self
        while node is not None:
            out.append((node.src, node.dst))
            node = node.prev
        out.reverse()
        return out


class Step:
    """One record of a path's history (a persistent list: states share their past).

    ``JUMP``/``CALL``/``RETURN``: control went from ``slot`` to ``dst`` (``CALL`` also into a
    callback, ``CALLBACK_RETURN`` from a callback's ``exit`` back to its helper call).
    ``FILL``: the load at ``slot`` read the spilled registers at ``locs``. ``SPILL``: the
    store at ``slot`` replaced the slot ``locs[0]`` (with the register ``dst``, or -1 for a
    value from nowhere).
    ``LINK``: the jump at ``slot`` narrowed all of ``locs`` together.
    """

    __slots__ = ("kind", "slot", "dst", "locs", "prev")

    def __init__(self, kind: int, slot: int, dst: int, locs: tuple[int, ...],
                 prev: Step | None) -> None:
        self.kind = kind
        self.slot = slot
        self.dst = dst
        self.locs = locs
        self.prev = prev


class HeldLock(NamedTuple):
    """The lock a path holds: its map (an inner map by its outer map's handle and the inner
    template, as the kernel names every inner map of one outer map by one map pointer) and
    the id of the map value pointer it was taken through (0 for a global data value, which
    has one element)."""

    map_handle: int
    map: MapSpec
    id: int


class Kept(Protocol):
    """What a path sees of the checkpoint it descends from (``explored.Checkpoint``): the
    state kept there, its parent, and the marks precision and stack liveness leave on it."""

    precise: set[int] | None
    pkt_need: int
    meta_need: int
    all_precise: bool
    stack_read: set[int] | None
    written: frozenset[int]

    @property
    def state(self) -> State | None: ...

    @property
    def parent(self) -> Kept | None: ...

    @property
    def slot(self) -> int: ...

    @property
    def hist(self) -> Step | None: ...


class State:
    """The whole abstract state at one instruction of one path."""

    __slots__ = ("frames", "frame", "pkt_len", "meta_len", "insn", "path", "parent", "hist",
                 "may_goto", "written", "lock", "refs", "callbacks")

    def __init__(self, frames: list[Frame], pkt_len: int, meta_len: int, insn: int,
                 path: PathNode | None, parent: Kept | None, hist: Step | None = None,
                 may_goto: int = 0, written: frozenset[int] = frozenset(),
                 lock: HeldLock | None = None, refs: tuple = (),
                 callbacks: int = 0) -> None:
        self.frames = frames
        #: the current (innermost) frame, read by nearly every check: kept, not looked up
        self.frame = frames[-1]
        self.pkt_len = pkt_len  # data + pkt_len <= data_end is proven
        self.meta_len = meta_len  # data_meta + meta_len <= data is proven
        self.insn = insn
        self.path = path
        self.parent = parent  # the Checkpoint this path descends from
        self.hist = hist  # the path's last ``precision.Step``, for precision walks
        #: stack slots (``precision.slot_loc``) written whole since ``parent`` (``liveness``)
        self.written = written
        #: ``may_goto`` fall-throughs on the path (the kernel's may_goto_depth): a state at a
        #: may_goto with more of them than an open checkpoint there is a later iteration
        self.may_goto = may_goto
        #: the bpf_spin_lock the path holds (``locks.HeldLock``), or None
        self.lock = lock
        #: the references the path holds (``refs.Ref``), oldest first: one state for every
        #: frame, as bpf-to-bpf calls share them (the kernel's acquired_refs)
        self.refs = refs
        #: callback runs started on the path (the kernel's callback_unroll_depth): two states
        #: equal but for it are different iterations of a callback loop, not an infinite loop
        self.callbacks = callbacks

    def push(self, frame: Frame) -> None:
        """Enter a called function."""
        self.frames.append(frame)
        self.frame = frame

    def pop(self) -> Frame:
        """Leave the current function: its frame."""
        callee = self.frames.pop()
        self.frame = self.frames[-1]
        return callee

    def copy(self) -> State:
        """A copy to change independently (registers and slots are immutable: shared)."""
        return State([Frame(f.regs.copy(), f.stack.copy(), f.callsite, f.subprog, f.frameno,
                            f.cb_depth)
                      for f in self.frames], self.pkt_len, self.meta_len, self.insn,
                     self.path, self.parent, self.hist, self.may_goto, self.written,
                     self.lock, self.refs, self.callbacks)

    def map_regs(self, fn, types: frozenset[RegType]) -> None:
        """Replace every register (spilled ones included) of one of ``types`` by ``fn(reg)``."""
        for frame in self.frames:
            regs = frame.regs
            for i, reg in enumerate(regs):
                if reg.type in types:
                    new = fn(reg)
                    if new is not reg:
                        regs[i] = new
            stack = frame.stack
            for k, slot in stack.items():  # replacing values leaves the iteration valid
                if slot.spilled is not None and slot.spilled.type in types:
                    new = fn(slot.spilled)
                    if new is not slot.spilled:
                        stack[k] = Slot(slot.kinds, new)

