"""Crafted frames for the fixture programs: headers built field by field with their checksums.

Layouts per RFC 791 (IPv4), RFC 8200 (IPv6 and its extension headers), RFC 793/768/792
(TCP, UDP, ICMP), RFC 826 (ARP), IEEE 802.1Q (VLAN tags).
"""

from __future__ import annotations

import ipaddress
import struct

ETH_P_IP, ETH_P_IPV6, ETH_P_ARP, ETH_P_8021Q = 0x0800, 0x86DD, 0x0806, 0x8100
TCP, UDP, ICMP, IPIP, ICMPV6 = 6, 17, 1, 4, 58
HOPOPTS, ROUTING, FRAGMENT, DSTOPTS, NO_NEXT = 0, 43, 44, 60, 59
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
MAC_PORT = bytes.fromhex("02000000aa03")  # a learned MAC for the redirect fixture


def ip4(text: str) -> bytes:
    return ipaddress.IPv4Address(text).packed


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def eth(ethertype: int, payload: bytes, *, dst: bytes = MAC_B, src: bytes = MAC_A,
        vlan: int | None = None) -> bytes:
    if vlan is not None:
        return dst + src + struct.pack("!HHH", ETH_P_8021Q, vlan, ethertype) + payload
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ttl: int = 64, tos: int = 0,
         options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 20 + len(options) + len(payload),
                         0x1234, 0, ttl, proto, 0, ip4(src), ip4(dst)) + options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def _l4_checksum(src: bytes, dst: bytes, proto: int, segment: bytes) -> int:
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    else:
        pseudo = src + dst + struct.pack("!IxxxB", len(segment), proto)
    return checksum(pseudo + segment)


def tcp(src: str, dst: str, sport: int, dport: int, flags: int = ACK,
        payload: bytes = b"") -> bytes:
    segment = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0)
    segment += payload
    csum = _l4_checksum(ip4(src), ip4(dst), TCP, segment)
    return ipv4(src, dst, TCP, segment[:16] + struct.pack("!H", csum) + segment[18:])


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x" * 8) -> bytes:
    segment = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    csum = _l4_checksum(ip4(src), ip4(dst), UDP, segment) or 0xFFFF
    return ipv4(src, dst, UDP, segment[:6] + struct.pack("!H", csum) + segment[8:])


def icmp_echo(src: str, dst: str, ttl: int = 64) -> bytes:
    message = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + b"ping" * 8
    message = message[:2] + struct.pack("!H", checksum(message)) + message[4:]
    return ipv4(src, dst, ICMP, message, ttl=ttl)


def ipv6(src: str, dst: str, next_header: int, payload: bytes, *, hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit, ip6(src),
                       ip6(dst)) + payload


def ext_header(next_header: int, kind: int, *, routing_type: int = 2) -> bytes:
    """One IPv6 extension header of 8 bytes (fragment) or 8 bytes with padding (the others)."""
    if kind == FRAGMENT:
        return struct.pack("!BBHI", next_header, 0, 0, 0xABCD)
    if kind == ROUTING:
        return struct.pack("!BBBB4x", next_header, 0, routing_type, 0)
    return struct.pack("!BB6s", next_header, 0, bytes([1, 4, 0, 0, 0, 0]))  # PadN


def ipv6_chain(src: str, dst: str, kinds: list[int], final: int, payload: bytes, *,
               routing_type: int = 2) -> bytes:
    """IPv6 with the extension headers ``kinds`` in order, then ``final`` carrying ``payload``."""
    body = payload
    following = final
    for kind in reversed(kinds):
        body = ext_header(following, kind, routing_type=routing_type) + body
        following = kind
    return ipv6(src, dst, following, body)


def udp6(sport: int, dport: int) -> bytes:
    return struct.pack("!HHHH", sport, dport, 16, 0) + b"y" * 8


def arp_request(sender: str, target: str) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, MAC_A, ip4(sender), bytes(6),
                       ip4(target))


def ipip(outer_src: str, outer_dst: str, inner: bytes) -> bytes:
    return ipv4(outer_src, outer_dst, IPIP, inner)
