from __future__ import annotations

import os
import stat

import pytest

from migrate import store
from migrate.entries import EntriesError, EntryChunk, MapEntries
from migrate.errors import SnapshotError
from migrate.keys import generate_signing_key, generate_symmetric_key, load_public_key
from migrate.seal import Seal, Trust
from migrate.snapshot import MapState, Snapshot
from offload.maps.spec import MapSpec
from offload.uapi import MapType

from .samples import fixture_snapshot


def test_save_and_load(tmp_path) -> None:
    snap = fixture_snapshot("xdp_lb_v4", "xdp_redirect")
    signer = generate_signing_key(tmp_path / "sign")
    enc = generate_symmetric_key(tmp_path / "enc")
    path = tmp_path / "state.snap"
    info = store.save(path, snap, Seal(signing_key=signer, encryption_key=enc))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    trust = Trust((load_public_key(tmp_path / "sign.pub"),), decryption_key=enc,
                  require_signature=True)
    assert store.verify(path, trust).sha256 == info.sha256
    loaded, _ = store.load(path, trust)
    assert loaded == snap


def test_failed_save_leaves_the_old_file(tmp_path) -> None:
    path = tmp_path / "state.snap"
    store.save(path, fixture_snapshot("xdp_pass"))
    before = path.read_bytes()

    def failing():
        yield EntryChunk(1, b"\0\0\0\0", bytes(8))
        yield EntryChunk(1, b"\0\0", bytes(8))  # wrong key length: the device misbehaved

    spec = MapSpec("m", MapType.ARRAY, 4, 8, 4)
    bad = Snapshot("d", fixture_snapshot("xdp_pass").capabilities, 0,
                   maps=(MapState(spec, MapEntries.streamed(4, 8, failing())),))
    with pytest.raises(EntriesError):
        store.save(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.snap"]  # no temporary left


def test_missing_file(tmp_path) -> None:
    with pytest.raises(SnapshotError, match="cannot open snapshot"):
        store.load(tmp_path / "absent")
