"""The operator's view of the device memory budget and of abandoned transfers: a small file
declaring a huge map is refused (exit 1, both numbers named) and changes nothing; uploads of
clients that went away do not hold the daemon's transfer slots."""

from __future__ import annotations

import json
import struct

from migrate import store
from migrate.entries import MapEntries
from migrate.snapshot import MapState, Snapshot
from offload.caps import load_profile
from offload.maps.memory import map_memory
from offload.maps.spec import MapSpec
from offload.uapi import MapType
from service.client import DeviceClient

from .conftest import cli


def test_a_snapshot_declaring_more_than_the_memory_limit_is_refused(daemons, tmp_path):
    daemon = daemons("M", "smartnic", "--memory-limit", "64M")
    spec = MapSpec("huge", MapType.ARRAY, 4, 4096, 65536)  # 256 MiB as created, one entry held
    entries = MapEntries.from_pairs(4, 4096, [(struct.pack("<I", 1), bytes(4096))])
    path = tmp_path / "huge.snap"
    store.save(path, Snapshot("src", load_profile("smartnic"), 0, (),
                              (MapState(spec, entries),)))
    assert path.stat().st_size < 16 << 10
    done = cli("restore", str(path), "--device", str(daemon.path), "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["error"] == "ENOMEM"
    assert f"{map_memory(spec):,} bytes" in report["message"]
    assert f"{64 << 20:,} bytes" in report["message"]
    status = json.loads(cli("status", "--device", str(daemon.path), "--json").stdout)
    assert status[0]["maps"] == []


def test_abandoned_uploads_end_with_their_connection(daemons):
    daemon = daemons("U")
    for _ in range(12):  # more than the 8 transfers a daemon keeps open at once
        with DeviceClient(str(daemon.path)) as client:
            begin = client.call("restore.begin", size=1 << 20)
            client.call("restore.write", transfer=begin["transfer"], data=b"x" * 1000)
    with DeviceClient(str(daemon.path)) as client:
        assert client.call("restore.begin", size=10)["expected"] == 10
        assert client.call("status")["maps"] == []
