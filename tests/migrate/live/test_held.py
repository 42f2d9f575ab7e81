"""A held migration (a VM's migration decides the cut): rounds go on until ``hold`` is set,
then the final round; ``cancel`` before the cut rolls the destination back and leaves the
source running."""

from __future__ import annotations

import socket
import threading
import time

from fixtures.snapshots.generate import TRAFFIC, device_for
from migrate.live import MigrationCancelled, MigrationDestination, MigrationSource, SourceAborted
from offload.caps import load_profile
from offload.device import build_device
from service.migration import Migration

from .conftest import Side, Traffic, handle_of, proto_packets

FULL = load_profile("full")


def wait_phase(source: MigrationSource, phase: str) -> None:
    deadline = time.monotonic() + 20
    while source.phase != phase:
        assert time.monotonic() < deadline, f"still {source.phase}"
        time.sleep(0.01)


def test_a_held_migration_cuts_when_told_and_loses_no_update() -> None:
    source = device_for("counters")
    dest = build_device("dest", FULL, ncpus=2)
    hold = threading.Event()
    migration = MigrationSource(source.device, downtime_target=10.0, hold=hold)
    a, b = socket.socketpair()
    traffic = Traffic(source, migration.lock).start()
    side = Side(MigrationDestination(dest).serve, b)
    side.start()
    outcome: list[object] = []
    runner = threading.Thread(target=lambda: outcome.append(migration.run(a)))
    runner.start()
    wait_phase(migration, "precopy")
    assert migration.plan == "COMPATIBLE"
    time.sleep(0.3)  # held: a generous target would have cut at once
    assert migration.phase == "precopy" and not source.device.paused
    # what a live view shows meanwhile: the full copy and the rounds since, the estimate
    copy = migration.rounds[0]
    assert copy.round == 0 and copy.entries > 0 and copy.bytes > 0
    assert migration.estimate is not None and migration.estimate >= 0
    picture = Migration(None, "source", "dest")
    picture.source = migration
    shown = picture.picture()
    assert shown["phase"] == "precopy" and shown["rounds"][0] == [0, copy.entries, copy.bytes]
    assert shown["round"] == migration.rounds[-1].round and "estimate" in shown
    hold.set()
    runner.join(20)
    traffic.stop()
    (report,) = outcome
    assert side.error is None and side.outcome() is not None
    assert report.rounds >= 1  # the traffic dirtied entries while held
    on_source = len(TRAFFIC) + traffic.injected
    assert proto_packets(dest, handle_of(dest, "proto_stats"), 2) == on_source
    assert not source.device.objects.maps


def test_cancelling_a_held_migration_rolls_the_destination_back() -> None:
    source = device_for("counters")
    dest = build_device("dest", FULL, ncpus=2)
    hold, cancel = threading.Event(), threading.Event()
    migration = MigrationSource(source.device, hold=hold, cancel=cancel)
    a, b = socket.socketpair()
    side = Side(MigrationDestination(dest).serve, b)
    side.start()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migration.run(a)
        except MigrationCancelled as exc:
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    wait_phase(migration, "precopy")
    assert dest.device.objects.maps  # restored, not attached
    cancel.set()
    runner.join(20)
    (error,) = errors
    assert "cancelled" in str(error) and error.report is not None
    side.outcome()
    assert isinstance(side.error, SourceAborted)
    assert not dest.device.objects.maps and not dest.device.objects.programs
    assert source.device.attached is not None and not source.device.paused
    before = proto_packets(source, handle_of(source, "proto_stats"), 2)
    source.device.receive(TRAFFIC[0])
    assert proto_packets(source, handle_of(source, "proto_stats"), 2) == before + 1
