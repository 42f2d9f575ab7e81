"""Live migration with proof through the device service: the source's sample travels in the
full copy, the destination proves before the rounds and at the cut, and a difference refuses
the migration with both sides as they were."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from migrate import compat
from service.api import InjectParams, MigrateStartParams
from service.device_service import DeviceService
from service.errors import Refused
from service.migration import FINISHED
from tests.migrate.faults import wrong_lowering

from .firewall_source import BLOCKED, FRAMES, firewall_source


def migrate(src: DeviceService, dst: DeviceService, tmp_path: Path, **params) -> dict:
    """``migrate.start`` on the source to a listener that hands the stream to the
    destination's service; the source's final picture."""
    path = str(tmp_path / "dst.migrate")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def accept() -> None:
        conn, _ = listener.accept()
        dst.accept_migration(conn, "test")

    threading.Thread(target=accept, daemon=True).start()
    try:
        src.migrate_start(MigrateStartParams(to=f"unix:{path}", **params))
        deadline = time.monotonic() + 30
        while src.job is not None and src.job.state not in FINISHED:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        while dst.job is None or dst.job.state not in FINISHED:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        listener.close()
    assert src.job is not None
    return src.job.picture()


def blocked_value(service: DeviceService) -> bytes | None:
    pair = service.pair
    for handle, live in pair.device.objects.maps.items():
        if live.spec.name == "blocked_v4" and not live.released:
            return dict(pair.driver.map_items(handle)).get(socket.inet_aton(BLOCKED))
    return None


def test_a_migration_onto_a_lowering_profile_is_proven(tmp_path):
    src, dst = firewall_source(), DeviceService("dst", "smartnic")
    picture = migrate(src, dst, tmp_path, prove=True, max_rounds=2)
    assert picture["state"] == "completed", picture.get("reason")
    proof = picture["report"]["proof"]
    assert proof["ok"] and proof["rewritten"] and proof["frames"] == 6
    assert proof["generated"] > 0 and 0 < proof["branches_covered"] <= proof["branches_total"]
    final = proof["final"]
    assert final["frames"] == 6 and final["generated"] == 0 and final["inside_downtime"]
    assert final["seconds"] <= picture["report"]["downtime"]
    assert dst.device.attached is not None and not src.device.objects.programs
    assert dst.job is not None and dst.job.report is not None
    assert dst.job.report["proof"]["final"]["frames"] == 6


def test_without_samples_the_start_is_refused_with_enodata(tmp_path):
    src = firewall_source(ring=0)
    with pytest.raises(Refused, match="no sampled frames to prove with") as info:
        src.migrate_start(MigrateStartParams(to=f"unix:{tmp_path / 'nowhere'}", prove=True))
    assert info.value.errno == 61  # ENODATA
    assert src.job is None and src.device.attached is not None


def test_a_destination_sent_no_frames_refuses_and_says_what_is_missing():
    from migrate.live import DestinationRefused, MigrationDestination, MigrationSource

    src, dst = firewall_source(ring=0), DeviceService("dst", "smartnic")
    a, b = socket.socketpair()
    served: dict[str, BaseException] = {}

    def serve() -> None:
        try:
            MigrationDestination(dst.pair, scratch=dst.scratch).serve(b)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            served["error"] = exc

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with pytest.raises(DestinationRefused, match="no frames to prove with: the source sent "
                                                 "no sampled frames") as info:
        MigrationSource(src.device, lock=src.lock, prove=True).run(a)
    thread.join(10)
    assert info.value.code == "proof" and isinstance(served["error"], DestinationRefused)
    assert src.device.attached is not None and not src.device.paused
    assert not dst.device.objects.programs and not dst.device.objects.maps


def test_a_destination_that_cannot_prove_refuses_a_proof_at_hello():
    from migrate.live import DestinationRefused, MigrationDestination, MigrationSource

    src, dst = firewall_source(), DeviceService("dst", "smartnic")
    a, b = socket.socketpair()
    thread = threading.Thread(target=lambda: pytest.raises(
        DestinationRefused, MigrationDestination(dst.pair).serve, b), daemon=True)
    thread.start()
    with pytest.raises(DestinationRefused, match="asks for a proof, which this destination "
                                                 "cannot run"):
        MigrationSource(src.device, lock=src.lock, prove=True, samples=4).run(a)
    thread.join(10)
    assert src.device.attached is not None and not dst.device.objects.programs


def test_a_wrong_rewrite_refuses_the_migration_and_rolls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(compat, "lower_program", wrong_lowering)
    src, dst = firewall_source(), DeviceService("dst", "smartnic")
    before = blocked_value(src)
    picture = migrate(src, dst, tmp_path, prove=True)
    assert picture["state"] == "refused"
    assert "the proof failed on the full copy: frame 1: verdict XDP_DROP" in picture["reason"]
    # the source runs on with its state; the destination is empty
    assert src.device.attached is not None and not src.device.paused
    assert blocked_value(src) == before is not None
    src.inject(InjectParams(frames=FRAMES[1:2]))
    assert src.device.objects.programs[src.device.attached].counters.drop >= 3
    assert not dst.device.objects.programs and not dst.device.objects.maps


def test_a_difference_only_the_final_state_shows_refuses_at_the_cut(tmp_path, monkeypatch):
    """The shadows hold the final state: here the target's shadow misses every delta, and the
    source unblocks an address after the full copy, so only the final proof differs."""
    from migrate.live.proving import Prover

    def apply_to_source_shadow_only(self, delta):
        if self.shadows is not None:
            self.shadows[0].apply(delta)

    monkeypatch.setattr(Prover, "apply", apply_to_source_shadow_only)
    src, dst = firewall_source(), DeviceService("dst", "smartnic")
    before = blocked_value(src)
    cut = threading.Thread(target=unblock_then_cut, args=(src,), daemon=True)
    cut.start()
    picture = migrate(src, dst, tmp_path, prove=True, hold=True)
    cut.join(10)
    assert picture["state"] == "refused", picture
    assert "the proof failed on the final state: frame 1: verdict XDP_PASS on the source, " \
           "XDP_DROP on the target" in picture["reason"]
    assert src.device.attached is not None and not src.device.paused
    assert before is not None and blocked_value(src) is None  # the source's own change stays
    assert not dst.device.objects.programs and not dst.device.objects.maps


def unblock_then_cut(src: DeviceService) -> None:
    """Once the destination restored the full copy: delete the blocked address, then cut."""
    from service.api import MapKeyParams, NoParams

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        job = src.job
        if job is not None and job.source is not None and job.source.phase == "precopy":
            break
        time.sleep(0.01)
    with src.lock:
        src.map_delete(MapKeyParams(map="blocked_v4", key=socket.inet_aton(BLOCKED)))
    src.migrate_cut(NoParams())
