"""Live migration between daemons while traffic runs: through the destination's control
socket and through its migration listener; a refused migration leaves the source running."""

from __future__ import annotations

import json
import socket

from .conftest import FIXTURES, cli
from .test_daemon import FRAMES, block, call, status


def free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def test_live_migration_through_the_control_socket(daemons):
    a = daemons("A", "full", "--traffic", "synthetic", "--rate", "1000")
    b = daemons("B", "smartnic")
    assert cli("load", str(FIXTURES / "xdp_firewall_v4.o"), "--device", str(a.path),
               "--attach").returncode == 0
    block(a.path, "10.0.0.3", "10.0.1.7")
    expected = call(a.path, "inject", frames=FRAMES)
    result = cli("migrate", "--from", str(a.path), "--to", str(b.path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "completed" and report["report"]["outcome"] == "completed"
    assert report["report"]["downtime"] is not None
    moved = status(b.path)
    assert moved["programs"][0]["name"] == "xdp_firewall"
    assert moved["programs"][0]["attach"] == "xdp:hw on B"
    assert moved["migration"]["state"] == "completed"
    assert moved["migration"]["role"] == "destination"
    assert call(b.path, "inject", frames=FRAMES) == expected
    assert status(a.path)["migration"]["state"] == "completed"
    text = cli("status", "--device", str(a.path), "--once")
    assert "migration completed -> " in text.stdout


def test_live_migration_over_tcp_and_refusals(daemons):
    port = free_port()
    a = daemons("A", "full", "--traffic", "synthetic", "--rate", "500")
    b = daemons("B", "legacy-nic", "--listen", f"tcp:127.0.0.1:{port}")
    assert cli("load", str(FIXTURES / "xdp_firewall_v4.o"), "--device", str(a.path),
               "--attach").returncode == 0
    refused = cli("migrate", "--from", str(a.path), "--to", f"tcp:127.0.0.1:{port}")
    assert refused.returncode == 1, refused.stdout
    assert "refused" in refused.stderr or "failed" in refused.stdout
    assert status(b.path)["maps"] == []  # the destination rolled back
    source = status(a.path)
    assert source["programs"][0]["attach"] == "xdp:hw on A"  # the source runs on
    assert call(a.path, "inject", frames=FRAMES[:10])["actions"]

    c = daemons("C", "full", "--listen", f"tcp:127.0.0.1:{free_port()}")
    port_c = next(arg for arg in c.process.args if arg.startswith("tcp:"))
    done = cli("migrate", "--from", str(a.path), "--to", port_c)
    assert done.returncode == 0, done.stderr
    assert "completed" in done.stdout and "downtime" in done.stdout
    assert status(c.path)["programs"][0]["name"] == "xdp_firewall"
    nothing = cli("migrate", "--from", str(b.path), "--to", str(c.path))
    assert nothing.returncode == 1 and "no program" in nothing.stderr
