"""Restore with proof through the device service: sampled frames in the checkpoint, the proof
on scratch devices before anything is restored, a refusal that leaves the target empty."""

from __future__ import annotations

import pytest

from migrate import compat
from migrate.codec import decode
from service.device_service import DeviceService, ProofRefused, error_data
from service.errors import Refused
from service.frames import frame
from tests.migrate.faults import wrong_lowering

from .firewall_source import source_payload


def test_a_checkpoint_carries_the_sample_it_was_asked_for():
    assert len(decode(source_payload(4)).samples) == 4
    assert decode(source_payload(0)).samples == ()
    assert decode(source_payload(4, ring=0)).samples == ()  # the device never sampled


def test_a_lowered_restore_is_proven_then_restored():
    target = DeviceService("dst", "smartnic")
    result = target.restore_payload(source_payload(6), prove=True)
    proof = result.proof
    assert proof is not None and proof["ok"] and proof["rewritten"]
    assert proof["frames"] == 6 and proof["generated"] > 0
    assert 0 < proof["branches_covered"] <= proof["branches_total"]
    assert result.attached == "xdp_firewall" and target.device.objects.programs


def test_given_frames_replace_the_sample():
    target = DeviceService("dst", "smartnic")
    result = target.restore_payload(source_payload(0), prove=True,
                                    prove_frames=[frame("10.0.0.3", "10.0.0.2", 6)])
    assert result.proof is not None and result.proof["frames"] == 1


def test_no_frames_to_prove_with_is_refused_before_anything_is_restored():
    target = DeviceService("dst", "smartnic")
    with pytest.raises(Refused, match="no frames to prove with") as info:
        target.restore_payload(source_payload(0), prove=True)
    assert info.value.errno == 61  # ENODATA
    assert not target.device.objects.programs and not target.device.objects.maps


def test_a_wrong_rewrite_is_refused_and_the_target_stays_empty(monkeypatch):
    monkeypatch.setattr(compat, "lower_program", wrong_lowering)
    target = DeviceService("dst", "smartnic")
    with pytest.raises(ProofRefused, match="the proof failed: frame 1: verdict XDP_DROP") as info:
        target.restore_payload(source_payload(6), prove=True)
    data = error_data(info.value)
    assert data["proof"]["ok"] is False
    assert data["plan"]["outcome"] == "rewritable"  # the report table shows where they part
    assert not target.device.objects.programs and not target.device.objects.maps
