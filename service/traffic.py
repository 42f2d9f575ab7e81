"""Traffic for a device daemon: a synthetic mix, or the frames of a pcap file, at a rate.

Synthetic traffic is a steady, reproducible mix (seeded): IPv4 and IPv6, TCP, UDP and ICMP,
from a pool of sources (10.0.0.0/22 and 2001:db8::/118 subsets) to a few destinations, so map
lookups keyed on the source see many keys. A pcap file is replayed in a loop.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .errors import UsageError
from .frames import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, frame
from .pcap import read_pcap

DEFAULT_RATE = 200.0  # frames per second
MAX_BURST = 2000  # frames injected in one tick at most (a late tick does not flood)
PROTOCOLS = (IPPROTO_TCP,) * 6 + (IPPROTO_UDP,) * 3 + (IPPROTO_ICMP,)
V4_DESTINATIONS = ("10.1.0.1", "10.1.0.2", "192.0.2.10")
V6_DESTINATIONS = ("2001:db8:1::1", "2001:db8:1::2")


def v4_sources(count: int = 64) -> list[str]:
    return [f"10.0.{n // 16}.{n % 16 + 1}" for n in range(count)]


def v6_sources(count: int = 16) -> list[str]:
    return [f"2001:db8::{n // 16}:{n % 16 + 1}" for n in range(count)]


def synthetic_frames(seed: int = 1, v6_share: float = 0.25) -> Iterator[bytes]:
    """An endless, reproducible stream of frames."""
    rng = random.Random(seed)
    v4, v6 = v4_sources(), v6_sources()
    while True:
        proto = rng.choice(PROTOCOLS)
        sport, dport = rng.randrange(1024, 65536), rng.choice((22, 53, 80, 443, 8080))
        if rng.random() < v6_share:
            yield frame(rng.choice(v6), rng.choice(V6_DESTINATIONS), proto, sport, dport)
        else:
            yield frame(rng.choice(v4), rng.choice(V4_DESTINATIONS), proto, sport, dport)


def replay(frames: Sequence[bytes]) -> Iterator[bytes]:
    while True:
        yield from frames


@dataclass(slots=True)
class Traffic:
    """Frames due at a steady ``rate``: ``due(now)`` says how many to send now."""

    kind: str
    source: Iterator[bytes]
    rate: float = DEFAULT_RATE
    sent: int = 0
    _last: float | None = None
    _credit: float = 0.0

    def due(self, now: float) -> int:
        if self._last is None:
            self._last = now
            return 0
        self._credit = min(self._credit + (now - self._last) * self.rate, MAX_BURST)
        self._last = now
        count = int(self._credit)
        self._credit -= count
        return count

    def take(self, count: int) -> list[bytes]:
        self.sent += count
        return [next(self.source) for _ in range(count)]


def parse_traffic(spec: str | None, rate: float = DEFAULT_RATE, seed: int = 1) -> Traffic | None:
    """``synthetic`` or ``pcap:FILE`` (None for no traffic)."""
    if spec is None or spec == "none":
        return None
    if rate <= 0:
        raise UsageError(f"the traffic rate must be positive, not {rate}.")
    if spec == "synthetic":
        return Traffic("synthetic", synthetic_frames(seed), rate)
    if spec.startswith("pcap:"):
        frames = read_pcap(spec[5:])
        if not frames:
            raise UsageError(f"{spec[5:]} holds no frames to replay.")
        return Traffic(spec, replay(frames), rate)
    raise UsageError(f"unknown traffic {spec!r}: use 'synthetic' or 'pcap:FILE'.")
