"""Ethernet frames built field by field: IPv4 (RFC 791) and IPv6 (RFC 8200) carrying TCP,
UDP, ICMP or ICMPv6 - what synthetic traffic and the demo send through a device."""

from __future__ import annotations

import ipaddress
import struct

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
TCP_ACK = 0x10
TCP_SYN = 0x02


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(payload: bytes, ethertype: int, src: bytes = b"\x02\x00\x00\x00\x00\x01",
          dst: bytes = b"\x02\x00\x00\x00\x00\x02") -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, ttl, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:] + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, hop_limit,
                       ipaddress.IPv6Address(src).packed,
                       ipaddress.IPv6Address(dst).packed) + payload


def tcp(sport: int, dport: int, flags: int = TCP_ACK, data: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + data


def udp(sport: int, dport: int, data: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp_echo(icmp_type: int = 8, ident: int = 1, seq: int = 1) -> bytes:
    body = struct.pack("!BBHHH", icmp_type, 0, 0, ident, seq) + b"ping"
    return body[:2] + struct.pack("!H", inet_checksum(body)) + body[4:]


def l4(proto: int, sport: int, dport: int, v6: bool) -> tuple[int, bytes]:
    """(protocol number, header) for "tcp", "udp" or "icmp" as IPv4 or IPv6 carries it."""
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
