"""The helpers an XDP device offers, implemented over the engine's memory model.

Each helper is ``fn(execution, r1, ..., r5) -> r0`` and finds the frame, the maps and the
device's answers (clock, random numbers, routes, trace log) in ``execution.env``, an
:class:`~.xdp_env.XdpEnv`. Semantics follow the kernel (net/core/filter.c,
kernel/bpf/helpers.c): failures return a negative errno, a lookup that finds nothing returns
NULL, redirects record their target and return XDP_REDIRECT, event output goes to the
streams the perf event array and ring buffer maps hold for the device's reader.
"""

from __future__ import annotations

import errno
import struct

from ..engine.errors import ExecutionError
from ..engine.interpreter import MAX_TAIL_CALLS, Execution, Helper, TailCall
from ..engine.memory import MemoryFault, RegionKind
from ..engine.provenance import ArgUse, HelperSig
from ..errors import ErrnoError
from ..helpers.prototypes import PROTOTYPES, ArgType, HelperId, HelperProto, RetType
from ..maps.cpumap import CpuMap
from ..maps.devmap import DevMap, DevMapHash, DevmapTarget
from ..maps.map_in_map import ArrayOfMaps, HashOfMaps
from ..maps.perf_event_array import PerfEventArrayMap
from ..maps.prog_array import ProgArrayMap
from ..maps.ringbuf import RingBufMap
from ..maps.spec import SPIN_LOCK_SIZE
from ..maps.xskmap import XskMap
from ..uapi import BPF_F_CTXLEN_MASK, BPF_F_INDEX_MASK, XdpAction
from ..xdp_buffer import ETH_HLEN
from .xdp_env import M64, REDIRECT_CPU, REDIRECT_XSK, Redirect, XdpEnv, errno_result

TRACE_LIMIT = 512
#: Arguments bpf_trace_vprintk takes at most (the kernel's MAX_BPRINTF_VARARGS).
MAX_VPRINTK_ARGS = 12

def _env(ex: Execution) -> XdpEnv:
    env = ex.env
    if not isinstance(env, XdpEnv):
        raise MemoryFault("XDP helpers need an XDP frame", address=0, size=0, write=False)
    return env


def map_lookup_elem(ex: Execution, map_ptr: int, key_ptr: int, *_: int) -> int:
    env = _env(ex)
    live = env.map_at(map_ptr)
    key = ex.memory.read(key_ptr, live.key_size)
    if isinstance(live, (ArrayOfMaps, HashOfMaps)):
        inner = live.inner_map(key)
        return 0 if inner is None else env.pointer_to(inner)
    try:
        buffer = live.program_ref(key, env.cpu)
    except ErrnoError:
        return 0
    return 0 if buffer is None else env.value_address(live, buffer)


def map_update_elem(ex: Execution, map_ptr: int, key_ptr: int, value_ptr: int, flags: int,
                    *_: int) -> int:
    env = _env(ex)
    live = env.map_at(map_ptr)
    key = ex.memory.read(key_ptr, live.key_size)
    value = ex.memory.read(value_ptr, live.value_size)
    try:
        live.program_update(key, value, flags, env.cpu)
    except ErrnoError as err:
        return errno_result(err.errno)
    return 0


def map_delete_elem(ex: Execution, map_ptr: int, key_ptr: int, *_: int) -> int:
    env = _env(ex)
    live = env.map_at(map_ptr)
    try:
        live.program_delete(ex.memory.read(key_ptr, live.key_size), env.cpu)
    except ErrnoError as err:
        return errno_result(err.errno)
    return 0


def ktime_get_ns(ex: Execution, *_: int) -> int:
    return _env(ex).clock() & M64


def get_prandom_u32(ex: Execution, *_: int) -> int:
    return _env(ex).rng.getrandbits(32)


def get_smp_processor_id(ex: Execution, *_: int) -> int:
    return _env(ex).cpu


def tail_call(ex: Execution, ctx: int, map_ptr: int, index: int, *_: int) -> int:
    """Jump to the program at ``index``; on a missing entry, or once the chain holds
    MAX_TAIL_CALLS tail calls (bpf-helpers(7)), fail and fall through to the next
    instruction."""
    if ex.tail_calls >= MAX_TAIL_CALLS:
        return errno_result(errno.E2BIG)
    env = _env(ex)
    live = env.map_at(map_ptr)
    if not isinstance(live, ProgArrayMap):
        return errno_result(errno.EINVAL)
    index &= 0xFFFFFFFF
    handle = live.program_at(index) if index < live.max_entries else None
    target = env.tail_target(handle) if handle is not None else None
    if target is None:
        return errno_result(errno.ENOENT)
    raise TailCall(target, ctx)


def redirect(ex: Execution, ifindex: int, flags: int, *_: int) -> int:
    env = _env(ex)
    if flags:
        return XdpAction.ABORTED
    env.redirect = Redirect(ifindex & 0xFFFFFFFF)
    return XdpAction.REDIRECT


def redirect_map(ex: Execution, map_ptr: int, key: int, flags: int, *_: int) -> int:
    """Redirect through a devmap, cpumap or xskmap entry (the key is a u32): to an interface,
    a CPU's worker queue, a guest receive queue. When the entry is missing, the low two bits
    of ``flags`` are the action returned instead; other bits abort (BPF_F_BROADCAST is not
    offered)."""
    env = _env(ex)
    live = env.map_at(map_ptr)
    if flags & ~0x3:
        return XdpAction.ABORTED
    index = key & 0xFFFFFFFF
    if isinstance(live, CpuMap):
        slot = live.target(index)
        if slot is None:
            return flags & 0x3
        env.redirect = Redirect(slot.cpu, slot.program, REDIRECT_CPU, slot.qsize)
        return XdpAction.REDIRECT
    if isinstance(live, XskMap):
        queue = live.queue_at(index)
        if queue is None:
            return flags & 0x3
        env.redirect = Redirect(queue, None, REDIRECT_XSK)
        return XdpAction.REDIRECT
    target: DevmapTarget | None = None
    if isinstance(live, (DevMap, DevMapHash)):
        target = live.target(index.to_bytes(4, "little"))
    if target is None:
        return flags & 0x3
    env.redirect = Redirect(target.ifindex, target.program)
    return XdpAction.REDIRECT


#: The upper 32 bits of bpf_perf_event_output's flags in XDP: packet bytes to append.


def perf_event_output(ex: Execution, ctx: int, map_ptr: int, flags: int, data_ptr: int,
                      size: int) -> int:
    """One record to the perf event array stream of ``flags``' index (BPF_F_CURRENT_CPU: the
    running CPU's): ``size`` bytes from ``data_ptr``, then the first ``flags >> 32`` bytes of
    the packet (the XDP form, bpf_xdp_event_output). -EINVAL for other flag bits, -EFAULT
    for more packet bytes than the frame has, else the stream's answer."""
    env = _env(ex)
    live = env.map_at(map_ptr)
    flags &= M64
    if flags & ~(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK) or not isinstance(live, PerfEventArrayMap):
        return errno_result(errno.EINVAL)
    packet_bytes = flags >> 32
    buffer = env.buffer
    if packet_bytes > len(buffer):
        return errno_result(errno.EFAULT)
    data = ex.memory.read(data_ptr, size) if size else b""
    if packet_bytes:
        data += bytes(buffer.buffer[buffer.data:buffer.data + packet_bytes])
    result = live.output(data, flags & BPF_F_INDEX_MASK, cpu=env.cpu, time_ns=env.clock())
    return errno_result(-result) if result else 0


def ringbuf_output(ex: Execution, map_ptr: int, data_ptr: int, size: int, flags: int,
                   *_: int) -> int:
    """Copy ``size`` bytes into the ring buffer as one record: 0, -EINVAL for flags other
    than the wake-up ones, -EAGAIN when the ring has no room."""
    env = _env(ex)
    live = env.map_at(map_ptr)
    if not isinstance(live, RingBufMap):
        return errno_result(errno.EINVAL)
    data = ex.memory.read(data_ptr, size) if size else b""
    result = live.output(data, flags & M64, cpu=env.cpu, time_ns=env.clock())
    return errno_result(-result) if result else 0


def ringbuf_reserve(ex: Execution, map_ptr: int, size: int, flags: int, *_: int) -> int:
    """Reserve a record of ``size`` bytes: a pointer to it, or NULL (flags, no room)."""
    env = _env(ex)
    live = env.map_at(map_ptr)
    if not isinstance(live, RingBufMap):
        return 0
    size &= 0xFFFFFFFF
    reservation = live.reserve(size, flags & M64)
    return 0 if reservation is None else env.reserve(live, reservation, size)


def _end_reservation(ex: Execution, address: int, submit: bool) -> int:
    env = _env(ex)
    found = env.take_reservation(address)
    if found is None:
        raise MemoryFault("the argument is not a ring buffer reservation of this run",
                          address=address, size=0, write=False)
    region, ring, reservation = found
    if submit:
        ring.commit(reservation, region.buffer, cpu=env.cpu, time_ns=env.clock())
    else:
        ring.cancel(reservation)
    return 0


def ringbuf_submit(ex: Execution, address: int, flags: int, *_: int) -> int:
    """Deliver a reserved record into the ring buffer's stream (wake-up flags change
    nothing on the device)."""
    return _end_reservation(ex, address, True)


def ringbuf_discard(ex: Execution, address: int, flags: int, *_: int) -> int:
    """Drop a reserved record: nothing reaches the stream, its room is free again."""
    return _end_reservation(ex, address, False)


def sk_lookup(ex: Execution, *_: int) -> int:
    """bpf_sk_lookup_tcp/_udp, bpf_skc_lookup_tcp: NULL. The device holds no sockets - the
    sockets of the host and of the guest live in their kernels - so no lookup finds one
    (docs/event-streams.md); a program's not-NULL path never runs here."""
    return 0


def sk_release(ex: Execution, *_: int) -> int:
    """Release a socket: never reached on the device (no lookup finds one)."""
    return 0


def tcp_syncookie(ex: Execution, *_: int) -> int:
    """bpf_tcp_check_syncookie/_gen_syncookie take a listening socket, which no lookup finds
    on the device: never reached; -EINVAL, the kernel's answer for a socket it cannot use."""
    return errno_result(errno.EINVAL)


def ringbuf_query(ex: Execution, map_ptr: int, flags: int, *_: int) -> int:
    """The ring buffer's available bytes, size, consumer or producer position; 0 for any
    other flag."""
    live = _env(ex).map_at(map_ptr)
    if not isinstance(live, RingBufMap):
        return 0
    return live.query(flags & M64) & M64


def _ones_complement_sum(data: bytes, seed: int) -> int:
    """32-bit one's complement sum of little-endian 32-bit words (csum_partial)."""
    total = seed & 0xFFFFFFFF
    for (word,) in struct.iter_unpack("<I", data):
        total += word
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total & 0xFFFFFFFF


def csum_diff(ex: Execution, from_ptr: int, from_size: int, to_ptr: int, to_size: int,
              seed: int) -> int:
    """The checksum difference of replacing ``from`` by ``to`` (both multiples of 4 bytes),
    folded into ``seed``, as an unfolded 32-bit sum."""
    if from_size % 4 or to_size % 4 or from_size > 512 or to_size > 512:
        return errno_result(errno.EINVAL)
    old = ex.memory.read(from_ptr, from_size) if from_size else b""
    new = ex.memory.read(to_ptr, to_size) if to_size else b""
    inverted = bytes(byte ^ 0xFF for byte in old)
    return _ones_complement_sum(inverted + new, seed)


def _s32(value: int) -> int:
    """The adjust helpers take ``int offset``: only the low 32 bits count, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def xdp_adjust_head(ex: Execution, ctx: int, delta: int, *_: int) -> int:
    env = _env(ex)
    result = env.buffer.adjust_head(_s32(delta))
    env.sync_packet()
    return result & M64


def xdp_adjust_tail(ex: Execution, ctx: int, delta: int, *_: int) -> int:
    env = _env(ex)
    result = env.buffer.adjust_tail(_s32(delta))
    env.sync_packet()
    return result & M64


def xdp_adjust_meta(ex: Execution, ctx: int, delta: int, *_: int) -> int:
    env = _env(ex)
    result = env.buffer.adjust_meta(_s32(delta))
    env.sync_packet()
    return result & M64


_FORMAT_LENGTHS = ("ll", "l", "")


def _format(env: XdpEnv, ex: Execution, fmt: bytes, args: list[int], *,
            strings: bool = True) -> str:
    """The printf subset bpf_trace_printk accepts: %d %i %u %x %X %c %s %p %% with l/ll.
    ``strings``: whether a ``%s`` argument may be a pointer (a register argument, whose
    provenance is checked) or is only ever a number (printed as the empty string)."""
    out: list[str] = []
    text = fmt.decode("latin-1")
    position = 0
    arg = 0
    while position < len(text):
        char = text[position]
        if char != "%":
            out.append(char)
            position += 1
            continue
        position += 1
        length = next(x for x in _FORMAT_LENGTHS if text.startswith(x, position))
        position += len(length)
        conv = text[position:position + 1]
        position += 1
        if conv == "%":
            out.append("%")
            continue
        if arg >= len(args) or conv not in "diuxXcsp":
            raise ValueError("bad format")
        value = args[arg]
        arg += 1
        bits = 64 if length else 32
        value &= (1 << bits) - 1
        if conv in "di":
            out.append(str(value - (1 << bits) if value >> (bits - 1) else value))
        elif conv == "u":
            out.append(str(value))
        elif conv in "xX":
            out.append(format(value, conv))
        elif conv == "c":
            out.append(chr(value & 0xFF))
        elif conv == "p":
            out.append(hex(value))
        elif not strings:
            continue
        else:
            ex.check_pointer(2 + arg, args[arg - 1])  # a1..a3 are r3..r5
            out.append(ex.memory.read_cstring(args[arg - 1], TRACE_LIMIT).decode("latin-1"))
    return "".join(out)


def trace_printk(ex: Execution, fmt_ptr: int, fmt_size: int, a1: int, a2: int, a3: int) -> int:
    """Append a formatted line to the device's trace log; returns its length or -EINVAL."""
    env = _env(ex)
    if not 0 < fmt_size <= TRACE_LIMIT:
        return errno_result(errno.EINVAL)
    raw = ex.memory.read(fmt_ptr, fmt_size)
    nul = raw.find(b"\0")
    if nul < 0:
        return errno_result(errno.EINVAL)
    try:
        line = _format(env, ex, raw[:nul], [a1, a2, a3])
    except ValueError:
        return errno_result(errno.EINVAL)
    env.trace.append(f"{env.program_name}: {line}" if env.program_name else line)
    return len(line)


def trace_vprintk(ex: Execution, fmt_ptr: int, fmt_size: int, data_ptr: int, data_len: int,
                  *_: int) -> int:
    """``bpf_trace_vprintk``: ``bpf_trace_printk`` with its arguments as u64s in memory (up to
    MAX_VPRINTK_ARGS; a length that is not a multiple of 8, or NULL with a length, is
    -EINVAL as in the kernel), to the same device log.

    The verifier lets no pointer into a helper's memory argument, so every argument is a
    number: ``%s`` of one prints the empty string, as the kernel prints a string it cannot
    read."""
    env = _env(ex)
    if not 0 < fmt_size <= TRACE_LIMIT or data_len % 8 or \
            data_len > MAX_VPRINTK_ARGS * 8 or (not data_ptr and data_len):
        return errno_result(errno.EINVAL)
    raw = ex.memory.read(fmt_ptr, fmt_size)
    nul = raw.find(b"\0")
    if nul < 0:
        return errno_result(errno.EINVAL)
    data = ex.memory.read(data_ptr, data_len) if data_len else b""
    args = [int.from_bytes(data[i:i + 8], "little") for i in range(0, data_len, 8)]
    try:
        line = _format(env, ex, raw[:nul], args, strings=False)
    except ValueError:
        return errno_result(errno.EINVAL)
    env.trace.append(f"{env.program_name}: {line}" if env.program_name else line)
    return len(line)


def _lock_word(ex: Execution, lock_ptr: int, helper: str) -> None:
    """``lock_ptr`` must be the struct bpf_spin_lock of a map value (what the verifier
    proved), or the call faults."""
    region = ex.memory.region_at(lock_ptr)
    if region is not None and region.kind == RegionKind.MAP_VALUE:
        lock_off = getattr(region.owner, "lock_off", None)
        if lock_off is not None and lock_ptr - region.base == lock_off:
            return
    raise MemoryFault(f"{helper}: the argument is not the struct bpf_spin_lock of a map "
                      "value", address=lock_ptr, size=SPIN_LOCK_SIZE, write=True)


def spin_lock(ex: Execution, lock_ptr: int, *_: int) -> int:
    """Take a map value's lock. The device runs one program at a time, so no other holder
    can exist; a second lock in one run could never be taken (the verifier allows one)."""
    env = _env(ex)
    _lock_word(ex, lock_ptr, "bpf_spin_lock")
    if env.lock is not None:
        raise MemoryFault("bpf_spin_lock: the run already holds a lock", address=lock_ptr,
                          size=SPIN_LOCK_SIZE, write=True)
    env.lock = lock_ptr
    return 0


def spin_unlock(ex: Execution, lock_ptr: int, *_: int) -> int:
    """Release the lock the run holds; releasing another one faults."""
    env = _env(ex)
    _lock_word(ex, lock_ptr, "bpf_spin_unlock")
    if env.lock != lock_ptr:
        raise MemoryFault("bpf_spin_unlock: the run does not hold this lock",
                          address=lock_ptr, size=SPIN_LOCK_SIZE, write=True)
    env.lock = None
    return 0


def fib_lookup(ex: Execution, ctx: int, params_ptr: int, plen: int, flags: int,
               *_: int) -> int:
    """Route lookup through the device's table (``env.routes``): the table fills in the
    ``struct bpf_fib_lookup`` and returns it, or None for BPF_FIB_LKUP_RET_NOT_FWDED."""
    env = _env(ex)
    if plen < 64:
        return errno_result(errno.EINVAL)
    params = ex.memory.read(params_ptr, 64)
    answer = env.routes(params) if env.routes is not None else None
    if answer is None:
        return 4  # BPF_FIB_LKUP_RET_NOT_FWDED
    ex.memory.write(params_ptr, answer[:64])
    return 0  # BPF_FIB_LKUP_RET_SUCCESS


def get_numa_node_id(ex: Execution, *_: int) -> int:
    return 0  # one memory node


JIFFY_NS = 4_000_000  # HZ=250


def jiffies64(ex: Execution, *_: int) -> int:
    return _env(ex).clock() // JIFFY_NS


def check_mtu(ex: Execution, ctx: int, ifindex: int, mtu_ptr: int, len_diff: int,
              flags: int) -> int:
    """Whether the frame (or the L3 length in ``*mtu_len``), grown by ``len_diff``, fits the
    MTU; the MTU is written back. BPF_MTU_CHK_RET_SUCCESS (0) or FRAG_NEEDED (1)."""
    env = _env(ex)
    if flags:
        return errno_result(errno.EINVAL)  # BPF_MTU_CHK_SEGS is for skb programs only
    requested = int.from_bytes(ex.memory.read(mtu_ptr, 4), "little")
    length = (requested + ETH_HLEN) if requested else len(env.buffer) + _s32(len_diff)
    ex.memory.write(mtu_ptr, env.mtu.to_bytes(4, "little"))
    return 1 if length > env.mtu + ETH_HLEN else 0


def xdp_get_buff_len(ex: Execution, *_: int) -> int:
    return len(_env(ex).buffer)


def _packet_span(env: XdpEnv, offset: int, length: int) -> int | None:
    start = env.buffer.data + (offset & 0xFFFFFFFF)
    if length > 0xFFFF or start + length > env.buffer.data_end:
        return None
    return start


def xdp_load_bytes(ex: Execution, ctx: int, offset: int, buf: int, length: int,
                   *_: int) -> int:
    env = _env(ex)
    start = _packet_span(env, offset, length)
    if start is None:
        return errno_result(errno.EINVAL)
    ex.memory.write(buf, bytes(env.buffer.buffer[start:start + length]))
    return 0


def xdp_store_bytes(ex: Execution, ctx: int, offset: int, buf: int, length: int,
                    *_: int) -> int:
    env = _env(ex)
    start = _packet_span(env, offset, length)
    if start is None:
        return errno_result(errno.EINVAL)
    env.buffer.buffer[start:start + length] = ex.memory.read(buf, length)
    return 0


def map_lookup_percpu_elem(ex: Execution, map_ptr: int, key_ptr: int, cpu: int,
                           *_: int) -> int:
    env = _env(ex)
    live = env.map_at(map_ptr)
    if cpu >= live.ncpus:
        return 0
    key = ex.memory.read(key_ptr, live.key_size)
    try:
        buffer = live.value_ref(key, cpu)
    except ErrnoError:
        return 0
    return 0 if buffer is None else env.value_address(live, buffer)


def loop(ex: Execution, *_: int) -> int:
    """``bpf_loop`` calls back into the program, so the engines run it themselves
    (``engine/callbacks.py``); this entry only offers it. Reached only through ``callx``."""
    raise ExecutionError("bpf_loop runs its callback in the engine; it cannot be called "
                         "through callx", insn_index=0)


XDP_HELPERS: dict[int, Helper] = {
    HelperId.MAP_LOOKUP_ELEM: map_lookup_elem,
    HelperId.MAP_UPDATE_ELEM: map_update_elem,
    HelperId.MAP_DELETE_ELEM: map_delete_elem,
    HelperId.KTIME_GET_NS: ktime_get_ns,
    HelperId.TRACE_PRINTK: trace_printk,
    HelperId.TRACE_VPRINTK: trace_vprintk,
    HelperId.SPIN_LOCK: spin_lock,
    HelperId.SPIN_UNLOCK: spin_unlock,
    HelperId.GET_PRANDOM_U32: get_prandom_u32,
    HelperId.GET_SMP_PROCESSOR_ID: get_smp_processor_id,
    HelperId.TAIL_CALL: tail_call,
    HelperId.REDIRECT: redirect,
    HelperId.CSUM_DIFF: csum_diff,
    HelperId.XDP_ADJUST_HEAD: xdp_adjust_head,
    HelperId.REDIRECT_MAP: redirect_map,
    HelperId.XDP_ADJUST_META: xdp_adjust_meta,
    HelperId.XDP_ADJUST_TAIL: xdp_adjust_tail,
    HelperId.FIB_LOOKUP: fib_lookup,
    HelperId.KTIME_GET_BOOT_NS: ktime_get_ns,
    HelperId.GET_NUMA_NODE_ID: get_numa_node_id,
    HelperId.JIFFIES64: jiffies64,
    HelperId.KTIME_GET_COARSE_NS: ktime_get_ns,
    HelperId.CHECK_MTU: check_mtu,
    HelperId.XDP_GET_BUFF_LEN: xdp_get_buff_len,
    HelperId.XDP_LOAD_BYTES: xdp_load_bytes,
    HelperId.XDP_STORE_BYTES: xdp_store_bytes,
    HelperId.MAP_LOOKUP_PERCPU_ELEM: map_lookup_percpu_elem,
    HelperId.KTIME_GET_TAI_NS: ktime_get_ns,
    HelperId.PERF_EVENT_OUTPUT: perf_event_output,
    HelperId.RINGBUF_OUTPUT: ringbuf_output,
    HelperId.RINGBUF_QUERY: ringbuf_query,
    HelperId.RINGBUF_RESERVE: ringbuf_reserve,
    HelperId.RINGBUF_SUBMIT: ringbuf_submit,
    HelperId.RINGBUF_DISCARD: ringbuf_discard,
    HelperId.SK_LOOKUP_TCP: sk_lookup,
    HelperId.SK_LOOKUP_UDP: sk_lookup,
    HelperId.SKC_LOOKUP_TCP: sk_lookup,
    HelperId.SK_RELEASE: sk_release,
    HelperId.TCP_CHECK_SYNCOOKIE: tcp_syncookie,
    HelperId.TCP_GEN_SYNCOOKIE: tcp_syncookie,
    HelperId.LOOP: loop,
}


_POINTER_ARGS = {ArgType.CONST_MAP_PTR: ArgUse.MAP, ArgType.PTR_TO_CTX: ArgUse.MEMORY,
                 ArgType.PTR_TO_MAP_KEY: ArgUse.MEMORY, ArgType.PTR_TO_MAP_VALUE: ArgUse.MEMORY,
                 ArgType.PTR_TO_UNINIT_MAP_VALUE: ArgUse.MEMORY,
                 ArgType.PTR_TO_MEM: ArgUse.MEMORY, ArgType.PTR_TO_UNINIT_MEM: ArgUse.MEMORY,
                 ArgType.PTR_TO_SPIN_LOCK: ArgUse.MEMORY,
                 ArgType.PTR_TO_RINGBUF_MEM: ArgUse.MEMORY,
                 ArgType.PTR_TO_STACK: ArgUse.MEMORY}


def provenance_signature(proto: HelperProto) -> HelperSig:
    """What the reference engine checks around a call, from the helper's prototype: memory
    and context arguments must point into the region they were derived from, map pointers
    must be ones the program was given; a map lookup returns a pointer."""
    args = []
    for index, arg in enumerate(proto.args):
        use = _POINTER_ARGS.get(arg.type)
        if use is ArgUse.MEMORY and arg.maybe_null:
            use = ArgUse.MEMORY_OR_NULL
        if use is not None:
            args.append((index + 1, use))
    return HelperSig(proto.kernel_name, tuple(args),
                     returns_pointer=proto.ret in (RetType.PTR_TO_MAP_VALUE_OR_NULL,
                                                   RetType.PTR_TO_RINGBUF_MEM_OR_NULL))


#: The provenance signatures of the XDP helpers (``Interpreter(provenance=...)``).
XDP_PROVENANCE: dict[int, HelperSig] = {
    helper_id: provenance_signature(PROTOTYPES[helper_id]) for helper_id in XDP_HELPERS}
