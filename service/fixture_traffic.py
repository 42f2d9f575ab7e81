"""Frames and map contents that drive every fixture program (fixtures/xdp) down each of its
paths - for the differential tests of the backends and the per-packet benchmark alike.

``FRAMES`` covers IPv4 TCP/UDP/ICMP, IPv6 with extension headers, 802.1Q, ARP, IPIP, runts and
a jumbo frame; :func:`populate` fills whichever of the fixtures' maps an object has so that the
frames hit both sides of each decision (a blocklisted and an allowed source, a VIP and another
address, a tunnelled and a plain destination...). :func:`deterministic` masks what depends on
time or random numbers (bpf_ktime_get_ns, bpf_get_prandom_u32).
"""

from __future__ import annotations

import struct
from typing import Any

from offload.backends.install import Installed

from . import frames as p

BLOCKED, ALLOWED, PEER = "10.0.0.66", "10.0.0.1", "10.0.0.2"
VIP, TUNNEL_DST, LOCAL_END, REMOTE_END = "192.168.100.1", "172.16.0.5", "10.1.1.1", "10.2.2.2"
BLOCKED6, ALLOWED6, PEER6 = "2001:db8::66", "2001:db9::1", "2001:db8::2"
#: (prefix length, address) -> value of the LPM fixture: 1 drops, 2 passes.
PREFIXES_V4 = {(24, "10.0.0.0"): 1, (32, ALLOWED): 2}
PREFIXES_V6 = {(64, "2001:db8::"): 1}


def _v4(packet: bytes, **kwargs: Any) -> bytes:
    return p.ether(packet, p.ETH_P_IP, **kwargs)


def _v6(packet: bytes) -> bytes:
    return p.ether(packet, p.ETH_P_IPV6)


_UDP6 = p.udp(1, 2, b"y" * 8)


FRAMES: dict[str, bytes] = {
    "tcp-allowed": _v4(p.tcp_packet(ALLOWED, PEER, 40000, 443)),
    "tcp-blocked": _v4(p.tcp_packet(BLOCKED, PEER, 40000, 443)),
    "tcp-syn": _v4(p.tcp_packet(ALLOWED, PEER, 40001, 22, p.TCP_SYN)),
    "tcp-ack": _v4(p.tcp_packet(ALLOWED, PEER, 40001, 22, p.TCP_ACK)),
    "tcp-fin": _v4(p.tcp_packet(ALLOWED, PEER, 40001, 22, p.TCP_FIN | p.TCP_ACK)),
    "tcp-telnet": _v4(p.tcp_packet(ALLOWED, PEER, 40002, 23)),
    "tcp-vip": _v4(p.tcp_packet(ALLOWED, VIP, 40003, 80, payload=b"GET /")),
    "udp-vip": _v4(p.udp_packet(PEER, VIP, 5353, 53)),
    "udp-allowed": _v4(p.udp_packet(ALLOWED, PEER, 1000, 4789)),
    "udp-blocked-port": _v4(p.udp_packet(ALLOWED, PEER, 1000, 53)),
    "udp-blocked-src": _v4(p.udp_packet(BLOCKED, PEER, 1000, 4789)),
    "icmp": _v4(p.icmp_packet(ALLOWED, PEER)),
    "icmp-ttl1": _v4(p.icmp_packet(ALLOWED, PEER, ttl=1)),
    "ipv4-options": _v4(p.ipv4(BLOCKED, PEER, p.IPPROTO_UDP, bytes(16), options=bytes([1] * 8))),
    "vlan-blocked": _v4(p.tcp_packet(BLOCKED, PEER, 1, 2), vlan=100),
    "vlan-allowed": _v4(p.udp_packet(ALLOWED, PEER, 1, 2), vlan=100),
    "to-tunnel": _v4(p.udp_packet(ALLOWED, TUNNEL_DST, 7, 8)),
    "ipip-local": _v4(p.ipip(REMOTE_END, LOCAL_END, p.udp_packet(TUNNEL_DST, ALLOWED, 8, 7))),
    "ipip-other": _v4(p.ipip(REMOTE_END, PEER, p.udp_packet(TUNNEL_DST, ALLOWED, 8, 7))),
    "to-port-mac": _v4(p.udp_packet(ALLOWED, PEER, 9, 9), dst=p.MAC_PORT),
    "ipv6-udp": _v6(p.ipv6(ALLOWED6, PEER6, p.IPPROTO_UDP, _UDP6)),
    "ipv6-blocked": _v6(p.ipv6(BLOCKED6, PEER6, p.IPPROTO_UDP, _UDP6)),
    "ipv6-hop1": _v6(p.ipv6(ALLOWED6, PEER6, p.IPPROTO_UDP, _UDP6, hop_limit=1)),
    "ipv6-ext": _v6(p.ipv6_chain(ALLOWED6, PEER6, [p.IPPROTO_HOPOPTS, p.IPPROTO_DSTOPTS,
                                                   p.IPPROTO_FRAGMENT], p.IPPROTO_UDP, _UDP6)),
    "ipv6-rh0": _v6(p.ipv6_chain(ALLOWED6, PEER6, [p.IPPROTO_ROUTING], p.IPPROTO_UDP, _UDP6,
                                 routing_type=0)),
    "ipv6-rh2": _v6(p.ipv6_chain(ALLOWED6, PEER6, [p.IPPROTO_HOPOPTS, p.IPPROTO_ROUTING],
                                 p.IPPROTO_UDP, _UDP6)),
    "ipv6-long-chain": _v6(p.ipv6_chain(ALLOWED6, PEER6, [p.IPPROTO_DSTOPTS] * 9, p.IPPROTO_NONE,
                                        b"")),
    "arp": p.ether(p.arp_request(ALLOWED, PEER), p.ETH_P_ARP, dst=b"\xff" * 6),
    "runt-eth-only": p.ether(b"", p.ETH_P_IP),
    "runt-ipv4": _v4(p.tcp_packet(BLOCKED, PEER, 1, 2))[:30],
    "runt-ihl": _v4(p.ipv4(BLOCKED, PEER, p.IPPROTO_UDP, b"", options=bytes(40)))[:40],
    "runt-vlan": p.ether(b"", p.ETH_P_IP, vlan=5)[:16],
    "runt-tcp": _v4(p.tcp_packet(ALLOWED, PEER, 1, 2))[:40],
    "big-udp": _v4(p.udp_packet(ALLOWED, PEER, 1000, 4789, b"j" * 1400)),
    "jumbo": _v4(p.udp_packet(ALLOWED, PEER, 1000, 4789, b"J" * 8950)),
}
#: Frames longer than the kernel's linear XDP buffer in a test run: the kernel shows programs
#: only PAGE_SIZE - 256 (headroom) - 320 (skb_shared_info) bytes and keeps the rest in
#: fragments; a device keeps the whole frame linear. They are compared between the engines only.
LINEAR_LIMIT = 4096 - 256 - 320
MULTI_BUFFER = {name for name, frame in FRAMES.items() if len(frame) > LINEAR_LIMIT}


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def populate(obj: Installed) -> None:
    """Fill the maps this object has; slots of the jump table get its handler programs."""
    maps = obj.maps
    if "blocked_v4" in maps:
        obj.map("blocked_v4").update(p.ip4(BLOCKED), bytes(8))
        obj.map("blocked_v6").update(p.ip6(BLOCKED6), bytes(8))
    if "prefixes_v4" in maps:
        for (length, addr), value in PREFIXES_V4.items():
            obj.map("prefixes_v4").update(_u32(length) + p.ip4(addr), _u32(value))
        for (length, addr), value in PREFIXES_V6.items():
            obj.map("prefixes_v6").update(_u32(length) + p.ip6(addr), _u32(value))
    if "services" in maps:
        obj.map("services").update(p.ip4(VIP) + struct.pack("!H", 80) + bytes([p.IPPROTO_TCP, 0]),
                                   _u32(0) + _u32(2))
        obj.map("services").update(p.ip4(VIP) + struct.pack("!H", 53) + bytes([p.IPPROTO_UDP, 0]),
                                   _u32(2) + _u32(1))
        for slot in range(3):
            obj.map("backends").update(_u32(slot), p.ip4(f"10.9.0.{slot + 1}") +
                                       bytes([2, 0, 0, 0, 9, slot]) + bytes(2))
    if "tunnels" in maps:
        obj.map("tunnels").update(p.ip4(TUNNEL_DST), p.ip4(LOCAL_END) + p.ip4(REMOTE_END))
        obj.map("local_endpoints").update(p.ip4(LOCAL_END), _u32(1))
    if "mac_ports" in maps:
        obj.map("mac_ports").update(p.MAC_PORT, _u32(3))
    if "dest_slots" in maps:  # the steering fixture: PEER behind port 2, VIP's slot empty
        obj.map("dest_slots").update(p.ip4(PEER), _u32(0))
        obj.map("dest_slots").update(p.ip4(VIP), _u32(1))
        obj.map("egress_ports").update(_u32(0), _u32(2))
    if "jump_table" in maps:
        for slot, name in enumerate(("xdp_handle_tcp", "xdp_handle_udp", "xdp_handle_icmp")):
            obj.map("jump_table").update(_u32(slot), _u32(obj.programs[name]))
        obj.map("udp_blocked").update((53).to_bytes(2, "little"), b"\1")
    if "tenant_blocklists" in maps:
        obj.add_inner("tenant_blocklists", 1).update(p.ip4(BLOCKED), b"\1")  # ifindex 1 (lo)
    if "xdp_conf.data" in maps:
        obj.map("xdp_conf.data").update(_u32(0), _u32(1))  # sample every frame


def deterministic(map_name: str, key: bytes, value: bytes) -> bytes:
    """``value`` with the bytes that depend on time or random numbers zeroed."""
    if map_name == "xdp_conf.bss":  # sampled, last_sample_ns, then the drop counters
        return value[:8] + bytes(8) + value[16:]
    if map_name == "flows":  # packets, first_seen_ns, mark, pad
        return value[:8] + bytes(12) + value[20:]
    return value


#: Programs that write random numbers into the frame's metadata (the flow mark).
RANDOM_METADATA = {"xdp_flow_mark"}
