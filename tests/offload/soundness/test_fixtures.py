"""Every XDP fixture program under the soundness oracle, on realistic and truncated frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from offload.caps import load_profile
from offload.loader import load_object
from offload.program import resolve_map_references
from offload.soundness import check_program
from service.frames import ETH_P_IPV6, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ether, frame, ipv6, tcp

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "xdp"
CAPS = load_profile("full")

_TCP = frame("10.0.0.1", "10.0.0.2", IPPROTO_TCP, 40000, 22)
_HOP_BY_HOP = bytes([IPPROTO_TCP, 0]) + bytes(6)  # next header TCP, 8 bytes
FRAMES = (
    _TCP,
    frame("10.0.0.3", "192.168.1.9", IPPROTO_UDP, 53, 5353),
    frame("172.16.0.1", "10.0.0.2", IPPROTO_ICMP),
    frame("2001:db8::1", "2001:db8::2", IPPROTO_TCP, 1234, 443),
    ether(ipv6("2001:db8::1", "2001:db8::2", 0, _HOP_BY_HOP + tcp(1, 80)), ETH_P_IPV6),
    b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28),  # ARP
    *(_TCP[:n] for n in (0, 1, 13, 14, 20, 33, 34, 40, 53)),  # cut inside each header
)


def _programs():
    for path in sorted(FIXTURES.glob("*.o")):
        obj = load_object(path)
        handles = {name: n for n, name in enumerate(obj.maps, start=1)}
        maps = {handles[name]: spec for name, spec in obj.maps.items()}
        for spec in obj.programs.values():
            insns = resolve_map_references(spec.instructions, spec.map_refs, handles,
                                           program=spec.name)
            yield pytest.param(insns, maps, id=f"{path.stem}:{spec.name}")


@pytest.mark.parametrize(("insns", "maps"), list(_programs()))
def test_fixture_programs_stay_inside_their_abstract_states(insns, maps):
    report = check_program(insns, caps=CAPS, maps=maps, frames=FRAMES, rx_queue_index=1)
    assert report.frames == len(FRAMES)
    assert report.steps >= len(FRAMES)
