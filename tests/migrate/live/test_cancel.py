"""Cancelling a live migration on the source, in each phase before the cut: the source runs
on unpaused with its state, the destination rolls back to empty, the report says cancelled;
after FINAL a cancel is too late and the migration completes."""

from __future__ import annotations

import socket
import threading

import pytest

from fixtures.snapshots.generate import device_for
from migrate.live import (
    MigrationCancelled,
    MigrationDestination,
    MigrationOutcome,
    MigrationSource,
    SourceAborted,
)
from migrate.live import source as source_module
from offload.caps import load_profile
from offload.device import build_device

from .conftest import Side, Traffic


def _cancel_when(monkeypatch, owner, name, migration, after=False):
    """Set the migration's cancel event when ``owner.name`` first runs (or returns)."""
    original = getattr(owner, name)

    def wrapper(self, *args, **kwargs):
        if not after:
            migration.cancel.set()
        result = original(self, *args, **kwargs)
        if after:
            migration.cancel.set()
        return result

    monkeypatch.setattr(owner, name, wrapper)


PHASES = {
    "handshake": None,  # set before the run: noticed after WELCOME
    "copy": (source_module._Sink, "_send", False),
    "rounds": (source_module._Run, "_round", True),
    "final": (source_module._Run, "_final", False),  # paused, deltas sent, FINAL not yet
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_cancel_before_the_cut_leaves_the_source_running_and_the_destination_empty(
        monkeypatch, phase):
    source = device_for("firewall")
    attached = source.device.attached
    dest = build_device("B", load_profile("full"))
    a, b = socket.socketpair()
    migration = MigrationSource(source.device, downtime_target=1e-9, max_rounds=3,
                                cancel=threading.Event())
    where = PHASES[phase]
    if where is None:
        migration.cancel.set()
    else:
        _cancel_when(monkeypatch, *where[:2], migration, after=where[2])
    traffic = Traffic(source, migration.lock).start()
    side = Side(MigrationDestination(dest).serve, b)
    side.start()
    with pytest.raises(MigrationCancelled) as info:
        migration.run(a)
    traffic.stop()
    side.outcome()
    assert info.value.report.outcome is MigrationOutcome.CANCELLED
    assert isinstance(side.error, SourceAborted)
    assert not dest.device.objects.maps and not dest.device.objects.programs
    assert dest.device.attached is None
    assert not source.device.paused and source.device.attached == attached
    assert source.device.objects.maps
    counters = source.device.objects.programs[attached].counters
    before = _frames(counters)
    source.device.receive(b"\0" * 64)  # the source still runs its program on its frames
    assert _frames(counters) == before + 1


def _frames(counters):
    return sum(counters.as_dict()[a] for a in ("pass", "drop", "tx", "redirect", "aborted"))


def test_a_cancel_after_final_is_too_late(monkeypatch):
    source = device_for("firewall")
    dest = build_device("B", load_profile("full"))
    a, b = socket.socketpair()
    migration = MigrationSource(source.device, max_rounds=0, cancel=threading.Event())
    _cancel_when(monkeypatch, source_module._Run, "_final", migration, after=True)
    side = Side(MigrationDestination(dest).serve, b)
    side.start()
    report = migration.run(a)
    side.outcome()
    assert report.outcome is MigrationOutcome.COMPLETED
    assert dest.device.attached is not None
