"""Every helper of every device profile against its prototype: a well-formed call loads and runs,
an ill-typed one is refused with a VerifierError, and the engine touches only the memory the
prototype lets it touch.

Each helper has one well-formed program (``GOOD``). The ill-typed calls are derived from the
prototype: each checked argument in turn replaced by a register of the wrong kind, and the
result or the clobbered argument registers used as the prototype forbids. Where the host kernel
can be used (root), it judges the same programs: it loads every well-formed one and refuses the
ill-typed ones (except pointers passed as plain numbers, which it allows a privileged loader).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from offload.backends.builtin import BuiltinBackend  # noqa: I001
from offload.backends.kernel import kernel_available
from offload.caps.profiles import list_profiles, load_profile
from offload.engine.interpreter import Execution
from offload.helpers.prototypes import (
    FILL,
    PROTOTYPES,
    READ,
    ArgType,
    HelperId,
    HelperProto,
    RetType,
    check_prototype,
)
from offload.isa import assemble
from offload.maps.spec import MapSpec
from offload.runtime import xdp as xdp_helpers
from offload.uapi import MapType, ProgType
from offload.verifier import VerifierError, verify

from .kernel_load import kernel_verdict
from .suite import FULL, Case

KERNEL, WHY = kernel_available()
PROFILES = [name for name in list_profiles() if name != "host-kernel"]
FRAME = bytes(range(64))
#: ``struct bpf_fib_lookup`` is 64 bytes; a format for bpf_trace_printk, NUL-padded to 8.
FMT = int.from_bytes(b"x=%d\n\0\0\0", "little")

MAPS = {
    1: MapSpec("hash", MapType.HASH, 4, 8, 16),
    2: MapSpec("percpu", MapType.PERCPU_ARRAY, 4, 8, 4),
    3: MapSpec("devmap", MapType.DEVMAP, 4, 4, 4),
    4: MapSpec("progs", MapType.PROG_ARRAY, 4, 4, 4),
    5: MapSpec("events", MapType.PERF_EVENT_ARRAY, 4, 4, 4),
    6: MapSpec("queue", MapType.QUEUE, 0, 8, 16),
    7: MapSpec("ring", MapType.RINGBUF, 0, 0, 4096),
    8: MapSpec("locked", MapType.ARRAY, 4, 16, 1, spin_lock_off=8),
}
_KEY = "stw [%r10-4], 0\nmov %r2, %r10\nadd %r2, -4\n"
_NULL_CHECKED = "jeq %r0, 0, out\nldxb %r7, [%r0+0]\nout:\n"
#: R8: the value of map 8 (null-checked, or the program ends at ``out``), its lock in R1
_LOCKED_VALUE = (_KEY + "lddw %r1, map_fd(8)\ncall 1\njeq %r0, 0, out\nmov %r8, %r0\n"
                 "mov %r1, %r8\nadd %r1, 8\n")
#: an IPv4 tuple (12 bytes, zeroed) at fp-16 and a socket lookup of it: R0 sock(_common)_or_null
_TUPLE = "stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 12\n"
_SK_LOOKUP = _TUPLE + "mov %r1, %r6\nmov %r4, -1\nmov %r5, 0"
_SK_RELEASED = "jeq %r0, 0, out\nldxw %r7, [%r0+4]\nmov %r1, %r0\ncall 86\nout:\n"
#: a checked socket in R1 (and R8) for a helper that takes one; "out" skips it
_SK_IN_R1 = _SK_LOOKUP + "\ncall 99\njeq %r0, 0, out\nmov %r8, %r0\nmov %r1, %r0"
_SYNCOOKIE = (_SK_IN_R1 + "\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 4\nmov %r4, %r10\n"
              "add %r4, -8\nmov %r5, 4", "mov %r1, %r8\ncall 86\nout:\n", ())
#: an 8-byte ring buffer reservation in R0 (or_null)
_RESERVE = "lddw %r1, map_fd(7)\nmov %r2, 8\nmov %r3, 0"
_RESERVED_IN_R1 = (_RESERVE + "\ncall 131\njeq %r0, 0, out\nstdw [%r0+0], 1\nmov %r1, %r0\n"
                   "mov %r2, 0", "out:\n", (7,))

#: helper id -> (program set-up before the call, code after it, map handles it uses).
#: R6 holds the context throughout.
GOOD: dict[int, tuple[str, str, tuple[int, ...]]] = {
    HelperId.MAP_LOOKUP_ELEM: (_KEY + "lddw %r1, map_fd(1)", _NULL_CHECKED, (1,)),
    HelperId.MAP_UPDATE_ELEM: (_KEY + "stdw [%r10-16], 0\nmov %r3, %r10\nadd %r3, -16\n"
                               "mov %r4, 0\nlddw %r1, map_fd(1)", "", (1,)),
    HelperId.MAP_DELETE_ELEM: (_KEY + "lddw %r1, map_fd(1)", "", (1,)),
    HelperId.TRACE_PRINTK: (f"lddw %r1, {FMT:#x}\nstxdw [%r10-8], %r1\nmov %r1, %r10\n"
                            "add %r1, -8\nmov %r2, 8\nmov %r3, 5\nmov %r4, 0\nmov %r5, 0", "", ()),
    HelperId.TRACE_VPRINTK: (f"lddw %r1, {FMT:#x}\nstxdw [%r10-8], %r1\nstdw [%r10-16], 5\n"
                             "mov %r1, %r10\nadd %r1, -8\nmov %r2, 8\nmov %r3, %r10\n"
                             "add %r3, -16\nmov %r4, 8", "", ()),
    HelperId.SPIN_LOCK: (_LOCKED_VALUE, "mov %r1, %r8\nadd %r1, 8\ncall 94\nout:\n", (8,)),
    HelperId.SPIN_UNLOCK: (_LOCKED_VALUE + "call 93\nmov %r1, %r8\nadd %r1, 8", "out:\n",
                           (8,)),
    HelperId.TAIL_CALL: ("mov %r1, %r6\nlddw %r2, map_fd(4)\nmov %r3, 0", "", (4,)),
    HelperId.REDIRECT: ("mov %r1, 1\nmov %r2, 0", "", ()),
    HelperId.PERF_EVENT_OUTPUT: ("stdw [%r10-8], 0\nmov %r1, %r6\nlddw %r2, map_fd(5)\n"
                                 "lddw %r3, 0xffffffff\nmov %r4, %r10\nadd %r4, -8\n"
                                 "mov %r5, 8", "", (5,)),
    HelperId.CSUM_DIFF: ("stw [%r10-4], 0\nmov %r1, %r10\nadd %r1, -4\nmov %r2, 4\n"
                         "mov %r3, 0\nmov %r4, 0\nmov %r5, 0", "", ()),
    HelperId.XDP_ADJUST_HEAD: ("mov %r1, %r6\nmov %r2, 0", "", ()),
    HelperId.REDIRECT_MAP: ("lddw %r1, map_fd(3)\nmov %r2, 0\nmov %r3, 0", "", (3,)),
    HelperId.XDP_ADJUST_META: ("mov %r1, %r6\nmov %r2, 0", "", ()),
    HelperId.XDP_ADJUST_TAIL: ("mov %r1, %r6\nmov %r2, 0", "", ()),
    HelperId.FIB_LOOKUP: ("".join(f"stdw [%r10-{8 * i}], 0\n" for i in range(1, 9))
                          + "mov %r1, %r6\nmov %r2, %r10\nadd %r2, -64\nmov %r3, 64\nmov %r4, 0",
                          "ldxdw %r7, [%r10-64]\n", ()),
    HelperId.MAP_PUSH_ELEM: ("stdw [%r10-8], 0\nlddw %r1, map_fd(6)\nmov %r2, %r10\n"
                             "add %r2, -8\nmov %r3, 0", "", (6,)),
    HelperId.MAP_POP_ELEM: ("lddw %r1, map_fd(6)\nmov %r2, %r10\nadd %r2, -8",
                            "ldxdw %r7, [%r10-8]\n", (6,)),
    HelperId.MAP_PEEK_ELEM: ("lddw %r1, map_fd(6)\nmov %r2, %r10\nadd %r2, -8",
                             "ldxdw %r7, [%r10-8]\n", (6,)),
    HelperId.RINGBUF_OUTPUT: ("stdw [%r10-8], 0\nlddw %r1, map_fd(7)\nmov %r2, %r10\n"
                              "add %r2, -8\nmov %r3, 8\nmov %r4, 0", "", (7,)),
    HelperId.RINGBUF_QUERY: ("lddw %r1, map_fd(7)\nmov %r2, 0", "", (7,)),
    HelperId.CHECK_MTU: ("stw [%r10-4], 0\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\n"
                         "add %r3, -4\nmov %r4, 0\nmov %r5, 0", "ldxw %r7, [%r10-4]\n", ()),
    HelperId.XDP_GET_BUFF_LEN: ("mov %r1, %r6", "", ()),
    HelperId.XDP_LOAD_BYTES: ("mov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -16\n"
                              "mov %r4, 14", "ldxdw %r7, [%r10-16]\nldxw %r7, [%r10-12]\n", ()),
    HelperId.XDP_STORE_BYTES: ("stdw [%r10-8], 0\nmov %r1, %r6\nmov %r2, 0\nmov %r3, %r10\n"
                               "add %r3, -8\nmov %r4, 6", "", ()),
    HelperId.MAP_LOOKUP_PERCPU_ELEM: (_KEY + "lddw %r1, map_fd(2)\nmov %r3, 0",
                                      _NULL_CHECKED, (2,)),
    HelperId.SK_LOOKUP_TCP: (_SK_LOOKUP, _SK_RELEASED, ()),
    HelperId.SK_LOOKUP_UDP: (_SK_LOOKUP, _SK_RELEASED, ()),
    HelperId.SKC_LOOKUP_TCP: (_SK_LOOKUP, _SK_RELEASED, ()),
    HelperId.SK_RELEASE: (_SK_IN_R1, "out:\n", ()),
    HelperId.TCP_CHECK_SYNCOOKIE: _SYNCOOKIE,
    HelperId.TCP_GEN_SYNCOOKIE: _SYNCOOKIE,
    HelperId.RINGBUF_RESERVE: (_RESERVE, "jeq %r0, 0, out\nstdw [%r0+0], 1\nmov %r1, %r0\n"
                               "mov %r2, 0\ncall 132\nout:\n", (7,)),
    HelperId.RINGBUF_SUBMIT: _RESERVED_IN_R1,
    HelperId.RINGBUF_DISCARD: _RESERVED_IN_R1,
}
#: what R0 of a helper returning a maybe-NULL pointer is called before its null check
_OR_NULL = {RetType.PTR_TO_MAP_VALUE_OR_NULL: "map_value_or_null",
            RetType.PTR_TO_SOCKET_OR_NULL: "sock_or_null",
            RetType.PTR_TO_SOCK_COMMON_OR_NULL: "sock_common_or_null",
            RetType.PTR_TO_RINGBUF_MEM_OR_NULL: "ringbuf_mem_or_null"}
#: what an object argument expects
_OBJECT = {ArgType.PTR_TO_SOCK_COMMON: "expected=sock_common",
           ArgType.PTR_TO_RINGBUF_MEM: "expected=ringbuf_mem"}
#: helper id -> the callback subprogram its well-formed call passes (after the program).
CALLBACKS = {HelperId.LOOP: "loop_cb:\nmov %r0, 0\nexit\n"}
GOOD[HelperId.LOOP] = ("stdw [%r10-8], 0\nmov %r1, 2\nlddw %r2, func loop_cb\nmov %r3, %r10\n"
                       "add %r3, -8\nmov %r4, 0", "", ())


def _good(hid: int) -> tuple[str, str, tuple[int, ...]]:
    """Helpers without arguments need nothing set up."""
    return GOOD.get(hid, ("", "", ()))


def program(hid: int, *, before_call: str = "", after_call: str = "") -> str:
    setup, after, _ = _good(hid)
    return (f"mov %r6, %r1\n{setup}\n{before_call}\ncall {hid}\n{after_call}\n{after}"
            "mov %r0, 2\nexit\n" + CALLBACKS.get(hid, ""))


def maps_of(hid: int) -> dict[int, MapSpec]:
    return {h: MAPS[h] for h in _good(hid)[2]}


def ill_typed(proto: HelperProto) -> list[tuple[str, str, str, bool]]:
    """(what, code before the call, code after it, expected reason, kernel refuses too)."""
    out = []
    for i, arg in enumerate(proto.args):
        r = i + 1
        t = arg.type
        if t == ArgType.PTR_TO_CTX:
            out.append((f"R{r} stack for ctx", f"mov %r{r}, %r10", "", "expected=ctx", True))
        elif t == ArgType.CONST_MAP_PTR:
            out.append((f"R{r} number for map", f"mov %r{r}, 0", "", "expected=map_ptr", True))
        elif arg.is_memory:
            out.append((f"R{r} number for memory", f"mov %r{r}, 1", "", "expected=fp", True))
        elif t in _OBJECT:
            out.append((f"R{r} stack for an object", f"mov %r{r}, %r10", "", _OBJECT[t], True))
        elif arg.is_size or t == ArgType.CONST_ALLOC_SIZE_OR_ZERO:
            out.append((f"R{r} pointer for size", f"mov %r{r}, %r10", "", "expected=scalar",
                        True))
        elif t == ArgType.PTR_TO_SPIN_LOCK:
            out.append((f"R{r} stack for a lock", f"mov %r{r}, %r10", "", "expected=map_value",
                        True))
        elif t == ArgType.ANYTHING and not arg.pointer_ok:
            # a privileged kernel lets pointers through as numbers; the device never does
            out.append((f"R{r} pointer for number", f"mov %r{r}, %r10", "", "leaks addr", False))
    if proto.ret == RetType.INTEGER:
        out.append(("R0 number used as pointer", "", "ldxb %r7, [%r0+0]",
                    "invalid mem access 'scalar'", True))
    elif proto.ret == RetType.VOID:
        out.append(("R0 unset", "", "mov %r7, %r0", "R0 !read_ok", True))
    else:
        out.append(("R0 not null-checked", "", "ldxb %r7, [%r0+0]",
                    f"invalid mem access '{_OR_NULL[proto.ret]}'", True))
    out.append(("R1 clobbered", "", "mov %r7, %r1", "R1 !read_ok", True))
    return out


def _case(name: str, text: str, maps: dict[int, MapSpec]) -> Case:
    return Case(name, Path(name), tuple(assemble(text)), "", maps, FULL)


PAIRS = [(name, hid) for name in PROFILES for hid in sorted(load_profile(name).helpers)]


# ---------------------------------------------------------------- the prototype table
def test_every_prototype_is_well_formed():
    problems = {p.kernel_name: check_prototype(p) for p in PROTOTYPES.values()}
    assert not {k: v for k, v in problems.items() if v}


def test_the_prototype_check_finds_malformed_prototypes():
    from offload.helpers.prototypes import Arg

    unsized = HelperProto(1000, "x", RetType.INTEGER, (Arg(ArgType.PTR_TO_MEM),))
    both = HelperProto(1000, "x", RetType.INTEGER,
                       (Arg(ArgType.PTR_TO_MEM, size=4), Arg(ArgType.CONST_SIZE)))
    stray = HelperProto(1000, "x", RetType.INTEGER, (Arg(ArgType.CONST_SIZE),))
    key_first = HelperProto(1000, "x", RetType.INTEGER, (Arg(ArgType.PTR_TO_MAP_KEY),))
    two_fills = HelperProto(1000, "x", RetType.INTEGER, (
        Arg(ArgType.PTR_TO_UNINIT_MEM), Arg(ArgType.CONST_SIZE),
        Arg(ArgType.PTR_TO_UNINIT_MEM), Arg(ArgType.CONST_SIZE)))
    for proto in (unsized, both, stray, key_first, two_fills):
        assert check_prototype(proto), proto


def test_every_profile_helper_has_a_prototype_and_an_engine_implementation():
    for name, hid in PAIRS:
        assert hid in PROTOTYPES, (name, hid)
        assert hid in xdp_helpers.XDP_HELPERS, (name, hid)


# ---------------------------------------------------------------- verifier, per profile
@pytest.mark.parametrize(("profile", "hid"), PAIRS, ids=[f"{p}-{h}" for p, h in PAIRS])
def test_helper_prototype(profile, hid):
    caps = load_profile(profile)
    proto = PROTOTYPES[hid]
    verify(assemble(program(hid)), caps=caps, maps=maps_of(hid))
    for what, before, after, reason, _ in ill_typed(proto):
        text = program(hid, before_call=before, after_call=after)
        with pytest.raises(VerifierError) as info:
            verify(assemble(text), caps=caps, maps=maps_of(hid))
        assert reason in info.value.reason, (what, info.value.reason)


@pytest.mark.parametrize("hid", sorted(PROTOTYPES))
def test_every_prototype_on_the_full_test_device(hid):
    """The helpers no profile offers (queues, ring buffers, perf events) too."""
    verify(assemble(program(hid)), caps=FULL, maps=maps_of(hid))
    for what, before, after, reason, _ in ill_typed(PROTOTYPES[hid]):
        with pytest.raises(VerifierError) as info:
            verify(assemble(program(hid, before_call=before, after_call=after)), caps=FULL,
                   maps=maps_of(hid))
        assert reason in info.value.reason, (what, info.value.reason)


def test_a_helper_the_profile_does_not_offer_is_refused():
    caps = load_profile("legacy-nic")
    with pytest.raises(VerifierError, match="the device does not offer it"):
        verify(assemble(program(HelperId.XDP_LOAD_BYTES)), caps=caps)


@pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
def test_the_kernel_agrees_on_every_prototype():
    disagreements = []
    for hid in sorted(PROTOTYPES):
        good = _case(f"h{hid}", program(hid), maps_of(hid))
        accepted, reason = kernel_verdict(good)
        if not accepted:
            disagreements.append(f"{hid} well-formed: the kernel refuses ({reason})")
        for what, before, after, _, kernel_refuses in ill_typed(PROTOTYPES[hid]):
            if not kernel_refuses:
                continue
            bad = _case(f"h{hid}bad", program(hid, before_call=before, after_call=after),
                        maps_of(hid))
            if kernel_verdict(bad)[0]:
                disagreements.append(f"{hid} {what}: the kernel accepts")
    assert not disagreements, "\n".join(disagreements)


# ---------------------------------------------------------------- check_mtu's fixed size
CHECK_MTU = """
mov %r6, %r1
{init}
mov %r1, %r6
mov %r2, 0
mov %r3, %r10
add %r3, {off}
mov %r4, 0
mov %r5, 0
call 163
ldxw %r0, [%r10-4]
jeq %r0, 0, out
ldxdw %r0, [%r10+8]
out:
mov %r0, 2
exit
"""


def _mtu(init: str = "stw [%r10-4], 0\nstw [%r10-8], 0", off: int = -4) -> str:
    return CHECK_MTU.format(init=init, off=off)


def test_check_mtu_fixed_size_arg():
    """u32 *mtu_len is 4 read-written bytes without a size argument: it must be initialised,
    aligned and inside the stack, and afterwards holds an unknown number (the MTU)."""
    good = "ldxw %r0, [%r10-4]\nmov %r0, 2\nexit"
    verify(assemble(_mtu().replace(CHECK_MTU.split("call 163\n")[1], "") + good), caps=FULL)
    with pytest.raises(VerifierError) as info:  # the old zero is gone: the branch is live
        verify(assemble(_mtu()), caps=FULL)
    assert info.value.reason == "invalid stack off=8 size=8"
    with pytest.raises(VerifierError, match="invalid indirect read from stack"):
        verify(assemble(_mtu(init="")), caps=FULL)  # read before it is written
    with pytest.raises(VerifierError, match="misaligned stack access"):
        verify(assemble(_mtu(off=-6)), caps=FULL)
    with pytest.raises(VerifierError, match="invalid indirect access to stack"):
        verify(assemble(_mtu(off=-2)), caps=FULL)


def test_check_mtu_into_a_map_value_needs_read_and_write():
    lookup = (_KEY + "lddw %r1, map_fd(1)\ncall 1\njeq %r0, 0, out\nmov %r3, %r0\n"
              "mov %r1, %r6\nmov %r2, 0\nmov %r4, 0\nmov %r5, 0\ncall 163\nout:\n")
    text = f"mov %r6, %r1\n{lookup}mov %r0, 2\nexit"
    verify(assemble(text), caps=FULL, maps={1: MAPS[1]})
    from offload.uapi import MapFlags

    for flag, reason in ((MapFlags.RDONLY_PROG, "write into map forbidden"),
                         (MapFlags.WRONLY_PROG, "read from map forbidden")):
        spec = replace(MAPS[1], flags=flag)
        with pytest.raises(VerifierError, match=reason):
            verify(assemble(text), caps=FULL, maps={1: spec})
    with pytest.raises(VerifierError, match="misaligned value access"):
        verify(assemble(text.replace("mov %r3, %r0\n", "mov %r3, %r0\nadd %r3, 2\n")),
               caps=FULL, maps={1: MAPS[1]})


_PACKET_8 = ("mov %r6, %r1\nldxw %r3, [%r6+0]\nldxw %r2, [%r6+4]\nmov %r4, %r3\nadd %r4, 8\n"
             "jgt %r4, %r2, out\n")
PACKET_MEMORY = {  # R3 points at 8 proven packet bytes
    "check_mtu": ("mov %r1, %r6\nmov %r2, 0\nmov %r4, 0\nmov %r5, 0\ncall 163", False),
    "xdp_load_bytes": ("mov %r1, %r6\nmov %r2, 0\nmov %r4, 8\ncall 189", False),
    "xdp_store_bytes": ("mov %r1, %r6\nmov %r2, 0\nmov %r4, 8\ncall 190", False),
    "csum_diff": ("mov %r1, %r3\nmov %r2, 8\nmov %r3, 0\nmov %r4, 0\nmov %r5, 0\ncall 28",
                  True),
    "map_lookup_elem": ("mov %r2, %r3\nlddw %r1, map_fd(1)\ncall 1", True),
}


@pytest.mark.parametrize("name", PACKET_MEMORY)
def test_packet_memory_only_for_helpers_with_pkt_access(name):
    """As in the kernel, only some helpers take packet memory (their prototype's pkt_access):
    bpf_check_mtu and bpf_xdp_load_bytes/store_bytes do not; csum_diff and lookups do."""
    call, allowed = PACKET_MEMORY[name]
    text = f"{_PACKET_8}{call}\nout:\nmov %r0, 2\nexit"
    try:
        verify(assemble(text), caps=FULL, maps={1: MAPS[1]})
        verdict = "accepted"
    except VerifierError as err:
        verdict = err.reason
    assert (verdict == "accepted") == allowed, verdict
    if not allowed:
        assert verdict.startswith("helper access to the packet is not allowed")
    if KERNEL:
        assert kernel_verdict(_case(name, text, {1: MAPS[1]}))[0] == allowed


# ---------------------------------------------------------------- the engines
class _Spy:
    """Memory as a helper sees it, recording every read and write it makes."""

    def __init__(self, memory, log):
        self._memory = memory
        self._log = log

    def read(self, address, size):
        self._log.append(("read", address, size))
        return self._memory.read(address, size)

    def write(self, address, data):
        self._log.append(("write", address, len(data)))
        return self._memory.write(address, data)

    def read_cstring(self, address, limit):
        data = self._memory.read_cstring(address, limit)
        self._log.append(("read", address, len(data) + 1))
        return data

    def __getattr__(self, name):
        return getattr(self._memory, name)


def _allowed(proto: HelperProto, ex: Execution, regs: tuple[int, ...]) -> dict[str, list]:
    """The byte ranges the prototype lets the helper read and write, for these arguments."""
    ranges: dict[str, list[tuple[int, int]]] = {"read": [], "write": [], "fill": []}
    live = None
    for i, arg in enumerate(proto.args):
        value = regs[i]
        if arg.type == ArgType.CONST_MAP_PTR:
            live = ex.env.map_at(value)
        if not arg.is_memory:
            continue
        if arg.type == ArgType.PTR_TO_MAP_KEY:
            size = live.key_size
        elif arg.type in (ArgType.PTR_TO_MAP_VALUE, ArgType.PTR_TO_UNINIT_MAP_VALUE):
            size = live.value_size
        else:
            size = arg.size or regs[i + 1]
        if arg.access != FILL:
            ranges["read"].append((value, value + size))
        if arg.access != READ:
            ranges["write"].append((value, value + size))
        if arg.access == FILL:
            ranges["fill"].append((value, value + size))
    return ranges


def _inside(address: int, size: int, spans: list[tuple[int, int]]) -> bool:
    return any(lo <= address and address + size <= hi for lo, hi in spans)


def _spying_helpers(seen: list[str]):
    table = {}
    for hid, fn in xdp_helpers.XDP_HELPERS.items():
        def wrapped(ex, *regs, _fn=fn, _proto=PROTOTYPES[hid]):
            log: list[tuple[str, int, int]] = []
            memory = ex.memory
            ex.memory = _Spy(memory, log)
            try:
                result = _fn(ex, *regs)
            finally:
                ex.memory = memory
            allowed = _allowed(_proto, ex, regs)
            for kind, address, size in log:
                if not _inside(address, size, allowed[kind]):
                    seen.append(f"{_proto.kernel_name} {kind}s {size} bytes at {address:#x}, "
                                f"outside what its prototype allows: {allowed[kind]}")
            if result == 0:  # on success a filled argument is written whole
                for lo, hi in allowed["fill"]:
                    written = {a for kind, address, size in log if kind == "write"
                               for a in range(address, address + size)}
                    if not set(range(lo, hi)) <= written:
                        seen.append(f"{_proto.kernel_name} left part of [{lo:#x}, {hi:#x}) "
                                    "unwritten though it succeeded")
            return result
        table[hid] = wrapped
    return table


@pytest.mark.parametrize("engine", ["reference", "fast"])
@pytest.mark.parametrize(("profile", "hid"), PAIRS, ids=[f"{p}-{h}" for p, h in PAIRS])
def test_the_engine_runs_each_helper_within_its_prototype(profile, hid, engine, monkeypatch):
    problems: list[str] = []
    monkeypatch.setattr("offload.backends.builtin.XDP_HELPERS", _spying_helpers(problems))
    backend = BuiltinBackend(load_profile(profile), engine=engine, ncpus=1, seed=1,
                             clock=lambda: 1_000_000_000)
    for handle, spec in maps_of(hid).items():
        backend.create_map(handle, spec)
    backend.load_program(1000, assemble(program(hid)), prog_type=ProgType.XDP, name="h",
                         license="GPL")
    outcome = backend.run_xdp(1000, FRAME)
    assert outcome.error is None
    assert outcome.retval == 2
    assert not problems, problems


def test_a_malformed_prototype_is_a_verifier_bug_refusal(monkeypatch):
    """A table entry the checks cannot follow refuses the program (no assertion, no
    traceback), in the kernel's words for an internal inconsistency."""
    from offload.helpers.prototypes import Arg

    caps = replace(FULL, helpers=FULL.helpers | {1000})
    malformed = {
        "memory without a size": (Arg(ArgType.PTR_TO_MEM),),
        "a key before the map": (Arg(ArgType.PTR_TO_MAP_KEY),),
    }
    for what, args in malformed.items():
        monkeypatch.setitem(PROTOTYPES, 1000, HelperProto(1000, "bad", RetType.INTEGER, args))
        text = "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\ncall 1000\nmov %r0, 2\nexit"
        with pytest.raises(VerifierError) as info:
            verify(assemble(text), caps=caps)
        assert info.value.reason.startswith("verifier bug: "), (what, info.value.reason)
    returns_value = HelperProto(1000, "bad", RetType.PTR_TO_MAP_VALUE_OR_NULL)
    monkeypatch.setitem(PROTOTYPES, 1000, returns_value)
    with pytest.raises(VerifierError, match="verifier bug: .*returns a map value"):
        verify(assemble("call 1000\nmov %r0, 2\nexit"), caps=caps)
