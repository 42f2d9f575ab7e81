"""save --sample and restore --prove through real daemons."""

from __future__ import annotations

import json
import socket

from service.client import DeviceClient
from service.frames import frame
from service.pcap import encode_pcap

from .conftest import FIXTURES, cli

BLOCKED = "10.0.0.66"


def source(daemons):
    """A full-profile daemon sampling what it receives, running the v4 firewall."""
    a = daemons("a", "full", "--sample-ring", "16")
    assert cli("load", str(FIXTURES / "xdp_firewall_v4.o"), "--device", str(a.path),
               "--attach").returncode == 0
    with DeviceClient(str(a.path)) as client:
        client.call("map.update", map="blocked_v4", key=socket.inet_aton(BLOCKED),
                    value=bytes(8))
        client.call("inject", frames=[frame("10.0.0.1", "10.0.0.2", 6),
                                      frame(BLOCKED, "10.0.0.2", 17)] * 3)
    return a


def test_a_sampled_snapshot_restores_onto_a_smaller_device_with_proof(daemons, tmp_path):
    a = source(daemons)
    b = daemons("b", "smartnic")
    snap = tmp_path / "a.snap"
    assert cli("save", "--device", str(a.path), "-o", str(snap), "--sample", "6").returncode == 0
    shown = json.loads(cli("inspect", str(snap), "--json").stdout)
    assert shown["samples"]["frames"] == 6
    done = cli("restore", str(snap), "--device", str(b.path), "--prove", "--json")
    assert done.returncode == 0, done.stderr
    proof = json.loads(done.stdout)["proof"]
    assert proof["ok"] and proof["rewritten"] and proof["frames"] == 6
    assert proof["generated"] > 0 and proof["branches_covered"] > 0


def test_without_a_sample_the_proof_says_what_is_missing(daemons, tmp_path):
    a = source(daemons)
    b = daemons("b", "smartnic")
    snap = tmp_path / "a.snap"
    assert cli("save", "--device", str(a.path), "-o", str(snap)).returncode == 0
    done = cli("restore", str(snap), "--device", str(b.path), "--prove")
    assert done.returncode == 1
    assert "no frames to prove with: save with --sample N" in done.stderr
    assert "Traceback" not in done.stderr
    with DeviceClient(str(b.path)) as client:
        assert client.call("status")["programs"] == []  # nothing was restored
    frames = tmp_path / "frames.pcap"
    frames.write_bytes(encode_pcap([frame(BLOCKED, "10.0.0.2", 17)]))
    done = cli("restore", str(snap), "--device", str(b.path), "--prove-frames", str(frames))
    assert done.returncode == 0, done.stderr
    assert "proof: " in done.stdout and "branches covered" in done.stdout
    table = " ".join(done.stdout.split())
    assert "│ identical: " in table and "generated)," in table  # the plan table's column
