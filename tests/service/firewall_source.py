"""The source device the proof, live-migration and restore tests start from: a full-profile
device service running the v4 firewall, with a blocked address and some traffic."""

from __future__ import annotations

import socket
from pathlib import Path

from service.api import (
    CheckpointBeginParams,
    CheckpointReadParams,
    InjectParams,
    LoadParams,
    MapUpdateParams,
)
from service.device_service import DeviceService
from service.frames import frame

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xdp"
BLOCKED = "10.0.0.66"
FRAMES = [frame("10.0.0.1", "10.0.0.2", 6), frame(BLOCKED, "10.0.0.2", 17),
          frame("fd00::1", "fd00::2", 6)]


def firewall_source(ring: int = 16) -> DeviceService:
    """The firewall with ``BLOCKED`` blocked and ``FRAMES`` twice through it; ``ring``: the
    frames its sample ring keeps (0: no sampling)."""
    service = DeviceService("src", "full")
    if ring:
        service.device.sample(ring)
    service.load(LoadParams(object=(FIXTURES / "xdp_firewall_v4.o").read_bytes(),
                            name="xdp_firewall_v4", attach=True))
    service.map_update(MapUpdateParams(map="blocked_v4", key=socket.inet_aton(BLOCKED),
                                       value=bytes(8)))
    service.inject(InjectParams(frames=FRAMES * 2))
    return service


def source_payload(samples: int, *, ring: int = 16) -> bytes:
    """A checkpoint of :func:`firewall_source` with up to ``samples`` sampled frames."""
    service = firewall_source(ring)
    begin = service.checkpoint_begin(CheckpointBeginParams(samples=samples))
    payload = b""
    while len(payload) < begin.size:
        payload += service.checkpoint_read(
            CheckpointReadParams(transfer=begin.transfer, offset=len(payload))).data
    return payload
