"""The status view rendered into a recorded console, from a device's real status."""

from __future__ import annotations

import io
import ipaddress

from rich.console import Console

from cli.status_view import status_json, status_view
from service.device_service import DeviceService
from service.methods import call
from service.traffic import synthetic_frames

from .conftest import FIXTURES


def render(renderable, width=100):
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def firewall_device():
    clock = Clock()
    service = DeviceService("A", "full", seed=7, clock=clock)
    call(service, "load", {"object": (FIXTURES / "xdp_firewall.o").read_bytes(),
                           "name": "xdp_firewall", "attach": True})
    call(service, "map.update", {"map": "blocked_v4",
                                 "key": ipaddress.IPv4Address("10.0.0.3").packed,
                                 "value": bytes(8)})
    frames = [f for f, _ in zip(synthetic_frames(seed=2), range(400))]
    service.tick(clock.now)
    actions = call(service, "inject", {"frames": frames[:200]})["actions"]
    clock.now += 1.0
    service.tick(clock.now)
    actions += call(service, "inject", {"frames": frames[200:]})["actions"]
    clock.now += 1.0
    service.tick(clock.now)
    return service, actions


def test_view_shows_features_counters_rates_and_fill():
    service, actions = firewall_device()
    status = call(service, "status")
    text = render(status_view([("a.sock", status, None)]))
    lines = text.splitlines()
    assert "device A" in lines[0]
    assert "A  profile full (ISA v4)  backend builtin/fast  up 2s" in text
    assert "features VIRTIO_NET_F_MAC VIRTIO_NET_F_CTRL_VQ" in text
    row = next(line for line in lines if "xdp_firewall" in line and "│" in line)
    drops, passes = actions.count("drop"), actions.count("pass")
    assert drops and passes
    cells = row.split()
    assert f"{passes:,}" in cells and f"{drops:,}" in cells
    rates = lines[lines.index(row) + 1]
    assert "XDP," in rates and f"{passes / 2:,.0f}/s" in rates  # 400 frames over 2 s
    blocked = next(line for line in lines if "blocked_v4" in line)
    assert blocked.split()[3:7] == ["HASH", "1", "1,024", "0.1%"]
    verdicts = next(line for line in lines if "verdicts" in line)
    assert "100.0%" in verdicts and "━" in verdicts


def test_unreachable_devices_and_migration_progress():
    service, _ = firewall_device()
    status = call(service, "status")
    status["migration"] = {"state": "pre-copy", "round": 2, "done": 512, "total": 2048,
                           "unit": "entries"}
    text = render(status_view([("a.sock", status, None),
                               ("b.sock", None, "no device daemon answers at b.sock")]))
    assert "migration pre-copy" in text and "round 2 · 512/2,048 entries" in text
    assert "device at b.sock" in text and "no device daemon answers" in text


def test_status_json_has_the_promised_fields():
    service, actions = firewall_device()
    data = status_json(call(service, "status"))
    assert set(data) >= {"name", "profile", "backend", "features", "programs", "maps"}
    (prog,) = data["programs"]
    assert set(prog) >= {"id", "name", "type", "attach", "counters"}
    assert prog["counters"]["drop"] == actions.count("drop")
    assert {m["name"] for m in data["maps"]} == {"blocked_v4", "blocked_v6", "verdicts"}
    assert all(set(m) == {"id", "name", "type", "entries", "max_entries"} for m in data["maps"])
