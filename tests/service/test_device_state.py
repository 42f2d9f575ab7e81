"""A device's persistent state: the generation only grows across restarts, the rollback record
survives them, one daemon per directory, a damaged file stops the daemon rather than being
replaced, and a restore whose record cannot be written is undone."""

from __future__ import annotations

import json
import os

import pytest

from migrate.codec import encode
from migrate.freshness import FreshnessUnknown, RollbackRefused, SourceStamp
from service.device_service import DeviceService, PlanRefused
from service.device_state import DeviceState, StateError, default_state_dir
from tests.migrate.samples import fixture_snapshot

OTHER = "c0" * 16


def test_generation_grows_across_restarts(tmp_path):
    state = DeviceState.open(tmp_path / "s", "A")
    first, second = state.next_stamp(), state.next_stamp()
    assert (first.generation, second.generation) == (1, 2) and first.device_id == state.device_id
    assert os.stat(tmp_path / "s").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "s" / "state.json").st_mode & 0o777 == 0o600
    with pytest.raises(StateError, match="another daemon uses"):
        DeviceState.open(tmp_path / "s", "A")
    state.close()
    again = DeviceState.open(tmp_path / "s", "renamed")
    assert again.device_id == first.device_id and again.next_stamp().generation == 3
    assert json.loads((tmp_path / "s" / "state.json").read_text())["name"] == "renamed"
    again.close()


def test_a_failed_write_hands_out_no_generation(tmp_path, monkeypatch):
    state = DeviceState.open(tmp_path, "A")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("service.device_state.write_atomic", full)
    with pytest.raises(StateError, match="No space left"):
        state.next_stamp()
    assert state.generation == 0
    state.close()


@pytest.mark.parametrize("content", [b"{", b"[]", b'{"version": 1}',
                                     b'{"version": 1, "device_id": "x", "name": "A", '
                                     b'"generation": 1, "restored": {}}',
                                     b'{"version": 1, "device_id": "' + b"ab" * 16 + b'", '
                                     b'"name": "A", "generation": -1, "restored": {}}'])
def test_a_damaged_state_file_is_refused_and_kept(tmp_path, content):
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(StateError, match="damaged"):
        DeviceState.open(tmp_path, "A")
    assert (tmp_path / "state.json").read_bytes() == content
    DeviceState.open(tmp_path / "fresh", "A").close()  # the lock was released: no leak


def test_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir("A") == tmp_path / "offload-migrate" / "devices" / "A"
    for name in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(StateError, match="--state-dir"):
            default_state_dir(name)


def service(path) -> DeviceService:
    return DeviceService("B", "full", seed=7, state=DeviceState.open(path, "B"))


def test_rollback_record_survives_a_restart_and_only_signed_stamps_enter_it(tmp_path):
    payload = encode(fixture_snapshot("xdp_firewall", cpus=1))
    device = fixture_snapshot("xdp_firewall", cpus=1).device
    new, old = SourceStamp(OTHER, device, 5), SourceStamp(OTHER, device, 4)
    b = service(tmp_path)
    b.restore_payload(payload, source=SourceStamp(OTHER, device, 9), dry_run=True,
                      authenticated=True, no_rollback=True)  # a dry run records nothing
    b.restore_payload(payload, source=SourceStamp(OTHER, device, 99))  # unsigned: not recorded
    assert b.state.last_restored(OTHER) is None
    b.state.close()

    b = service(tmp_path)
    b.restore_payload(payload, source=new, authenticated=True, no_rollback=True)
    assert b.state.last_restored(OTHER) == 5
    b.state.close()

    b = service(tmp_path)  # a restarted, empty target remembers
    with pytest.raises(RollbackRefused, match="last restored generation 5 .* generation 4"):
        b.restore_payload(payload, source=old, authenticated=True, no_rollback=True)
    with pytest.raises(FreshnessUnknown):
        b.restore_payload(payload, no_rollback=True)
    assert not b.device.objects.programs and not b.device.objects.maps
    b.restore_payload(payload, source=old, authenticated=True)  # no guard asked: allowed
    assert b.state.last_restored(OTHER) == 5  # and the record never goes back
    b.state.close()


def test_a_restore_whose_record_cannot_be_written_is_undone(tmp_path, monkeypatch):
    b = service(tmp_path)
    snapshot = fixture_snapshot("xdp_firewall", cpus=1)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("service.device_state.write_atomic", full)
    with pytest.raises(PlanRefused, match="No space left"):
        b.restore_payload(encode(snapshot), source=SourceStamp(OTHER, snapshot.device, 1),
                          authenticated=True)
    assert not b.device.objects.maps and b.device.attached is None
    assert all(p.unloaded for p in b.device.objects.programs.values())
    assert b.state.last_restored(OTHER) is None
    b.state.close()
