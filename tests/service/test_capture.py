"""Packet capture at the device: what each kind records matches the device's own counters."""

from __future__ import annotations

import errno
import io
import struct

import pytest

from offload.device.capture import FrameCapture
from offload.errors import ErrnoError
from service import frames as p
from service.device_service import DeviceService
from service.errors import ServiceError
from service.fixture_traffic import FRAMES, VIP
from service.methods import call
from service.pcap import PcapWriter, parse_pcap

from .conftest import FIXTURES


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def balancer() -> DeviceService:
    """The load balancer attached, one TCP service: its VIP frames leave with XDP_TX, a
    truncated TCP frame is dropped, the rest pass."""
    service = DeviceService("A", "full", seed=7)
    call(service, "load", {"object": (FIXTURES / "xdp_lb.o").read_bytes(), "name": "xdp_lb",
                           "attach": True})
    call(service, "map.update", {"map": "services", "key": p.ip4(VIP) + struct.pack("!H", 80)
                                 + bytes([p.IPPROTO_TCP, 0]), "value": _u32(0) + _u32(2)})
    for slot in range(2):
        call(service, "map.update", {"map": "backends", "key": _u32(slot),
                                     "value": p.ip4(f"10.9.0.{slot + 1}")
                                     + bytes([2, 0, 0, 0, 9, slot]) + bytes(2)})
    return service


def counters(service: DeviceService) -> tuple[int, int, int]:
    """Frames received, sent to the wire, dropped or aborted, as the device counts them."""
    ports = service.device.ports
    prog = next(iter(service.device.objects.programs.values())).counters.as_dict()
    return ports.rx_frames, ports.tx_to_wire, prog.get("drop", 0) + prog.get("aborted", 0)


@pytest.mark.parametrize("what", ["rx", "tx", "drop", "all", "tx,drop"])
def test_each_kind_counts_what_the_device_counts(what):
    service = balancer()
    before = counters(service)
    ident = call(service, "capture.start", {"what": what})["capture"]
    frames = [FRAMES[name] for name in FRAMES] * 2
    actions = call(service, "inject", {"frames": frames})["actions"]
    service.device.from_guest(FRAMES["udp-allowed"])  # the guest's frame out to the wire
    answer = call(service, "capture.read", {"capture": ident})
    rx, tx, drop = (a - b for a, b in zip(counters(service), before))
    assert (rx, tx, drop) == (len(frames), actions.count("tx") + 1, actions.count("drop"))
    assert tx > 1 and drop > 0
    got = answer["frames"]
    kinds = set(what.split(",")) if what != "all" else {"rx", "tx", "drop"}
    expect_rx = rx if "rx" in kinds else drop if "drop" in kinds else 0
    assert sum(f["direction"] == "rx" for f in got) == expect_rx
    assert sum(f["direction"] == "tx" for f in got) == (tx if "tx" in kinds else 0)
    assert sum(f["verdict"] == "drop" for f in got) == (drop if kinds & {"rx", "drop"} else 0)
    assert answer["lost"] == 0 and answer["recorded"] == len(got)
    if "rx" in kinds:  # arriving frames in order, as they arrived, with their verdicts
        arrived = [f for f in got if f["direction"] == "rx"]
        assert [f["data"] for f in arrived] == frames
        assert [f["verdict"] for f in arrived] == actions
    if "tx" in kinds:
        senders = [f["verdict"] for f in got if f["direction"] == "tx"]
        assert senders == ["tx"] * actions.count("tx") + ["guest"]
    call(service, "capture.stop", {"capture": ident})
    assert service.device.captures == []


def test_count_fills_the_capture_and_a_full_buffer_loses_frames():
    service = balancer()
    counted = call(service, "capture.start", {"what": "rx", "count": 5})["capture"]
    small = call(service, "capture.start", {"what": "rx", "buffer": 3, "snaplen": 20})["capture"]
    call(service, "inject", {"frames": [FRAMES["tcp-allowed"]] * 8})
    first = call(service, "capture.read", {"capture": counted, "max": 2})
    assert len(first["frames"]) == 2 and not first["full"]  # full only once all are read
    rest = call(service, "capture.read", {"capture": counted})
    assert len(rest["frames"]) == 3 and rest["full"] and rest["recorded"] == 5
    kept = call(service, "capture.read", {"capture": small})
    assert len(kept["frames"]) == 3 and kept["lost"] == 5
    assert all(len(f["data"]) == 20 and f["length"] == len(FRAMES["tcp-allowed"])
               for f in kept["frames"])


def test_refusals_and_the_connection_ends_its_captures():
    service = balancer()
    with pytest.raises(ServiceError) as caught:
        call(service, "capture.start", {"what": "rx,bogus"})
    assert caught.value.errno == errno.EINVAL and "bogus" in str(caught.value)
    with pytest.raises(ServiceError) as caught:
        call(service, "capture.read", {"capture": 99})
    assert caught.value.errno == errno.ENOENT
    owner = object()
    service.caller = owner
    for _ in range(4):
        call(service, "capture.start", {})
    with pytest.raises(ServiceError) as caught:
        call(service, "capture.start", {})
    assert caught.value.errno == errno.EBUSY
    service.forget(owner)
    assert service.device.captures == [] and call(service, "capture.start", {})["capture"] == 5
    with pytest.raises(ErrnoError):
        FrameCapture(frozenset({"rx"}), snaplen=0)


def test_pcap_writer_keeps_times_lengths_and_cut_frames():
    handle = io.BytesIO()
    writer = PcapWriter(handle, snaplen=16)
    writer.write(bytes(range(40)), 1700000000.25, 40)
    writer.write(b"\xaa" * 10, 1700000001.0)
    data = handle.getvalue()
    assert parse_pcap(data) == [bytes(range(16)), b"\xaa" * 10]
    assert struct.unpack_from("<IIII", data, 24) == (1700000000, 250000, 16, 40)
