"""Frames for device tests: Ethernet + IPv4/IPv6 with TCP/UDP/ICMP, built field by field."""

from __future__ import annotations

import struct


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ttl: int = 64) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, ttl, proto, 0,
                         bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ether(payload: bytes, ethertype: int = 0x0800, src: bytes = b"\x02\x00\x00\x00\x00\x01",
          dst: bytes = b"\x02\x00\x00\x00\x00\x02") -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def tcp(sport: int, dport: int, flags: int = 0x10, data: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + data


def udp(sport: int, dport: int, data: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def icmp_echo() -> bytes:
    return struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"


def v4_frame(src: str, dst: str, l4: bytes, proto: int = 6, **kw) -> bytes:
    return ether(ipv4(src, dst, proto, l4, **kw))
