"""The live status view rendered into an 80x24 console: it fits, and its sparklines show the
rate series the counters give."""

from __future__ import annotations

import io

from rich.console import Console

from cli.cmd_device import next_device
from cli.sparkline import sparkline
from cli.status_dashboard import dashboard
from cli.status_history import History
from service.methods import call

from .test_status_view import firewall_device


def screen(renderable, width=80, height=24) -> list[str]:
    console = Console(record=True, width=width, height=height, file=io.StringIO(),
                      color_system=None)
    console.print(renderable)
    return console.export_text().rstrip("\n").split("\n")


def fits(lines: list[str], width=80, height=24) -> None:
    assert len(lines) <= height, "\n".join(lines)
    assert all(len(row) <= width for row in lines), "\n".join(lines)


def status(name, uptime, counters, programs=1, maps=1, migration=None, fill=0):
    return {
        "name": name, "profile": "full", "backend": "builtin", "engine": "fast",
        "isa_version": 4, "uptime": uptime, "features": ["VIRTIO_NET_F_CTRL_VQ",
                                                          "VIRTIO_NET_F_BPF_OFFLOAD"],
        "programs": [{"id": 10 + n, "name": f"prog{n}", "type": "XDP",
                      "attach": "xdp:hw on A" if n == 0 else None,
                      "counters": dict(counters)} for n in range(programs)],
        "maps": [{"id": 100 + n, "name": f"map{n}", "type": "HASH", "entries": fill,
                  "max_entries": 100} for n in range(maps)],
        "traffic": None, "migration": migration}


def test_sparkline_scales_to_the_largest_value_and_pads_short_series():
    assert sparkline([0, 10, 20, 30, 40, 50, 60, 70], 8) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5], 4) == "  ██"
    assert sparkline([0, 0, 0], 3) == "▁▁▁"
    assert sparkline([1, 2, 3, 4, 8], 3) == "▄▅█"  # the newest values only
    assert sparkline([0.25, 0.5, 1.0], 3, top=1.0) == "▃▅█"


def test_rates_over_time_become_the_right_sparklines():
    history = History()
    passed = dropped = 0
    for second in range(9):  # pass rises by 10/s each second, drop holds at 5/s
        history.record("a.sock", status("A", float(second), {"pass": passed, "drop": dropped,
                                                             "tx": 0, "redirect": 0}))
        passed += 10 * second
        dropped += 5
    entries = [("a.sock", status("A", 8.0, {"pass": passed, "drop": dropped}), None)]
    lines = screen(dashboard(entries, history, 0))
    fits(lines)
    row = {r.split()[0]: r for r in lines if r.startswith("  ")}
    assert "▁▂▃▄▅▆▇█" in row["pass"] and row["pass"].split()[-2:] == ["70/s", "360"]
    assert "▁" * 8 in row["tx"] and "████████" in row["drop"]
    assert row["drop"].split()[-2:] == ["5/s", "45"]
    assert "aborted" not in row  # shown once a program aborted
    assert "prog0 #10 XDP  xdp:hw on A" in lines[3]
    assert "BPF_OFFLOAD" in lines[2] and lines[0].startswith(" 1 A ")


def test_a_counter_going_back_starts_the_series_over():
    history = History()
    for uptime, count in ((1.0, 0), (2.0, 100), (3.0, 300), (4.0, 10)):
        history.record("a", status("A", uptime, {"pass": count}))
    assert list(history.devices["a"].rates[10]["pass"]) == []
    history.record("a", status("A", 5.0, {"pass": 30}))
    assert list(history.devices["a"].rates[10]["pass"]) == [20.0]


def test_two_devices_one_at_a_time_with_the_migration_panel():
    history = History()
    migration = {"role": "source", "peer": "/tmp/b.sock", "state": "running",
                 "phase": "precopy", "round": 4, "elapsed": 1.5, "done": 3 << 20,
                 "unit": "bytes", "estimate": 0.012,
                 "rounds": [[0, 2048, 1 << 20], [1, 400, 1], [2, 200, 1], [3, 100, 1],
                            [4, 50, 1]]}
    for uptime, fill in ((1.0, 10), (2.0, 50), (3.0, 100)):
        history.record("a", status("A", uptime, {"pass": 0}, programs=3, maps=9, fill=fill))
        history.record("b", status("B", uptime, {"pass": 0}, migration=migration))
    entries = [("a", status("A", 3.0, {"pass": 0}, programs=3, maps=9, fill=100), None),
               ("b", status("B", 3.0, {"pass": 0}, migration=migration), None),
               ("c", None, "no device daemon answers at c")]
    first = screen(dashboard(entries, history, 0))
    fits(first)
    assert "more map(s)" in "\n".join(first) or "more program(s)" in "\n".join(first)
    assert any("map0" in row and "▁▅█" in row and "100.0%" in row for row in first)
    selected = next_device("\t", 0, len(entries))
    second = screen(dashboard(entries, history, selected))
    fits(second)
    text = "\n".join(second)
    assert "migration running -> /tmp/b.sock  precopy  round 4" in text
    assert "expected downtime 12.0 ms  moved 3.0M in 1.5s" in text
    dirty = next(row for row in second if "dirty/round" in row)
    assert "█▅▃▂ 400 200 100 50" in dirty and "full copy 2,048" in dirty
    assert next_device("3", selected, 3) == 2 and next_device("\x1b[Z", 0, 3) == 2
    assert "no device daemon answers" in "\n".join(screen(dashboard(entries, history, 2)))


def test_a_real_device_status_fits_80x24():
    service, actions = firewall_device()
    history = History()
    history.record("a", call(service, "status"))
    service.clock.now += 1.0
    call(service, "inject", {"frames": [b"\x00" * 60] * 3})
    latest = call(service, "status")
    history.record("a", latest)
    lines = screen(dashboard([("a", latest, None)], history, 0))
    fits(lines)
    assert any("blocked_v4" in row and "HASH" in row for row in lines)
    assert not any(row.startswith("ports") for row in lines)  # a device without ports
    assert any(row.split()[:1] == ["pass"] and "3/s" in row for row in lines)


def test_ports_show_on_one_row_with_their_link_and_frames():
    history = History()
    ports = [{"ifindex": 1, "name": "b", "connected": True,
              "counters": {"rx_to_guest": 1200, "tx_from_guest": 7}},
             {"ifindex": 2, "name": "c", "connected": False, "counters": {}}]
    entry = status("A", 1.0, {"pass": 0}) | {"interfaces": ports}
    history.record("a", entry)
    lines = screen(dashboard([("a", entry, None)], history, 0))
    fits(lines)
    row = next(row for row in lines if row.startswith("ports"))
    assert "1:b up rx 1,200 tx 7" in row and "2:c down rx 0 tx 0" in row
