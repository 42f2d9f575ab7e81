"""A restored snapshot carries the source's counters, as a live migration's FINAL does: every
program's per-action counts and the device's port totals; each guest port's own counters
stay with the port (offload/device/device.py, ``carry_counters``)."""

from __future__ import annotations

import errno

import pytest

from migrate.codec import decode
from migrate.freshness import SourceStamp
from service.api import NoParams
from service.device_service import DeviceService, PlanRefused
from service.device_state import StateError
from service.errors import Refused

from .test_proof import source_payload


def test_a_restore_carries_the_program_and_port_counters():
    payload = source_payload(0)
    saved = decode(payload)
    (program,) = saved.programs
    counted = {c.action.name.lower(): c.packets for c in program.counters}
    assert counted == {"pass": 4, "drop": 2}  # the source's six frames
    target = DeviceService("dst", "smartnic")  # lowered: the counters follow the name
    target.restore_payload(payload)
    (restored,) = target.status(NoParams()).programs
    assert {k: v for k, v in restored["counters"].items() if v and k != "bytes"} == counted
    assert target.device.ports.rx_frames == dict(saved.counters)["rx_frames"] == 6


def test_a_dry_run_or_a_refused_restore_counts_nothing():
    payload = source_payload(0)
    target = DeviceService("dst", "full")
    target.restore_payload(payload, dry_run=True)
    assert target.device.ports.rx_frames == 0
    target.restore_payload(payload)
    first = target.device.ports.rx_frames
    with pytest.raises(Refused):  # not empty any more: refused, and nothing added twice
        target.restore_payload(payload)
    assert target.device.ports.rx_frames == first


def test_a_restore_undone_at_its_last_step_counts_nothing(monkeypatch):
    """The rollback guard's record fails: the restore is undone, the totals unchanged."""
    payload = source_payload(0)
    target = DeviceService("dst", "full")

    def cannot_record(stamp: SourceStamp) -> None:
        raise StateError(errno.EIO, "the rollback record cannot be written")

    monkeypatch.setattr(target.state, "record_restore", cannot_record)
    stamp = SourceStamp("0" * 32, "src", 1)
    with pytest.raises(PlanRefused, match="the rollback record cannot be written"):
        target.restore_payload(payload, source=stamp, authenticated=True)
    assert target.device.ports.rx_frames == 0 and not target.device.objects.programs
