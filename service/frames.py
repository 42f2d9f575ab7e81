"""Ethernet frames built field by field - the one frame builder of the project: synthetic
traffic and the demo send these through devices, and tests and benchmarks build theirs here.

Layouts per IEEE 802.3 and 802.1Q (Ethernet, VLAN tags), RFC 791 (IPv4), RFC 8200 (IPv6 and
its extension headers), RFC 793, 768 and 792 (TCP, UDP, ICMP), RFC 4443 (ICMPv6) and RFC 826
(ARP); checksums per RFC 1071. Header builders return bytes to nest: ``ether(ipv4(src, dst,
IPPROTO_UDP, udp(1, 2)))``. The ``*_packet`` builders return a whole IPv4 packet whose
transport checksum is filled in, for programs that look at it.
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

MAC_A = bytes.fromhex("020000000001")  # the default source
MAC_B = bytes.fromhex("020000000002")  # the default destination
MAC_PORT = bytes.fromhex("02000000aa03")  # a learned MAC for the redirect fixture


def ip4(address: str | bytes) -> bytes:
    """An IPv4 address's 4 bytes, from text or as given."""
    return address if isinstance(address, bytes) else ipaddress.IPv4Address(address).packed


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(payload: bytes, ethertype: int = ETH_P_IP, src: bytes = MAC_A, dst: bytes = MAC_B,
          *, vlan: int | None = None) -> bytes:
    """An Ethernet frame; ``vlan`` adds an 802.1Q tag with that TCI."""
    if vlan is not None:
        return dst + src + struct.pack("!HHH", ETH_P_8021Q, vlan, ethertype) + payload
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src: str | bytes, dst: str | bytes, proto: int, payload: bytes, ttl: int = 64, *,
         tos: int = 0, ident: int = 1, frag: int = 0, options: bytes = b"") -> bytes:
    """An IPv4 packet with its header checksum; ``frag`` is the flags and fragment offset
    field (0x4000: don't fragment), ``options`` (a multiple of 4 bytes) lengthen the header."""
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 20 + len(options) + len(payload),
                         ident, frag, ttl, proto, 0, ip4(src), ip4(dst)) + options
    return header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:] + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit, ip6(src),
                       ip6(dst)) + payload


def ext_header(next_header: int, kind: int, *, routing_type: int = 2) -> bytes:
    """One IPv6 extension header of 8 bytes: fragment, routing, or options padded with PadN."""
    if kind == IPPROTO_FRAGMENT:
        return struct.pack("!BBHI", next_header, 0, 0, 0xABCD)
    if kind == IPPROTO_ROUTING:
        return struct.pack("!BBBB4x", next_header, 0, routing_type, 0)
    return struct.pack("!BB6s", next_header, 0, bytes([1, 4, 0, 0, 0, 0]))


def ipv6_chain(src: str, dst: str, kinds: list[int], final: int, payload: bytes, *,
               routing_type: int = 2) -> bytes:
    """IPv6 with the extension headers ``kinds`` in order, then ``final`` carrying ``payload``."""
    body = payload
    following = final
    for kind in reversed(kinds):
        body = ext_header(following, kind, routing_type=routing_type) + body
        following = kind
    return ipv6(src, dst, following, body)


def tcp(sport: int, dport: int, flags: int = TCP_ACK, data: bytes = b"", *, seq: int = 1,
        ack: int = 0, window: int = 65535) -> bytes:
    """A TCP header (checksum left 0) and ``data``."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0) + data


def udp(sport: int, dport: int, data: bytes = b"") -> bytes:
    """A UDP header (checksum 0: none, as IPv4 allows) and ``data``."""
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp_echo(icmp_type: int = 8, ident: int = 1, seq: int = 1, data: bytes = b"ping") -> bytes:
    """An echo request (8; 128 for ICMPv6) or reply with its checksum."""
    body = struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq) + data
    return body[:2] + struct.pack("!H", inet_checksum(body)) + body[4:]


def arp_request(sender: str, target: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, MAC_A, ip4(sender), bytes(6),
                       ip4(target))


def _l4_checksum(src: bytes, dst: bytes, proto: int, segment: bytes) -> int:
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(segment), proto)
    return inet_checksum(pseudo + segment)


def tcp_packet(src: str, dst: str, sport: int, dport: int, flags: int = TCP_ACK,
               payload: bytes = b"") -> bytes:
    """An IPv4 packet carrying a TCP segment with its checksum."""
    segment = tcp(sport, dport, flags, payload)
    csum = _l4_checksum(ip4(src), ip4(dst), IPPROTO_TCP, segment)
    return ipv4(src, dst, IPPROTO_TCP, segment[:16] + struct.pack("!H", csum) + segment[18:])


def udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x" * 8) -> bytes:
    """An IPv4 packet carrying a UDP datagram with its checksum."""
    segment = udp(sport, dport, payload)
    csum = _l4_checksum(ip4(src), ip4(dst), IPPROTO_UDP, segment) or 0xFFFF
    return ipv4(src, dst, IPPROTO_UDP, segment[:6] + struct.pack("!H", csum) + segment[8:])


def icmp_packet(src: str, dst: str, ttl: int = 64) -> bytes:
    """An IPv4 packet carrying an ICMP echo request."""
    return ipv4(src, dst, IPPROTO_ICMP, icmp_echo(data=b"ping" * 8), ttl=ttl)


def ipip(outer_src: str, outer_dst: str, inner: bytes) -> bytes:
    """``inner`` (an IPv4 packet) tunnelled in IPv4."""
    return ipv4(outer_src, outer_dst, IPPROTO_IPIP, inner)


def v4_frame(src: str, dst: str, l4: bytes, proto: int = IPPROTO_TCP, ttl: int = 64) -> bytes:
    """An Ethernet frame carrying ``l4`` (a transport header and data) in IPv4."""
    return ether(ipv4(src, dst, proto, l4, ttl))


def l4(proto: int, sport: int, dport: int, v6: bool) -> tuple[int, bytes]:
    """(protocol number, header) for TCP, UDP or ICMP as IPv4 or IPv6 carries it."""
    if proto == IPPROTO_TCP:
        return IPPROTO_TCP, tcp(sport, dport)
    if proto == IPPROTO_UDP:
        return IPPROTO_UDP, udp(sport, dport, b"payload")
    if v6:
        return IPPROTO_ICMPV6, icmp_echo(128, sport, dport)
    return IPPROTO_ICMP, icmp_echo(8, sport, dport)


def frame(src: str, dst: str, proto: int, sport: int = 40000, dport: int = 80) -> bytes:
    """One Ethernet frame from ``src`` to ``dst`` (both IPv4 or both IPv6)."""
    v6 = ":" in src
    number, header = l4(proto, sport, dport, v6)
    if v6:
        return ether(ipv6(src, dst, number, header), ETH_P_IPV6)
    return ether(ipv4(src, dst, number, header), ETH_P_IP)
