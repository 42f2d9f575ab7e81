"""One concrete machine state, as the soundness oracle reads it between two instructions.

The reference interpreter calls the oracle before every instruction with its register file and
its :class:`~offload.engine.interpreter.Execution`; this view names what the abstract state
talks about: the registers of every call frame (the callers' r6-r9 are the ones the engine saved
at the call), each frame's stack bytes and frame pointer, where ``data``, ``data_end`` and
``data_meta`` are, and which map a map-value region belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..engine.interpreter import STACK_SIZE, Execution
from ..engine.memory import Region, RegionKind
from ..engine.provenance import TAG
from ..runtime.xdp_env import XdpEnv


@dataclass(frozen=True, slots=True)
class PacketBounds:
    """Addresses of the packet's metadata start, data start and end (kernel xdp_buff)."""

    meta: int
    data: int
    end: int


class ConcreteView:
    """The machine between two instructions; frames are numbered as the verifier numbers
    them (0 is the main program)."""

    __slots__ = ("regs", "run", "depth", "packet", "outer_maps", "_owner", "_tagged")

    def __init__(self, regs: Sequence[int], run: Execution,
                 owner: Callable[[Region], int | None],
                 outer_maps: frozenset[int] = frozenset()) -> None:
        self.regs = regs
        self.run = run
        self.depth = len(run.frames)
        env = run.env
        if isinstance(env, XdpEnv):
            base = env.packet.base
            buf = env.buffer
            self.packet: PacketBounds | None = PacketBounds(base + buf.data_meta,
                                                            base + buf.data,
                                                            base + buf.data_end)
        else:
            self.packet = None
        self._owner = owner
        #: handles of map-in-maps: the verifier names values of their inner maps by them
        self.outer_maps = outer_maps
        self._tagged = len(regs) > TAG  # with provenance the tags follow r0-r10

    # -- registers -----------------------------------------------------------------------
    def reg(self, frame: int, regno: int) -> int:
        """Register ``regno`` of call frame ``frame``: live for the innermost frame, the
        values the engine saved at the call for the callers (r6-r10; a caller running a
        ``bpf_loop`` callback also holds the helper's arguments, r1-r5)."""
        if frame == self.depth:
            return self.regs[regno]
        called = self.run.frames[frame]
        if regno < 6:
            loop = called.loop
            return loop.args[regno - 1] if loop is not None and regno else 0
        return called.saved[regno - 6]

    def tag(self, frame: int, regno: int) -> int | None:
        """The provenance tag (region slot) the engine keeps for a register, when it keeps
        them and for the innermost frame only."""
        if not self._tagged or frame != self.depth:
            return None
        return self.regs[TAG + regno]

    # -- stack ---------------------------------------------------------------------------
    def stack_region(self, frame: int) -> Region:
        return self.run.memory.stack(frame, STACK_SIZE)

    def frame_pointer(self, frame: int) -> int:
        return self.stack_region(frame).end_address

    # -- regions -------------------------------------------------------------------------
    def region(self, address: int) -> Region | None:
        return self.run.memory.region_at(address)

    def map_value_owner(self, region: Region) -> int | None:
        """The handle of the map whose value ``region`` maps, if the device knows it."""
        return self._owner(region)

    def is_stack(self, region: Region | None, frame: int) -> bool:
        return region is not None and region.kind == RegionKind.STACK and \
            region is self.stack_region(frame)
