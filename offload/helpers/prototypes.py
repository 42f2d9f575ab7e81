"""Helper prototypes: what each ``call N`` takes and returns, shared by verifier and engine.

Ids and names are those of ``enum bpf_func_id`` (include/uapi/linux/bpf.h); argument and return
kinds are the kernel's ``enum bpf_arg_type`` / ``enum bpf_return_type`` (include/linux/bpf.h),
so a rejection reads like the Linux verifier's ("R2 type=scalar expected=fp, pkt, map_value").
``map_types`` lists the maps a helper's ``CONST_MAP_PTR`` argument accepts, and
``MAP_TYPE_HELPERS`` the reverse rule of the kernel's ``check_map_func_compatibility``: some map
types may only be passed to a few helpers.

A memory argument says how the helper uses the bytes (``Arg.access``): it only reads them, reads
and writes them, or fills them without reading (the kernel's MEM_RDONLY, MEM_WRITE and
MEM_UNINIT), and how many there are: a fixed ``size`` (MEM_FIXED_SIZE) or the size argument
that follows it. :func:`check_prototype` holds the table to those rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from ..uapi import MapType, ProgType


class HelperId(IntEnum):
    """``enum bpf_func_id`` for the helpers an XDP device offers."""

    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    KTIME_GET_NS = 5
    TRACE_PRINTK = 6
    GET_PRANDOM_U32 = 7
    GET_SMP_PROCESSOR_ID = 8
    TAIL_CALL = 12
    REDIRECT = 23
    PERF_EVENT_OUTPUT = 25
    CSUM_DIFF = 28
    GET_NUMA_NODE_ID = 42
    XDP_ADJUST_HEAD = 44
    REDIRECT_MAP = 51
    XDP_ADJUST_META = 54
    XDP_ADJUST_TAIL = 65
    FIB_LOOKUP = 69
    SK_LOOKUP_TCP = 84
    SK_LOOKUP_UDP = 85
    SK_RELEASE = 86
    MAP_PUSH_ELEM = 87
    MAP_POP_ELEM = 88
    MAP_PEEK_ELEM = 89
    SPIN_LOCK = 93
    SPIN_UNLOCK = 94
    SKC_LOOKUP_TCP = 99
    TCP_CHECK_SYNCOOKIE = 100
    TCP_GEN_SYNCOOKIE = 110
    JIFFIES64 = 118
    KTIME_GET_BOOT_NS = 125
    RINGBUF_OUTPUT = 130
    RINGBUF_RESERVE = 131
    RINGBUF_SUBMIT = 132
    RINGBUF_DISCARD = 133
    RINGBUF_QUERY = 134
    KTIME_GET_COARSE_NS = 160
    TRACE_VPRINTK = 177
    CHECK_MTU = 163
    LOOP = 181
    XDP_GET_BUFF_LEN = 188
    XDP_LOAD_BYTES = 189
    XDP_STORE_BYTES = 190
    MAP_LOOKUP_PERCPU_ELEM = 195
    KTIME_GET_TAI_NS = 208


class ArgType(IntEnum):
    """``enum bpf_arg_type`` (the subset these helpers use)."""

    DONTCARE = 0
    CONST_MAP_PTR = 1
    PTR_TO_MAP_KEY = 2
    PTR_TO_MAP_VALUE = 3
    PTR_TO_UNINIT_MAP_VALUE = 4  # the helper fills value_size bytes
    PTR_TO_MEM = 5  # followed by a CONST_SIZE(_OR_ZERO) argument, unless Arg.size is fixed
    PTR_TO_UNINIT_MEM = 6  # the helper fills the memory (followed by its size argument)
    CONST_SIZE = 7
    CONST_SIZE_OR_ZERO = 8
    PTR_TO_CTX = 9
    ANYTHING = 10
    PTR_TO_SPIN_LOCK = 11  # a map value pointer exactly at its struct bpf_spin_lock
    PTR_TO_SOCK_COMMON = 12  # ARG_PTR_TO_BTF_ID_SOCK_COMMON: a socket, sock_common or full
    PTR_TO_RINGBUF_MEM = 13  # a ring buffer reservation (ARG_PTR_TO_RINGBUF_MEM)
    CONST_ALLOC_SIZE_OR_ZERO = 14  # the constant size of memory the helper allocates
    PTR_TO_FUNC = 15  # a callback: a subprogram's address (``lddw func``)
    PTR_TO_STACK = 16  # a pointer into a stack frame (with maybe_null: or NULL)


class RetType(IntEnum):
    """``enum bpf_return_type`` (the subset these helpers use)."""

    INTEGER = 0
    VOID = 1
    PTR_TO_MAP_VALUE_OR_NULL = 2
    # Results the program holds a reference to, until it releases them (``acquires``).
    PTR_TO_SOCKET_OR_NULL = 3
    PTR_TO_SOCK_COMMON_OR_NULL = 4
    PTR_TO_RINGBUF_MEM_OR_NULL = 5


#: Results that acquire a reference (the kernel's ``is_acquire_function``).
ACQUIRING = frozenset({RetType.PTR_TO_SOCKET_OR_NULL, RetType.PTR_TO_SOCK_COMMON_OR_NULL,
                       RetType.PTR_TO_RINGBUF_MEM_OR_NULL})
#: Arguments that may be a referenced object the helper releases.
_RELEASABLE = frozenset({ArgType.PTR_TO_SOCK_COMMON, ArgType.PTR_TO_RINGBUF_MEM})


#: How a helper uses a memory argument: reads it, reads and writes it, or only writes it.
READ, READ_WRITE, FILL = "read", "rw", "fill"
_MEM_ARGS = frozenset({ArgType.PTR_TO_MAP_KEY, ArgType.PTR_TO_MAP_VALUE,
                       ArgType.PTR_TO_UNINIT_MAP_VALUE, ArgType.PTR_TO_MEM,
                       ArgType.PTR_TO_UNINIT_MEM})
_SIZE_ARGS = frozenset({ArgType.CONST_SIZE, ArgType.CONST_SIZE_OR_ZERO})


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: its kind, whether NULL is allowed, whether the helper only reads it.

    ``size`` is the byte count of a fixed-size memory argument (the kernel's
    ARG_PTR_TO_FIXED_SIZE_MEM with ``arg_size``): no size argument follows it. ``aligned``
    asks for a pointer aligned to that size (MEM_ALIGNED). ``release``: the helper releases
    the referenced object it is given (OBJ_RELEASE).
    """

    type: ArgType
    maybe_null: bool = False
    rdonly: bool = False
    pointer_ok: bool = False  # ANYTHING that may be a pointer: only printed to the device log
    size: int = 0
    aligned: bool = False
    release: bool = False

    @property
    def is_memory(self) -> bool:
        return self.type in _MEM_ARGS

    @property
    def is_size(self) -> bool:
        return self.type in _SIZE_ARGS

    @property
    def access(self) -> str:
        """READ, READ_WRITE or FILL: what the helper does to the bytes it is given."""
        t = self.type
        if t in (ArgType.PTR_TO_UNINIT_MEM, ArgType.PTR_TO_UNINIT_MAP_VALUE):
            return FILL
        if t == ArgType.PTR_TO_MEM and not self.rdonly:
            return READ_WRITE
        return READ


@dataclass(frozen=True, slots=True)
class HelperProto:
    """A helper's prototype (the kernel's ``struct bpf_func_proto``)."""

    id: int
    name: str
    ret: RetType
    args: tuple[Arg, ...] = ()
    map_types: frozenset[MapType] = field(default=frozenset())
    prog_types: frozenset[ProgType] | None = None  # None: every program type
    changes_pkt_data: bool = False
    gpl_only: bool = False
    #: memory arguments may point into the packet (the kernel's ``pkt_access``)
    pkt_access: bool = False
    #: changes the map's contents (update, delete, push, pop): refused on read-only maps
    writes_map: bool = False
    #: the unsigned range of an INTEGER result when the helper's contract bounds it (the
    #: redirects answer with an XDP action), else None: any number
    ret_range: tuple[int, int] | None = None

    @property
    def kernel_name(self) -> str:
        return f"bpf_{self.name}"

    @property
    def acquires(self) -> bool:
        """Whether the result is an object the program must release on every path."""
        return self.ret in ACQUIRING

    @property
    def releases(self) -> int:
        """The register of the object the helper releases, 0 for none."""
        return next((i + 1 for i, arg in enumerate(self.args) if arg.release), 0)


_MAP = Arg(ArgType.CONST_MAP_PTR)
_KEY = Arg(ArgType.PTR_TO_MAP_KEY)
_VALUE = Arg(ArgType.PTR_TO_MAP_VALUE)
_ANY = Arg(ArgType.ANYTHING)
_PRINTED = Arg(ArgType.ANYTHING, pointer_ok=True)
_CTX = Arg(ArgType.PTR_TO_CTX)
_RO_MEM = Arg(ArgType.PTR_TO_MEM, rdonly=True)
_XDP = frozenset({ProgType.XDP})
_NET = frozenset({ProgType.XDP, ProgType.SCHED_CLS, ProgType.SCHED_ACT})

#: Maps whose values a program reads and writes through lookup/update/delete.
DATA_MAPS = frozenset({
    MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_HASH,
    MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE,
})
_PERCPU_MAPS = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH})
_REDIRECT_MAPS = frozenset({MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP})
_QUEUE_MAPS = frozenset({MapType.QUEUE, MapType.STACK})
#: XDP_ABORTED..XDP_REDIRECT: what bpf_redirect answers (XDP_REDIRECT, or XDP_ABORTED for
#: flags) and bpf_redirect_map (XDP_REDIRECT, the flags' low two bits for a missing entry,
#: XDP_ABORTED for other flags)
_XDP_ACTION = (0, 4)
#: ``struct bpf_sock_tuple`` to look up, its size (the IPv4 or IPv6 form), the network
#: namespace and flags: read-only memory, of a size the verifier proves
_SK_LOOKUP_ARGS = (_CTX, _RO_MEM, Arg(ArgType.CONST_SIZE), _ANY, _ANY)
#: a listening socket, then the IP header and the TCP header, each with its size
_SYNCOOKIE_ARGS = (Arg(ArgType.PTR_TO_SOCK_COMMON), _RO_MEM, Arg(ArgType.CONST_SIZE), _RO_MEM,
                   Arg(ArgType.CONST_SIZE))
_RINGBUF_RELEASE_ARGS = (Arg(ArgType.PTR_TO_RINGBUF_MEM, release=True), _ANY)


def _time(hid: HelperId, name: str) -> HelperProto:
    return HelperProto(hid, name, RetType.INTEGER)


PROTOTYPES: dict[int, HelperProto] = {p.id: p for p in (
    HelperProto(HelperId.MAP_LOOKUP_ELEM, "map_lookup_elem", RetType.PTR_TO_MAP_VALUE_OR_NULL,
                (_MAP, _KEY), DATA_MAPS | {MapType.DEVMAP, MapType.DEVMAP_HASH, MapType.XSKMAP,
                                           MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS},
                pkt_access=True),
    HelperProto(HelperId.MAP_UPDATE_ELEM, "map_update_elem", RetType.INTEGER,
                (_MAP, _KEY, _VALUE, _ANY), DATA_MAPS, pkt_access=True, writes_map=True),
    HelperProto(HelperId.MAP_DELETE_ELEM, "map_delete_elem", RetType.INTEGER, (_MAP, _KEY),
                DATA_MAPS, pkt_access=True, writes_map=True),
    _time(HelperId.KTIME_GET_NS, "ktime_get_ns"),
    HelperProto(HelperId.TRACE_PRINTK, "trace_printk", RetType.INTEGER,
                (_RO_MEM, Arg(ArgType.CONST_SIZE), _PRINTED, _PRINTED, _PRINTED), gpl_only=True),
    # data: u64 arguments (data_len a multiple of 8, at most 12 of them: checked when it
    # runs, as the kernel's bpf_bprintf_prepare), or NULL with data_len 0
    HelperProto(HelperId.TRACE_VPRINTK, "trace_vprintk", RetType.INTEGER,
                (_RO_MEM, Arg(ArgType.CONST_SIZE),
                 Arg(ArgType.PTR_TO_MEM, maybe_null=True, rdonly=True),
                 Arg(ArgType.CONST_SIZE_OR_ZERO)), gpl_only=True),
    _time(HelperId.GET_PRANDOM_U32, "get_prandom_u32"),
    _time(HelperId.GET_SMP_PROCESSOR_ID, "get_smp_processor_id"),
    HelperProto(HelperId.TAIL_CALL, "tail_call", RetType.VOID, (_CTX, _MAP, _ANY),
                frozenset({MapType.PROG_ARRAY})),
    HelperProto(HelperId.REDIRECT, "redirect", RetType.INTEGER, (_ANY, _ANY),
                prog_types=_NET, ret_range=_XDP_ACTION),
    HelperProto(HelperId.PERF_EVENT_OUTPUT, "perf_event_output", RetType.INTEGER,
                (_CTX, _MAP, _ANY, _RO_MEM, Arg(ArgType.CONST_SIZE_OR_ZERO)),
                frozenset({MapType.PERF_EVENT_ARRAY}), gpl_only=True),
    HelperProto(HelperId.CSUM_DIFF, "csum_diff", RetType.INTEGER,
                (Arg(ArgType.PTR_TO_MEM, maybe_null=True, rdonly=True),
                 Arg(ArgType.CONST_SIZE_OR_ZERO),
                 Arg(ArgType.PTR_TO_MEM, maybe_null=True, rdonly=True),
                 Arg(ArgType.CONST_SIZE_OR_ZERO), _ANY), prog_types=_NET, pkt_access=True),
    _time(HelperId.GET_NUMA_NODE_ID, "get_numa_node_id"),
    HelperProto(HelperId.XDP_ADJUST_HEAD, "xdp_adjust_head", RetType.INTEGER, (_CTX, _ANY),
                prog_types=_XDP, changes_pkt_data=True),
    HelperProto(HelperId.REDIRECT_MAP, "redirect_map", RetType.INTEGER, (_MAP, _ANY, _ANY),
                _REDIRECT_MAPS, prog_types=_XDP, ret_range=_XDP_ACTION),
    HelperProto(HelperId.XDP_ADJUST_META, "xdp_adjust_meta", RetType.INTEGER, (_CTX, _ANY),
                prog_types=_XDP, changes_pkt_data=True),
    HelperProto(HelperId.XDP_ADJUST_TAIL, "xdp_adjust_tail", RetType.INTEGER, (_CTX, _ANY),
                prog_types=_XDP, changes_pkt_data=True),
    # struct bpf_fib_lookup in, the route out: read and written (MEM_WRITE)
    HelperProto(HelperId.FIB_LOOKUP, "fib_lookup", RetType.INTEGER,
                (_CTX, Arg(ArgType.PTR_TO_MEM), Arg(ArgType.CONST_SIZE), _ANY),
                prog_types=_NET, gpl_only=True),
    HelperProto(HelperId.SK_LOOKUP_TCP, "sk_lookup_tcp", RetType.PTR_TO_SOCKET_OR_NULL,
                _SK_LOOKUP_ARGS, prog_types=_NET, pkt_access=True),
    HelperProto(HelperId.SK_LOOKUP_UDP, "sk_lookup_udp", RetType.PTR_TO_SOCKET_OR_NULL,
                _SK_LOOKUP_ARGS, prog_types=_NET, pkt_access=True),
    HelperProto(HelperId.SK_RELEASE, "sk_release", RetType.INTEGER,
                (Arg(ArgType.PTR_TO_SOCK_COMMON, release=True),)),
    HelperProto(HelperId.SKC_LOOKUP_TCP, "skc_lookup_tcp", RetType.PTR_TO_SOCK_COMMON_OR_NULL,
                _SK_LOOKUP_ARGS, prog_types=_NET, pkt_access=True),
    HelperProto(HelperId.TCP_CHECK_SYNCOOKIE, "tcp_check_syncookie", RetType.INTEGER,
                _SYNCOOKIE_ARGS, prog_types=_NET, gpl_only=True, pkt_access=True),
    HelperProto(HelperId.TCP_GEN_SYNCOOKIE, "tcp_gen_syncookie", RetType.INTEGER,
                _SYNCOOKIE_ARGS, prog_types=_NET, gpl_only=True, pkt_access=True),
    HelperProto(HelperId.MAP_PUSH_ELEM, "map_push_elem", RetType.INTEGER, (_MAP, _VALUE, _ANY),
                _QUEUE_MAPS, pkt_access=True, writes_map=True),
    HelperProto(HelperId.MAP_POP_ELEM, "map_pop_elem", RetType.INTEGER,
                (_MAP, Arg(ArgType.PTR_TO_UNINIT_MAP_VALUE)), _QUEUE_MAPS, writes_map=True),
    HelperProto(HelperId.MAP_PEEK_ELEM, "map_peek_elem", RetType.INTEGER,
                (_MAP, Arg(ArgType.PTR_TO_UNINIT_MAP_VALUE)), _QUEUE_MAPS),
    HelperProto(HelperId.SPIN_LOCK, "spin_lock", RetType.VOID,
                (Arg(ArgType.PTR_TO_SPIN_LOCK),)),
    HelperProto(HelperId.SPIN_UNLOCK, "spin_unlock", RetType.VOID,
                (Arg(ArgType.PTR_TO_SPIN_LOCK),)),
    _time(HelperId.JIFFIES64, "jiffies64"),
    _time(HelperId.KTIME_GET_BOOT_NS, "ktime_get_boot_ns"),
    HelperProto(HelperId.RINGBUF_OUTPUT, "ringbuf_output", RetType.INTEGER,
                (_MAP, _RO_MEM, Arg(ArgType.CONST_SIZE_OR_ZERO), _ANY),
                frozenset({MapType.RINGBUF})),
    HelperProto(HelperId.RINGBUF_RESERVE, "ringbuf_reserve", RetType.PTR_TO_RINGBUF_MEM_OR_NULL,
                (_MAP, Arg(ArgType.CONST_ALLOC_SIZE_OR_ZERO), _ANY), frozenset({MapType.RINGBUF})),
    HelperProto(HelperId.RINGBUF_SUBMIT, "ringbuf_submit", RetType.VOID, _RINGBUF_RELEASE_ARGS),
    HelperProto(HelperId.RINGBUF_DISCARD, "ringbuf_discard", RetType.VOID,
                _RINGBUF_RELEASE_ARGS),
    HelperProto(HelperId.RINGBUF_QUERY, "ringbuf_query", RetType.INTEGER, (_MAP, _ANY),
                frozenset({MapType.RINGBUF})),
    _time(HelperId.KTIME_GET_COARSE_NS, "ktime_get_coarse_ns"),
    # bpf_loop(nr_loops, callback_fn, callback_ctx, flags): the verifier's callbacks.py checks
    # the call and the callback; engines run it themselves (it calls back into the program)
    HelperProto(HelperId.LOOP, "loop", RetType.INTEGER,
                (_ANY, Arg(ArgType.PTR_TO_FUNC), Arg(ArgType.PTR_TO_STACK, maybe_null=True),
                 _ANY)),
    # u32 *mtu_len: read (a length to check, when not 0) and written (the MTU), 4 aligned
    # bytes and no size argument (ARG_PTR_TO_FIXED_SIZE_MEM | MEM_WRITE | MEM_ALIGNED)
    HelperProto(HelperId.CHECK_MTU, "check_mtu", RetType.INTEGER,
                (_CTX, _ANY, Arg(ArgType.PTR_TO_MEM, size=4, aligned=True), _ANY, _ANY),
                prog_types=_NET, gpl_only=True),
    HelperProto(HelperId.XDP_GET_BUFF_LEN, "xdp_get_buff_len", RetType.INTEGER, (_CTX,),
                prog_types=_XDP),
    HelperProto(HelperId.XDP_LOAD_BYTES, "xdp_load_bytes", RetType.INTEGER,
                (_CTX, _ANY, Arg(ArgType.PTR_TO_UNINIT_MEM), Arg(ArgType.CONST_SIZE)),
                prog_types=_XDP),
    HelperProto(HelperId.XDP_STORE_BYTES, "xdp_store_bytes", RetType.INTEGER,
                (_CTX, _ANY, _RO_MEM, Arg(ArgType.CONST_SIZE)), prog_types=_XDP),
    HelperProto(HelperId.MAP_LOOKUP_PERCPU_ELEM, "map_lookup_percpu_elem",
                RetType.PTR_TO_MAP_VALUE_OR_NULL, (_MAP, _KEY, _ANY), _PERCPU_MAPS,
                pkt_access=True),
    _time(HelperId.KTIME_GET_TAI_NS, "ktime_get_tai_ns"),
)}

#: Map types that may only be passed to these helpers (kernel check_map_func_compatibility).
MAP_TYPE_HELPERS: dict[MapType, frozenset[int]] = {
    MapType.PROG_ARRAY: frozenset({HelperId.TAIL_CALL}),
    MapType.PERF_EVENT_ARRAY: frozenset({HelperId.PERF_EVENT_OUTPUT}),
    MapType.RINGBUF: frozenset({HelperId.RINGBUF_OUTPUT, HelperId.RINGBUF_QUERY,
                                HelperId.RINGBUF_RESERVE}),
    MapType.DEVMAP: frozenset({HelperId.REDIRECT_MAP, HelperId.MAP_LOOKUP_ELEM}),
    MapType.DEVMAP_HASH: frozenset({HelperId.REDIRECT_MAP, HelperId.MAP_LOOKUP_ELEM}),
    MapType.XSKMAP: frozenset({HelperId.REDIRECT_MAP, HelperId.MAP_LOOKUP_ELEM}),
    MapType.CPUMAP: frozenset({HelperId.REDIRECT_MAP}),
    MapType.QUEUE: frozenset({HelperId.MAP_PUSH_ELEM, HelperId.MAP_POP_ELEM,
                              HelperId.MAP_PEEK_ELEM}),
    MapType.STACK: frozenset({HelperId.MAP_PUSH_ELEM, HelperId.MAP_POP_ELEM,
                              HelperId.MAP_PEEK_ELEM}),
}


#: Helpers that call a subprogram of the program (a callback), checked by the verifier's
#: ``callbacks.py`` and run by the engines themselves rather than from a helper table.
CALLBACK_HELPERS = frozenset({HelperId.LOOP})

#: The most iterations ``bpf_loop`` runs (the kernel's BPF_MAX_LOOPS); more is -E2BIG.
BPF_MAX_LOOPS = 1 << 23


def prototype(helper_id: int) -> HelperProto | None:
    return PROTOTYPES.get(helper_id)


def check_prototype(proto: HelperProto) -> list[str]:
    """What is wrong with a prototype (the kernel's ``check_func_proto``): every memory
    argument sized exactly once, by a fixed size or by the size argument right after it;
    key and value arguments after the map; at most one argument the helper fills."""
    problems = []
    args = proto.args
    if len(args) > 5:
        problems.append(f"{len(args)} arguments, at most 5")
    seen_map = False
    for i, arg in enumerate(args):
        follows = args[i + 1] if i + 1 < len(args) else None
        sized_by_next = follows is not None and follows.is_size
        if arg.type == ArgType.CONST_MAP_PTR:
            seen_map = True
        elif arg.type in (ArgType.PTR_TO_MAP_KEY, ArgType.PTR_TO_MAP_VALUE,
                          ArgType.PTR_TO_UNINIT_MAP_VALUE):
            if not seen_map:
                problems.append(f"arg{i + 1}: a map key or value before the map")
            if sized_by_next or arg.size:
                problems.append(f"arg{i + 1}: map keys and values take the map's sizes")
        elif arg.type in (ArgType.PTR_TO_MEM, ArgType.PTR_TO_UNINIT_MEM):
            if bool(arg.size) == sized_by_next:
                problems.append(f"arg{i + 1}: memory needs a fixed size or a size argument, "
                                "not both")
            if arg.size < 0 or arg.aligned and arg.size & (arg.size - 1):
                problems.append(f"arg{i + 1}: size {arg.size} cannot be aligned to")
        elif arg.is_size:
            before = args[i - 1] if i else None
            if before is None or before.type not in (ArgType.PTR_TO_MEM,
                                                     ArgType.PTR_TO_UNINIT_MEM) or before.size:
                problems.append(f"arg{i + 1}: a size argument that follows no memory argument")
        if arg.is_memory and arg.type != ArgType.PTR_TO_MEM and (arg.size or arg.aligned):
            problems.append(f"arg{i + 1}: only PTR_TO_MEM takes a fixed size or alignment")
        if arg.maybe_null and not (arg.type == ArgType.PTR_TO_MEM and sized_by_next) and \
                arg.type != ArgType.PTR_TO_STACK:
            problems.append(f"arg{i + 1}: NULL is only allowed with a size argument")
    if sum(arg.access == FILL for arg in args if arg.is_memory) > 1:
        problems.append("more than one argument the helper fills")
    if sum(arg.release for arg in args) > 1:
        problems.append("more than one argument the helper releases")
    for i, arg in enumerate(args):
        if arg.release and arg.type not in _RELEASABLE:
            problems.append(f"arg{i + 1}: only sockets and ring buffer memory are released")
        if arg.type == ArgType.PTR_TO_RINGBUF_MEM and not arg.release:
            problems.append(f"arg{i + 1}: ring buffer memory is only taken to be released")
        if arg.type == ArgType.CONST_ALLOC_SIZE_OR_ZERO and \
                proto.ret != RetType.PTR_TO_RINGBUF_MEM_OR_NULL:
            problems.append(f"arg{i + 1}: an allocation size for a helper that allocates "
                            "nothing")
    needs_map = proto.ret in (RetType.PTR_TO_MAP_VALUE_OR_NULL,
                              RetType.PTR_TO_RINGBUF_MEM_OR_NULL) or proto.writes_map
    if needs_map and not seen_map:
        problems.append("returns or changes map values but takes no map")
    return problems


#: Kernel names of well-known helpers an XDP device does not offer (for messages only).
OTHER_HELPER_NAMES = {
    4: "probe_read", 9: "skb_store_bytes", 14: "get_current_pid_tgid",
    15: "get_current_uid_gid", 16: "get_current_comm", 26: "skb_load_bytes",
    35: "get_current_task", 112: "probe_read_user", 113: "probe_read_kernel",
    198: "ringbuf_reserve_dynptr", 199: "ringbuf_submit_dynptr", 200: "ringbuf_discard_dynptr",
}

#: Helpers the device refuses on purpose, with why (the verifier's message names the reason).
#: Dynptr reservations hand the program a stack object that stands for the reservation: the
#: verifier tracks references, but not dynptr stack slots.
REFUSED_HELPERS = {
    198: "dynptr reservations need dynptr stack slots this verifier does not track; use "
         "bpf_ringbuf_reserve or bpf_ringbuf_output",
    199: "dynptr reservations need dynptr stack slots this verifier does not track; use "
         "bpf_ringbuf_reserve/bpf_ringbuf_submit",
    200: "dynptr reservations need dynptr stack slots this verifier does not track; use "
         "bpf_ringbuf_reserve/bpf_ringbuf_discard",
}


def helper_name(helper_id: int) -> str:
    """``bpf_map_lookup_elem`` for 1; ``bpf_unknown`` for ids the device knows nothing of."""
    proto = PROTOTYPES.get(helper_id)
    if proto is not None:
        return proto.kernel_name
    return f"bpf_{OTHER_HELPER_NAMES.get(helper_id, 'unknown')}"
