"""State embedding: does one concrete machine state lie inside one abstract verifier state?

The verifier claims, for every state it explored at an instruction, a set of machine states;
a sound verifier's claims cover every machine state any run reaches there. ``escapes`` lists
every way a concrete state falls outside one abstract state, in the verifier log's words:

- a scalar's value outside its tnum or any of its four ranges; two scalars the verifier linked
  (same id) holding different values;
- a pointer into another region than its type says (stack frame, packet, metadata, context,
  which map's value), or at an offset outside ``off`` plus its variable part; a packet pointer
  whose proven range passes ``data_end``; a proven packet length the frame does not have;
- a spilled register whose stack bytes hold another value; a byte the verifier knows is zero
  that is not; a register the engine tags as a pointer where the verifier sees a number.

Only what the verifier relies on is compared, as its state pruning compares: the live
registers of the innermost frame, the callers' callee-saved registers live after the call
(all those live at the helper call, under a callback), and every stack slot. That makes the
check valid across pruned paths too.
"""

from __future__ import annotations

from ..engine.memory import RegionKind
from ..runtime.xdp_env import map_handle
from ..verifier.memory import truncated
from ..verifier.program import Program, live_regs
from ..verifier.state import FULL_SPILL, MAYBE_NULL, SLOT, ByteKind, Reg, RegType, State
from ..verifier.tnum import U64
from .concrete import ConcreteView

_ZERO, _SPILL = ByteKind.ZERO, ByteKind.SPILL
_SCALAR, _STACK, _CTX = RegType.SCALAR, RegType.PTR_TO_STACK, RegType.PTR_TO_CTX
_PKT, _META, _END = RegType.PTR_TO_PACKET, RegType.PTR_TO_PACKET_META, RegType.PTR_TO_PACKET_END
_VALUE, _VALUE_OR_NULL = RegType.PTR_TO_MAP_VALUE, RegType.PTR_TO_MAP_VALUE_OR_NULL
_MAP, _MAP_OR_NULL = RegType.CONST_PTR_TO_MAP, RegType.CONST_PTR_TO_MAP_OR_NULL
_RINGBUF, _RINGBUF_OR_NULL = RegType.PTR_TO_RINGBUF_MEM, RegType.PTR_TO_RINGBUF_MEM_OR_NULL
_SOCKETS = frozenset({RegType.PTR_TO_SOCKET, RegType.PTR_TO_SOCKET_OR_NULL,
                      RegType.PTR_TO_SOCK_COMMON, RegType.PTR_TO_SOCK_COMMON_OR_NULL})
_FUNC = RegType.PTR_TO_FUNC
_MEM, _MEM_OR_NULL = RegType.PTR_TO_MEM, RegType.PTR_TO_MEM_OR_NULL
_MEMORY = frozenset({RegionKind.STACK, RegionKind.MAP_VALUE, RegionKind.PACKET,
                     RegionKind.RINGBUF})


def escapes(prog: Program, slot: int, state: State, view: ConcreteView) -> list[str]:
    """Every way ``view`` lies outside ``state`` at ``slot`` (empty: it is inside)."""
    out: list[str] = []
    frames = state.frames
    # A global function is verified on its own (``verifier.globals``): its states hold its
    # frame and those it called, the innermost of the machine's frames.
    shift = view.depth + 1 - len(frames) if frames[0].subprog else 0
    if shift < 0 or not shift and len(frames) != view.depth + 1:
        return [f"call depth {view.depth + 1} where the verifier has {len(frames)} frames"]
    linked: dict[int, tuple[str, int]] = {}
    top = len(frames) - 1
    for depth in range(top, -1, -1):
        frame = frames[depth]
        live = live_regs(prog, frames, slot, depth)
        where = "" if depth == top else f" of frame {depth}"
        for r in sorted(live):
            if r == 10:
                continue
            reg = frame.regs[r]
            value = view.reg(shift + depth, r)
            tag = view.tag(shift + depth, r)
            if reg.type is _SCALAR and not tag and reg.var.contains(value):
                if reg.id:  # the common case, checked inline: a number inside its bounds
                    _link(linked, reg.id, f"R{r}{where}", value, out)
                continue
            # any other number is outside its bounds or tagged: reg_escape says which
            problem = reg_escape(reg, value, view, tag, shift)
            if problem is not None:
                out.append(f"R{r}{where}={value:#x} {problem}")
        region = view.stack_region(shift + depth)
        fp = region.end_address
        if view.reg(shift + depth, 10) != fp:
            out.append(f"R10{where}={view.reg(shift + depth, 10):#x} is not the frame "
                       f"pointer {fp:#x}")
        buffer, top = region.buffer, region.end
        for k, stack_slot in frame.stack.items():
            kinds, spilled = stack_slot
            zeros = _ZERO in kinds
            if spilled is None and not zeros and _SPILL not in kinds:
                continue  # unwritten or unknown bytes: any content is inside
            start = top - SLOT * (k + 1)
            if kinds is FULL_SPILL and spilled is not None and spilled.type is _SCALAR:
                # the common case, checked inline: a number spilled whole
                value = int.from_bytes(buffer[start:start + SLOT], "little")
                if spilled.var.contains(value):
                    if spilled.id:
                        _link(linked, spilled.id, f"fp{-SLOT * (k + 1)}{where}", value, out)
                    continue
            data = bytes(buffer[start:start + SLOT])
            name = f"fp{-SLOT * (k + 1)}{where}"
            if spilled is not None:
                spilled_bytes = stack_slot.spilled_bytes
                value = int.from_bytes(data[:spilled_bytes], "little")
                held = truncated(spilled, spilled_bytes)  # a narrow spill: its low bytes
                problem = reg_escape(held, value, view, None, shift)
                if problem is not None:
                    out.append(f"{name}={value:#x} (spilled {spilled}, {spilled_bytes} bytes) "
                               f"{problem}")
                elif spilled.type == RegType.SCALAR and spilled.id and \
                        spilled_bytes == SLOT:
                    _link(linked, spilled.id, name, value, out)
            wrong = [i for i, kind in enumerate(kinds) if kind is _ZERO and data[i]] \
                if zeros else None
            if wrong:
                shown = " ".join(f"{data[i]:02x}" for i in wrong)
                out.append(f"{name} bytes {wrong[0]}..{wrong[-1]} hold {shown} where the "
                           f"verifier knows zeros ({stack_slot})")
            if spilled is None and ByteKind.SPILL in stack_slot.kinds:
                out.append(f"{name} is marked spilled without a spilled register")
    packet = view.packet
    if packet is not None:
        if packet.data + state.pkt_len > packet.end:
            out.append(f"the packet has {packet.end - packet.data} bytes where the verifier "
                       f"proved {state.pkt_len}")
        if packet.meta + state.meta_len > packet.data:
            out.append(f"the metadata has {packet.data - packet.meta} bytes where the "
                       f"verifier proved {state.meta_len}")
    return out


def _link(linked: dict[int, tuple[str, int]], id: int, name: str, value: int,
          out: list[str]) -> None:
    first = linked.setdefault(id, (name, value))
    if first[1] != value:
        out.append(f"{name}={value:#x} and {first[0]}={first[1]:#x} share id={id} but differ")


def _offset_escape(reg: Reg, offset: int) -> str | None:
    """Whether ``offset`` (from the region's reference point) is ``reg.off`` plus a value of
    ``reg.var``."""
    if reg.var.contains((offset - reg.off) & U64):
        return None
    return f"is at offset {offset}, outside off={reg.off}+({reg.var})"


def reg_escape(reg: Reg, value: int, view: ConcreteView, tag: int | None,
               shift: int = 0) -> str | None:
    """Why ``value`` is not a value of ``reg``, or None; ``shift``: the machine's frame the
    state's frame 0 is (a global function's callers are below it)."""
    t = reg.type
    if t == RegType.NOT_INIT:
        return None
    if t == RegType.SCALAR:
        if tag:
            return f"is tagged as a pointer into region {tag} where the verifier has a number"
        if reg.var.contains(value):
            return None
        return f"is outside scalar({reg.var})"
    if value == 0 and t in MAYBE_NULL:
        return None
    if t in _SOCKETS:  # a lookup on the device is always NULL
        return "is a socket pointer, and the device holds no sockets"
    if t == _FUNC:  # the engines load a subprogram's address as its first slot
        if tag:
            return f"is tagged as a pointer into region {tag} where the verifier has a " \
                   "subprogram's address"
        return None if value == reg.off else f"is not the address of the subprogram at " \
                                             f"{reg.off}"
    if t == _MAP or t == _MAP_OR_NULL:
        handle = map_handle(value)
        if handle is None:
            return "is not a map pointer"
        if t == _MAP and handle != reg.map_handle:
            return f"points to map {handle} where the verifier has map {reg.map_handle}"
        return None
    region = view.region(value)
    if tag is not None and region is not None and tag != region.base >> 32:
        if tag == 0:
            return f"points into {region.describe()} but the engine derived it from no region"
        return f"has provenance region {tag} but points into {region.describe()}"
    if t == _STACK:
        if not view.is_stack(region, shift + reg.frameno):
            return f"is not a pointer into stack frame {reg.frameno}"
        return _offset_escape(reg, value - view.frame_pointer(shift + reg.frameno))
    if t == _MEM or t == _MEM_OR_NULL:  # a global function's argument: whatever was passed
        if region is None or region.kind not in _MEMORY:
            return "is not a pointer into memory a global function may be given"
        if reg.var.is_const:
            start = value - reg.off - reg.var.value
            if not (region.address <= start and start + reg.range <= region.end_address):
                return f"is not {reg.range} bytes of {region.describe()}"
        return None
    if t == _RINGBUF or t == _RINGBUF_OR_NULL:
        if region is None or region.kind.value != "ring buffer record":
            return "is not a pointer into a ring buffer reservation"
        if region.end - region.start != reg.range:
            return f"points into a reservation of {region.end - region.start} bytes, not " \
                   f"{reg.range}"
        return _offset_escape(reg, value - region.address)
    if t == _CTX:
        if region is None or region.kind.value != "context":
            return "is not a pointer to the context"
        return _offset_escape(reg, value - region.address)
    if t == _VALUE or t == _VALUE_OR_NULL:
        if region is None or region.kind.value != "map value":
            return "is not a pointer into a map value"
        owner = view.map_value_owner(region)
        if owner is not None and owner != reg.map_handle and reg.map is not None \
                and reg.map_handle not in view.outer_maps:
            return f"points into a value of map {owner} where the verifier has map " \
                   f"{reg.map_handle} ('{reg.map.name}')"
        if reg.map is not None and region.end - region.start < reg.map.value_size:
            return f"points into a value of {region.end - region.start} bytes, not " \
                   f"{reg.map.value_size}"
        return _offset_escape(reg, value - region.address)
    packet = view.packet
    if packet is None:
        return "is a packet pointer but the run has no packet"
    if t == _END:
        if value != packet.end + reg.off:
            return f"is not data_end ({packet.end:#x})"
        return None
    if region is None or region.kind.value != "packet":
        return "is not a pointer into the packet"
    base = packet.data if t == _PKT else packet.meta
    limit = packet.end if t == _PKT else packet.data
    problem = _offset_escape(reg, value - base)
    if problem is not None:
        return problem
    if reg.range and value - reg.off + reg.range > limit:
        what = "data_end" if t == _PKT else "data"
        return f"has range r={reg.range} past {what} by {value - reg.off + reg.range - limit}"
    return None
