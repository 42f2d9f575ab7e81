"""Checkpoint a device with traffic, restore onto devices with other capabilities: contents
are equal afterwards, the restored programs answer the same packets the same way, and a
refused or failed restore leaves the target untouched."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import pytest

from migrate.checkpoint import checkpoint
from migrate.codec import decode, encode
from migrate.compat import Outcome
from migrate.restore import IncompatibleTarget, RestoreError, restore
from offload.caps import load_profile
from offload.device import build_device
from offload.errors import ErrnoError
from offload.loader import load_object
from service.frames import icmp_echo, tcp, udp, v4_frame

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xdp"
FULL = load_profile("full")
TRAFFIC = [v4_frame(f"10.0.{n % 3}.{n % 7}", "10.1.0.1", tcp(1000 + n, 80)) for n in range(24)] \
    + [v4_frame("10.0.0.1", "10.1.0.1", udp(5, 53), proto=17),
       v4_frame("10.0.0.2", "10.1.0.1", icmp_echo(), proto=1)]


def source_with(fixture: str, program: str, *, populate=None, profile=FULL):
    pair = build_device("source", profile, seed=7)
    obj = load_object(FIXTURES / fixture)
    maps = {name: pair.driver.map_create(spec) for name, spec in obj.maps.items()}
    handles = {name: pair.driver.prog_load(spec, maps=maps)
               for name, spec in obj.programs.items()}
    if populate:
        populate(pair.driver, maps, handles)
    pair.driver.xdp_attach(handles[program])
    for frame in TRAFFIC:
        pair.device.receive(frame)
    pair.driver.received()
    pair.device.wire.clear()
    return pair, maps


def block(driver, maps, handles):
    driver.map_update_elem(maps["blocked_v4"], bytes([10, 0, 1, 1]), bytes(8))
    driver.map_update_elem(maps["blocked_v4"], bytes([10, 0, 2, 3]), bytes(8))


def contents(pair, handle):
    return sorted(pair.driver.map_items(handle))


def outputs(pair, frames):
    results = []
    for frame in frames:
        action = pair.device.receive(frame)
        results.append((action, pair.driver.received(), list(pair.device.wire)))
        pair.device.wire.clear()
    return results


def test_restore_on_an_equal_device_is_exact():
    source, maps = source_with("xdp_firewall.o", "xdp_firewall", populate=block)
    snapshot = decode(encode(checkpoint(source.device)))
    target = build_device("target", FULL, seed=7)
    result = restore(snapshot, target.driver)
    assert result.attached == "xdp_firewall"
    assert result.plan.outcome == Outcome.COMPATIBLE
    for name, handle in maps.items():
        assert contents(target, result.maps[name]) == contents(source, handle), name
    assert outputs(target, TRAFFIC) == outputs(source, TRAFFIC)


def test_restore_lowers_v4_programs_for_an_older_isa():
    source, maps = source_with("xdp_firewall_v4.o", "xdp_firewall", populate=block)
    smartnic = load_profile("smartnic")
    target = build_device("nic", smartnic, seed=7)
    result = restore(checkpoint(source.device), target.driver)
    report = result.plan.report("program", "xdp_firewall")
    assert report.outcome == Outcome.REWRITABLE and report.rewritten is not None
    assert outputs(target, TRAFFIC) == outputs(source, TRAFFIC)
    for name, handle in maps.items():
        assert contents(target, result.maps[name]) == contents(source, handle), name


def tail_calls(driver, maps, handles):
    for index, name in enumerate(["xdp_handle_tcp", "xdp_handle_udp", "xdp_handle_icmp"]):
        driver.map_update_elem(maps["jump_table"], struct.pack("<I", index),
                               struct.pack("<I", handles[name]))
    driver.map_update_elem(maps["udp_blocked"], struct.pack("<H", 53), b"\x01")


def test_program_arrays_are_relinked_by_name():
    source, maps = source_with("xdp_tailcall.o", "xdp_dispatch", populate=tail_calls)
    target = build_device("target", FULL, seed=7)
    result = restore(decode(encode(checkpoint(source.device))), target.driver)
    assert outputs(target, TRAFFIC) == outputs(source, TRAFFIC)
    assert contents(target, result.maps["handled"]) == contents(source, maps["handled"])


def test_an_incompatible_target_is_refused_and_left_untouched():
    source, _ = source_with("xdp_tailcall.o", "xdp_dispatch", populate=tail_calls)
    target = build_device("nic", load_profile("smartnic"))
    with pytest.raises(IncompatibleTarget) as info:
        restore(checkpoint(source.device), target.driver)
    assert "tail_call" in str(info.value) or "PROG_ARRAY" in str(info.value)
    assert not target.device.objects.maps and not target.device.objects.programs


def test_fallback_keeps_the_group_in_the_guest_when_allowed():
    source, _ = source_with("xdp_tailcall.o", "xdp_dispatch", populate=tail_calls)
    target = build_device("nic", load_profile("smartnic"))
    result = restore(checkpoint(source.device), target.driver, allow_fallback=True)
    assert "xdp_dispatch" in result.fallback
    assert not target.device.objects.programs and target.device.attached is None


def test_a_failure_midway_undoes_everything(monkeypatch):
    source, _ = source_with("xdp_firewall.o", "xdp_firewall", populate=block)
    target = build_device("target", FULL)

    def refuse(*args, **kwargs):
        raise ErrnoError(errno.EBUSY, "the interface is busy")

    monkeypatch.setattr(target.driver, "xdp_attach", refuse)
    with pytest.raises(RestoreError, match="undone: EBUSY"):
        restore(checkpoint(source.device), target.driver)
    assert not target.device.objects.maps and not target.device.objects.programs


def test_dry_run_changes_nothing():
    source, _ = source_with("xdp_firewall.o", "xdp_firewall", populate=block)
    target = build_device("target", FULL)
    result = restore(checkpoint(source.device), target.driver, dry_run=True)
    assert result.plan.ok and not result.maps
    assert not target.device.objects.maps
