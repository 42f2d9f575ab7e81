"""``offload-migrate events`` and the status of event maps, against a device daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from cli.status_view import status_view
from service import methods
from service.client import DeviceClient
from service.device_service import DeviceService
from service.frames import ether, ipv4, udp

from .conftest import FIXTURES, ROOT
from .conftest import cli_here as cli  # client commands in this process

RING = str(FIXTURES / "libbpf" / "xdp_ringbuf_log.o")
PERF = str(FIXTURES / "libbpf" / "xdp_perf_sample.o")
FRAME = ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 53, b"query")))


def call(path, method, **params):
    with DeviceClient(str(path)) as client:
        return client.call(method, **params)


def test_events_text_json_and_status(daemons):
    a = daemons("A", "full")
    assert cli("load", PERF, "--device", str(a.path), "--program", "xdp_perf_sample",
               "--attach").returncode == 0
    assert call(a.path, "inject", frames=[FRAME] * 2)["actions"] == ["pass", "pass"]
    state = json.loads(cli("status", "--device", str(a.path), "--json").stdout)[0]
    samples = next(m for m in state["maps"] if m["name"] == "samples")
    assert samples["type"] == "PERF_EVENT_ARRAY" and samples["events"]["pending"] == 2
    text = cli("events", "--device", str(a.path))
    assert text.returncode == 0, text.stderr
    lines = [line for line in text.stdout.splitlines() if "samples  perf" in line]
    assert len(lines) == 2 and "perf cpu 0" in lines[0] and "#0" in lines[0]
    assert "55 B" in lines[0]  # the 8-byte meta and the 47-byte frame
    assert "samples: 0 waiting, 0 lost" in text.stdout
    again = cli("events", "--device", str(a.path), "--json")
    assert json.loads(again.stdout)["events"] == []  # taken by the first read
    call(a.path, "inject", frames=[FRAME])
    answer = json.loads(cli("events", "--device", str(a.path), "--json").stdout)
    (event,) = answer["events"]
    assert (event["map"], event["kind"], event["seq"], event["size"]) == ("samples", "perf",
                                                                           2, 55)
    assert bytes.fromhex(event["data"])[8:] == FRAME


def test_events_follow_prints_records_as_they_come(daemons):
    a = daemons("A", "full")
    assert cli("load", RING, "--device", str(a.path), "--program", "xdp_ringbuf_log",
               "--attach").returncode == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    follow = subprocess.Popen([sys.executable, "-m", "cli.main", "events", "--device",
                               str(a.path), "--follow", "--json", "--interval", "0.05"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        call(a.path, "inject", frames=[FRAME] * 3)
        records = [json.loads(follow.stdout.readline()) for _ in range(3)]
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=10)
    assert [(r["map"], r["kind"], r["seq"], r["size"]) for r in records] == \
        [("flow_log", "ringbuf", n, 16) for n in range(3)]
    assert follow.returncode == 0


def test_the_status_view_shows_streams_and_the_service_bounds_reads():
    import io

    import pytest
    from rich.console import Console

    from service.errors import InvalidRequest

    service = DeviceService("A", "full", seed=7)
    methods.call(service, "load", {"object": (FIXTURES / "libbpf" / "xdp_ringbuf_log.o").read_bytes(),
                           "name": "xdp_ringbuf_log", "program": "xdp_ringbuf_log",
                           "attach": True})
    methods.call(service, "inject", {"frames": [FRAME] * 3})
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(status_view([("a.sock", methods.call(service, "status"), None)]))
    row = next(line for line in console.export_text().splitlines() if "flow_log" in line)
    assert "RINGBUF" in row and "3 events" in row and "4,096 B" in row
    first = methods.call(service, "events.read", {"max": 2})
    assert [e["seq"] for e in first["events"]] == [0, 1] and first["backlog"] == 1
    assert first["streams"] == [{"map": "flow_log", "pending": 0, "lost": 0, "bytes": 0,
                                 "size": 4096}]
    assert [e["seq"] for e in methods.call(service, "events.read", {})["events"]] == [2]
    with pytest.raises(InvalidRequest, match="'max' of 'events.read' must be 1 to 10000"):
        methods.call(service, "events.read", {"max": 0})
