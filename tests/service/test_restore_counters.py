"""A restored snapshot carries the source's counters, as a live migration's FINAL does: every
program's per-action counts and the device's port totals; each guest port's own counters
stay with the port (offload/device/device.py, ``carry_counters``)."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest

from migrate.codec import decode, encode
from migrate.freshness import SourceStamp
from migrate.snapshot import ActionCounter
from offload.uapi import XdpAction
from service.api import InjectParams, NoParams
from service.device_service import DeviceService, PlanRefused
from service.device_state import StateError
from service.errors import Refused
from service.frames import frame

from .firewall_source import source_payload


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


def test_counters_carried_in_at_the_top_of_u64_wrap_as_the_kernels_do():
    """A snapshot may carry counts up to 2^64-1 (a hostile or a very old source): the next
    frame wraps them, as u64 statistics wrap, and status and the next save still work (they
    failed with an OverflowError on a value past u64)."""
    top = (1 << 64) - 1
    saved = decode(source_payload(0))
    (program,) = saved.programs
    forged = replace(saved, programs=(replace(program, counters=(
        ActionCounter(XdpAction.PASS, top), ActionCounter(XdpAction.DROP, top - 1))),),
        counters=tuple((name, top if name == "rx_frames" else value)
                       for name, value in saved.counters))
    target = DeviceService("dst", "full")
    target.restore_payload(encode(forged))
    target.inject(InjectParams(frames=[frame("10.0.0.1", "10.0.0.2", 6)] * 3))
    (shown,) = target.status(NoParams()).programs
    assert shown["counters"]["pass"] == 2 and shown["counters"]["drop"] == top - 1
    assert target.status(NoParams()).ports["rx_frames"] == 2
    data, _ = target.checkpoint_bytes()
    again = decode(data)
    assert {c.action: c.packets for c in again.programs[0].counters} == {
        XdpAction.PASS: 2, XdpAction.DROP: top - 1}
    assert dict(again.counters)["rx_frames"] == 2
