"""``save`` and ``restore`` hold a chunk of the payload, not the payload: the client's peak
allocations for a large map stay under a constant times the chunk size (the daemon here is a
stand-in serving a payload from a file, so only the client's allocations are measured)."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cli import cmd_snapshot
from cli.main import main
from migrate.codec import write_snapshot
from migrate.entries import EntryChunk, MapEntries
from migrate.keys import generate_signing_key, generate_symmetric_key
from migrate.snapshot import MapState, Snapshot
from offload.caps.profiles import load_profile
from offload.maps.spec import MapSpec
from offload.uapi import MapType

CHUNK = 1 << 16
ENTRIES = 300_000  # 8-byte keys, 16-byte values: a payload of about 7 MiB, ~110 chunks
DEVICE_ID = "ab" * 16


class StandInDaemon:
    """Answers the transfer methods as a daemon does; keeps only a digest of what it gets."""

    def __init__(self, payload: Path) -> None:
        self.payload = payload
        self.size = payload.stat().st_size
        self.received = hashlib.sha256()
        self.count = 0

    def __call__(self, path: str) -> StandInDaemon:
        return self

    def __enter__(self) -> StandInDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def call(self, method: str, **params: Any) -> Any:
        if method == "checkpoint.begin":
            return {"transfer": 1, "size": self.size, "programs": 0, "maps": 1,
                    "entries": ENTRIES, "source": {"device_id": DEVICE_ID, "name": "big",
                                                   "generation": 4}}
        if method == "checkpoint.read":
            assert params["size"] <= CHUNK
            with open(self.payload, "rb") as f:
                f.seek(params["offset"])
                return {"data": f.read(params["size"])}
        if method == "restore.begin":
            return {"transfer": 2, "expected": params["size"]}
        if method == "restore.write":
            assert len(params["data"]) <= CHUNK
            self.received.update(params["data"])
            self.count += len(params["data"])
            return {"received": self.count}
        assert method == "restore.commit"
        return {"plan": {}, "dry_run": True, "maps": {}, "programs": {}, "attached": None,
                "fallback": [], "entries": ENTRIES, "source": "big"}


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> Path:
    keys = b"".join(i.to_bytes(8, "little") for i in range(ENTRIES))
    values = bytes(16 * ENTRIES)
    spec = MapSpec("big", MapType.HASH, 8, 16, ENTRIES)
    snap = Snapshot("big", load_profile("full"), 0, created_ns=1,
                    maps=(MapState(spec, MapEntries(8, 16, 1, (EntryChunk(ENTRIES, keys,
                                                                          values),))),))
    path = tmp_path_factory.mktemp("big") / "payload"
    with open(path, "wb") as f:
        write_snapshot(f, snap)
    return path


def peak_of(*args: str) -> tuple[int, int]:
    console = Console(file=io.StringIO(), width=120)
    tracemalloc.start()
    try:
        code = main(list(args), console, console)
        return code, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_save_and_restore_hold_a_chunk_not_the_payload(payload, tmp_path, monkeypatch,
                                                       capsys):
    daemon = StandInDaemon(payload)
    monkeypatch.setattr(cmd_snapshot, "DeviceClient", daemon)
    monkeypatch.setattr(cmd_snapshot, "CHUNK", CHUNK)
    generate_signing_key(tmp_path / "sign")
    generate_symmetric_key(tmp_path / "enc")
    snap = str(tmp_path / "big.snap")
    save = ("save", "--device", "d", "-o", snap, "--sign", str(tmp_path / "sign"),
            "--encrypt", str(tmp_path / "enc"))
    peak_of(*save)  # the first run imports what the commands use: not the payload's memory
    code, save_peak = peak_of("save", "--device", "d", "-o", snap,
                              "--sign", str(tmp_path / "sign"),
                              "--encrypt", str(tmp_path / "enc"))
    assert code == 0
    code, restore_peak = peak_of("restore", snap, "--device", "d", "--dry-run", "--json",
                                 "--trust", str(tmp_path / "sign.pub"),
                                 "--decrypt", str(tmp_path / "enc"))
    assert code == 0, capsys.readouterr()
    assert daemon.received.digest() == hashlib.sha256(payload.read_bytes()).digest()
    size = payload.stat().st_size
    assert size > 100 * CHUNK
    # The chunk in hand, its encoding in a request, the decrypted copy, the header record:
    # a few chunks whatever the payload (the payload itself is ~110 chunks).
    assert save_peak < 12 * CHUNK, save_peak  # about 7 chunks measured
    assert restore_peak < 12 * CHUNK, restore_peak
