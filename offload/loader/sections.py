"""Program types from section names, after libbpf's ``SEC()`` conventions.

libbpf names a program's type (and sometimes its attach point) by the ELF section holding it:
``SEC("xdp")``, ``SEC("xdp.frags")``, ``SEC("tc")``, ``SEC("kprobe/do_unlinkat")`` ... A
section matches a prefix when it equals it or continues it with ``/`` (the attach target);
the longest match wins. Sections in ``xdp.frags`` get ``BPF_F_XDP_HAS_FRAGS``.
"""

from __future__ import annotations

from ..uapi import AttachType, ProgFlags, ProgType
from .errors import LoadOptionError

#: Section prefixes and the program type each one means.
SECTION_PREFIXES: dict[str, ProgType] = {
    "xdp": ProgType.XDP,
    "xdp.frags": ProgType.XDP,
    "socket": ProgType.SOCKET_FILTER,
    "sk_reuseport": ProgType.SK_REUSEPORT,
    "kprobe": ProgType.KPROBE,
    "kretprobe": ProgType.KPROBE,
    "uprobe": ProgType.KPROBE,
    "uretprobe": ProgType.KPROBE,
    "uprobe.s": ProgType.KPROBE,
    "uretprobe.s": ProgType.KPROBE,
    "kprobe.multi": ProgType.KPROBE,
    "kretprobe.multi": ProgType.KPROBE,
    "uprobe.multi": ProgType.KPROBE,
    "uretprobe.multi": ProgType.KPROBE,
    "ksyscall": ProgType.KPROBE,
    "kretsyscall": ProgType.KPROBE,
    "usdt": ProgType.KPROBE,
    "tc": ProgType.SCHED_CLS,
    "tcx": ProgType.SCHED_CLS,
    "netkit": ProgType.SCHED_CLS,
    "classifier": ProgType.SCHED_CLS,
    "action": ProgType.SCHED_ACT,
    "tracepoint": ProgType.TRACEPOINT,
    "tp": ProgType.TRACEPOINT,
    "raw_tracepoint": ProgType.RAW_TRACEPOINT,
    "raw_tp": ProgType.RAW_TRACEPOINT,
    "raw_tracepoint.w": ProgType.RAW_TRACEPOINT_WRITABLE,
    "raw_tp.w": ProgType.RAW_TRACEPOINT_WRITABLE,
    "tp_btf": ProgType.TRACING,
    "fentry": ProgType.TRACING,
    "fmod_ret": ProgType.TRACING,
    "fexit": ProgType.TRACING,
    "fentry.s": ProgType.TRACING,
    "fmod_ret.s": ProgType.TRACING,
    "fexit.s": ProgType.TRACING,
    "iter": ProgType.TRACING,
    "iter.s": ProgType.TRACING,
    "freplace": ProgType.EXT,
    "lsm": ProgType.LSM,
    "lsm.s": ProgType.LSM,
    "lsm_cgroup": ProgType.LSM,
    "perf_event": ProgType.PERF_EVENT,
    "lwt_in": ProgType.LWT_IN,
    "lwt_out": ProgType.LWT_OUT,
    "lwt_xmit": ProgType.LWT_XMIT,
    "lwt_seg6local": ProgType.LWT_SEG6LOCAL,
    "sockops": ProgType.SOCK_OPS,
    "sk_skb": ProgType.SK_SKB,
    "sk_msg": ProgType.SK_MSG,
    "lirc_mode2": ProgType.LIRC_MODE2,
    "flow_dissector": ProgType.FLOW_DISSECTOR,
    "cgroup_skb": ProgType.CGROUP_SKB,
    "cgroup/skb": ProgType.CGROUP_SKB,
    "cgroup/sock": ProgType.CGROUP_SOCK,
    "cgroup/sock_create": ProgType.CGROUP_SOCK,
    "cgroup/sock_release": ProgType.CGROUP_SOCK,
    "cgroup/post_bind4": ProgType.CGROUP_SOCK,
    "cgroup/post_bind6": ProgType.CGROUP_SOCK,
    "cgroup/dev": ProgType.CGROUP_DEVICE,
    "cgroup/sysctl": ProgType.CGROUP_SYSCTL,
    "cgroup/getsockopt": ProgType.CGROUP_SOCKOPT,
    "cgroup/setsockopt": ProgType.CGROUP_SOCKOPT,
    "struct_ops": ProgType.STRUCT_OPS,
    "struct_ops.s": ProgType.STRUCT_OPS,
    "sk_lookup": ProgType.SK_LOOKUP,
    "syscall": ProgType.SYSCALL,
    "netfilter": ProgType.NETFILTER,
}
SECTION_PREFIXES.update({
    f"cgroup/{hook}{family}": ProgType.CGROUP_SOCK_ADDR
    for hook in ("bind", "connect", "sendmsg", "recvmsg", "getpeername", "getsockname")
    for family in ("4", "6", "_unix")
    if (hook, family) != ("bind", "_unix")
})

FRAGS_PREFIX = "xdp.frags"

#: Sections whose XDP programs are loaded for a map entry, as libbpf sets their attach type.
ATTACH_SECTIONS = {
    "xdp/devmap": AttachType.XDP_DEVMAP, "xdp.frags/devmap": AttachType.XDP_DEVMAP,
    "xdp/cpumap": AttachType.XDP_CPUMAP, "xdp.frags/cpumap": AttachType.XDP_CPUMAP,
}


def expected_attach_type(section: str) -> int:
    """The attach type a section name implies (``SEC("xdp/devmap")``: AttachType.XDP_DEVMAP), or 0."""
    return ATTACH_SECTIONS.get(section, 0)


def program_type(section: str) -> tuple[ProgType, int] | None:
    """The program type and load flags a section name implies, or None if it names none."""
    best: str | None = None
    for prefix in SECTION_PREFIXES:
        if section == prefix or section.startswith(prefix + "/"):
            if best is None or len(prefix) > len(best):
                best = prefix
    if best is None:
        return None
    flags = ProgFlags.XDP_HAS_FRAGS if best == FRAGS_PREFIX else ProgFlags.NONE
    return SECTION_PREFIXES[best], int(flags)


def parse_prog_type(text: str) -> tuple[ProgType, int]:
    """A program type given by name, as ``bpftool prog load ... type TYPE`` takes it: a
    section prefix (``xdp``, ``xdp.frags``, ``tc``, ``kprobe`` ...) or an ``enum
    bpf_prog_type`` name without its prefix (``sched_cls``, ``socket_filter``)."""
    known = program_type(text)
    if known is not None:
        return known
    try:
        prog_type = ProgType[text.upper()]
    except KeyError:
        prog_type = None
    if prog_type is None or prog_type == ProgType.UNSPEC:
        raise LoadOptionError(f"'{text}' names no program type (e.g. xdp, xdp.frags, tc, "
                              "socket_filter).")
    return prog_type, int(ProgFlags.NONE)
