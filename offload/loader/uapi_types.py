"""The types a device program can see, declared as the Linux headers declare them.

``struct xdp_md`` comes from the device's own context layout (:class:`offload.xdp.XdpMd`),
``enum xdp_action`` from :class:`offload.xdp.XdpAction`; the packet headers follow the UAPI
headers (linux/if_ether.h, ip.h, ipv6.h, in6.h, tcp.h, udp.h, icmp.h, icmpv6.h, if_arp.h) and
``struct vlan_hdr``/``vlan_ethhdr`` linux/if_vlan.h, which every kernel's BTF carries and
vmlinux.h users read; ``struct bpf_fib_lookup`` is the argument of bpf_fib_lookup.

Two generations are described: :data:`CURRENT` as Linux 6.18 declares them, and
:data:`LINUX_4_19` as Linux 4.19 did - no ``egress_ifindex`` in ``xdp_md`` (5.8), no
``addrs`` group around the IP addresses (6.0), ``res1:4`` where ``tcphdr`` now has ``ae``,
and the older ``bpf_fib_lookup`` without ``mtu_result``, ``tbid`` or ``mark``. Field offsets
of what both have agree, as the UAPI promises; CO-RE finds each field by name in either.
"""

from __future__ import annotations

from ..uapi import XdpAction
from ..xdp import XdpMd
from .btf_decl import (
    Array,
    Decl,
    Enum,
    Field,
    Int,
    Struct,
    Typedef,
    bitfields,
    fields,
    struct,
    union,
)

# Base types under the names GCC gives them in kernel BTF.
CHAR = Int("char", 1)
UCHAR = Int("unsigned char", 1)
SCHAR = Int("signed char", 1, signed=True)
USHORT = Int("short unsigned int", 2)
SHORT = Int("short int", 2, signed=True)
UINT = Int("unsigned int", 4)
INT = Int("int", 4, signed=True)
ULLONG = Int("long long unsigned int", 8)
LLONG = Int("long long int", 8, signed=True)

U8, S8 = Typedef("__u8", UCHAR), Typedef("__s8", SCHAR)
U16, S16 = Typedef("__u16", USHORT), Typedef("__s16", SHORT)
U32, S32 = Typedef("__u32", UINT), Typedef("__s32", INT)
U64, S64 = Typedef("__u64", ULLONG), Typedef("__s64", LLONG)
BE16, BE32 = Typedef("__be16", U16), Typedef("__be32", U32)
SUM16, WSUM = Typedef("__sum16", U16), Typedef("__wsum", U32)

BASE: tuple[Decl, ...] = (CHAR, UCHAR, SCHAR, USHORT, SHORT, UINT, INT, ULLONG, LLONG,
                          U8, S8, U16, S16, U32, S32, U64, S64, BE16, BE32, SUM16, WSUM)

ETH_ALEN = 6


def xdp_md(*, egress_ifindex: bool = True) -> Struct:
    """``struct xdp_md``: the device's context fields, in offset order, all ``__u32``."""
    names = [f.name.lower() for f in sorted(XdpMd, key=int)
             if egress_ifindex or f != XdpMd.EGRESS_IFINDEX]
    return struct("xdp_md", *fields(U32, *names))


XDP_ACTION = Enum("xdp_action", tuple((f"XDP_{a.name}", int(a)) for a in XdpAction))

ETHHDR = struct("ethhdr", Field("h_dest", Array(UCHAR, ETH_ALEN)),
                Field("h_source", Array(UCHAR, ETH_ALEN)), Field("h_proto", BE16), packed=True)
VLAN_HDR = struct("vlan_hdr", *fields(BE16, "h_vlan_TCI", "h_vlan_encapsulated_proto"))
_MACS = (Field("h_dest", Array(UCHAR, ETH_ALEN)), Field("h_source", Array(UCHAR, ETH_ALEN)))
_VLAN_TAIL = fields(BE16, "h_vlan_proto", "h_vlan_TCI", "h_vlan_encapsulated_proto")


def group(name: str, *members: Field) -> Field:
    """``__struct_group(, name, , members)``: the members, also reachable as ``name.member``."""
    return Field("", union("", Field("", struct("", *members)),
                           Field(name, struct("", *members))))


IN6_ADDR = struct("in6_addr", Field("in6_u", union(
    "", Field("u6_addr8", Array(U8, 16)), Field("u6_addr16", Array(BE16, 8)),
    Field("u6_addr32", Array(BE32, 4)))))

_IP_HEAD = (*bitfields(U8, ("ihl", 4), ("version", 4)), Field("tos", U8),
            *fields(BE16, "tot_len", "id", "frag_off"), *fields(U8, "ttl", "protocol"),
            Field("check", SUM16))
_IPV6_HEAD = (*bitfields(U8, ("priority", 4), ("version", 4)), Field("flow_lbl", Array(U8, 3)),
              Field("payload_len", BE16), *fields(U8, "nexthdr", "hop_limit"))
_IPV6_ADDRS = fields(IN6_ADDR, "saddr", "daddr")


def tcphdr(*, accurate_ecn: bool = True) -> Struct:
    flags = (("ae", 1), ("res1", 3)) if accurate_ecn else (("res1", 4),)
    return struct("tcphdr", *fields(BE16, "source", "dest"), *fields(BE32, "seq", "ack_seq"),
                  *bitfields(U16, *flags, ("doff", 4), ("fin", 1), ("syn", 1), ("rst", 1),
                             ("psh", 1), ("ack", 1), ("urg", 1), ("ece", 1), ("cwr", 1)),
                  Field("window", BE16), Field("check", SUM16), Field("urg_ptr", BE16))


UDPHDR = struct("udphdr", *fields(BE16, "source", "dest", "len"), Field("check", SUM16))
ICMPHDR = struct("icmphdr", *fields(U8, "type", "code"), Field("checksum", SUM16), Field(
    "un", union("", Field("echo", struct("", *fields(BE16, "id", "sequence"))),
                Field("gateway", BE32),
                Field("frag", struct("", *fields(BE16, "__unused", "mtu"))),
                Field("reserved", Array(U8, 4)))))
ICMP6HDR = struct("icmp6hdr", *fields(U8, "icmp6_type", "icmp6_code"),
                  Field("icmp6_cksum", SUM16), Field("icmp6_dataun", union(
                      "", Field("un_data32", Array(BE32, 1)), Field("un_data16", Array(BE16, 2)),
                      Field("un_data8", Array(U8, 4)),
                      Field("u_echo", struct("icmpv6_echo",
                                             *fields(BE16, "identifier", "sequence"))),
                      Field("u_nd_advt", struct("icmpv6_nd_advt", *bitfields(
                          U32, ("reserved", 5), ("override", 1), ("solicited", 1),
                          ("router", 1), ("reserved2", 24)))),
                      Field("u_nd_ra", struct("icmpv6_nd_ra", Field("hop_limit", U8), *bitfields(
                          U8, ("reserved", 3), ("router_pref", 2), ("home_agent", 1),
                          ("other", 1), ("managed", 1)), Field("rt_lifetime", BE16))))))
ARPHDR = struct("arphdr", *fields(BE16, "ar_hrd", "ar_pro"), *fields(UCHAR, "ar_hln", "ar_pln"),
                Field("ar_op", BE16))

_FIB_HEAD = (*fields(U8, "family", "l4_protocol"), *fields(BE16, "sport", "dport"))
_FIB_ADDRS = (Field("", union("", Field("ipv4_src", BE32), Field("ipv6_src", Array(U32, 4)))),
              Field("", union("", Field("ipv4_dst", BE32), Field("ipv6_dst", Array(U32, 4)))))
_FIB_METRIC = Field("", union("", Field("tos", U8), Field("flowinfo", BE32),
                              Field("rt_metric", U32)))
BPF_FIB_LOOKUP = struct(
    "bpf_fib_lookup", *_FIB_HEAD,
    Field("", union("", Field("tot_len", U16), Field("mtu_result", U16))),
    Field("ifindex", U32), _FIB_METRIC, *_FIB_ADDRS,
    Field("", union("", Field("", struct("", *fields(BE16, "h_vlan_proto", "h_vlan_TCI"))),
                    Field("tbid", U32))),
    Field("", union("", Field("", struct("", Field("mark", U32))),
                    Field("", struct("", Field("smac", Array(U8, ETH_ALEN)),
                                     Field("dmac", Array(U8, ETH_ALEN)))))))
BPF_FIB_LOOKUP_4_19 = struct(
    "bpf_fib_lookup", *_FIB_HEAD, Field("tot_len", U16), Field("ifindex", U32), _FIB_METRIC,
    *_FIB_ADDRS, *fields(BE16, "h_vlan_proto", "h_vlan_TCI"),
    Field("smac", Array(U8, ETH_ALEN)), Field("dmac", Array(U8, ETH_ALEN)))

#: Linux 6.18's declarations.
CURRENT: tuple[Decl, ...] = (
    xdp_md(), XDP_ACTION, ETHHDR, VLAN_HDR,
    struct("vlan_ethhdr", group("addrs", *_MACS), *_VLAN_TAIL),
    struct("iphdr", *_IP_HEAD, group("addrs", *fields(BE32, "saddr", "daddr"))),
    IN6_ADDR, struct("ipv6hdr", *_IPV6_HEAD, group("addrs", *_IPV6_ADDRS)),
    tcphdr(), UDPHDR, ICMPHDR, ICMP6HDR, ARPHDR, BPF_FIB_LOOKUP)

#: Linux 4.19's declarations of the same headers.
LINUX_4_19: tuple[Decl, ...] = (
    xdp_md(egress_ifindex=False), XDP_ACTION, ETHHDR, VLAN_HDR,
    struct("vlan_ethhdr", *_MACS, *_VLAN_TAIL),
    struct("iphdr", *_IP_HEAD, *fields(BE32, "saddr", "daddr")),
    IN6_ADDR, struct("ipv6hdr", *_IPV6_HEAD, *_IPV6_ADDRS),
    tcphdr(accurate_ecn=False), UDPHDR, ICMPHDR, ICMP6HDR, ARPHDR, BPF_FIB_LOOKUP_4_19)
