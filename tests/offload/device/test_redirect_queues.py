"""The device's side of cpumaps, xskmaps and event streams: worker queues bounded by qsize and
taken on to the guest by the workers (through the entry's program), AF_XDP rings per guest
receive queue, event records read oldest first, kept when their map is freed, bounded."""

from __future__ import annotations

import struct

from offload.device import device as device_module
from offload.uapi import AttachType, XdpAction
from service.frames import ether, ipv4, tcp, udp

from .libbpf_pair import LIBBPF, load, pair  # noqa: F401 (the fixture)

UDP = ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 53, b"query")))
TCP = ether(ipv4("10.0.0.3", "10.0.0.2", 6, tcp(1000, 80)))


def u32(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def test_cpumap_frames_wait_for_the_workers(pair):
    device, driver = pair.device, pair.driver
    handles = load(pair, "xdp_cpu_redirect", "xdp_cpu_spread")
    driver.map_update_elem(handles["cpu_count"], u32(0), u32(1))
    assert device.receive(UDP) == XdpAction.PASS  # CPU 0 has no entry: the flags' XDP_PASS
    driver.map_update_elem(handles["cpu_map"], u32(0), u32(2, 0))  # a queue of 2 frames
    before = device.ports.rx_to_guest
    actions = [device.receive(frame) for frame in (UDP, TCP, UDP)]
    assert actions == [XdpAction.REDIRECT] * 3
    ports = device.ports
    assert (ports.cpu_queued, ports.cpu_queue_full) == (2, 1)
    assert ports.rx_to_guest == before  # nothing reached the guest yet
    assert device.run_workers() == 2 and device.run_workers() == 0
    assert device.ports.rx_to_guest == before + 2
    assert [len(f) for f in driver.received()][-2:] == [len(UDP), len(TCP)]


def test_a_cpumap_entry_program_runs_in_the_worker(pair):
    device, driver = pair.device, pair.driver
    handles = load(pair, "xdp_cpu_redirect", "xdp_cpu_first")
    # the worker's program drops everything: an XDP program loaded for cpumap entries
    dropper = driver.load_object(LIBBPF.parent / "xdp_pass.o", programs=["xdp_drop_all"])
    drop = dropper.programs["xdp_drop_all"]
    device.backend.programs[drop].expected_attach_type = AttachType.XDP_CPUMAP
    driver.map_update_elem(handles["cpu_map"], u32(0), u32(8, drop))
    assert driver.map_lookup_elem(handles["cpu_map"], u32(0)) == u32(8, drop)
    assert device.receive(UDP) == XdpAction.REDIRECT
    before = device.ports.rx_to_guest
    assert device.run_workers() == 1
    assert device.ports.cpu_dropped == 1 and device.ports.rx_to_guest == before
    assert device.counters(drop).drop == 1
    driver.map_delete_elem(handles["cpu_map"], u32(0))
    assert device.receive(UDP) == XdpAction.DROP  # no entry: xdp_cpu_first's XDP_DROP


def test_xskmap_frames_reach_the_guest_queue_of_the_socket(pair, monkeypatch):
    monkeypatch.setattr(device_module, "XSK_RING_SIZE", 2)
    device, driver = pair.device, pair.driver
    handles = load(pair, "xdp_xsk_redirect", "xdp_sock_udp")
    driver.map_update_elem(handles["xsks_map"], u32(1), u32(1))  # queue 1's socket
    assert device.receive(UDP, rx_queue_index=0) == XdpAction.PASS  # no socket on queue 0
    assert device.receive(TCP, rx_queue_index=1) == XdpAction.PASS  # not UDP
    assert [device.receive(UDP, rx_queue_index=1) for _ in range(3)] == [XdpAction.REDIRECT] * 3
    assert list(device.xsk_rings) == [1] and list(device.xsk_rings[1]) == [UDP, UDP]
    assert (device.ports.xsk_delivered, device.ports.xsk_ring_full) == (2, 1)
    sent = driver.map_lookup_elem(handles["sent"], u32(0))
    assert int.from_bytes(sent, "little") == 3


def test_event_records_oldest_first_and_kept_after_their_map_goes(pair):
    device, driver = pair.device, pair.driver
    perf = driver.load_object(LIBBPF / "xdp_perf_sample.o", programs=["xdp_perf_sample"])
    ring = driver.load_object(LIBBPF / "xdp_ringbuf_log.o", programs=["xdp_ringbuf_log"])
    assert device.backend.map(perf.maps["samples"]).max_entries == 2  # one per device CPU
    for handle in (perf.programs["xdp_perf_sample"], ring.programs["xdp_ringbuf_log"]) * 2:
        driver.xdp_attach(handle, replace=device.attached)
        device.receive(UDP, rx_queue_index=1)
    streams = device.event_streams()
    assert streams[perf.maps["samples"]]["pending"] == 2
    assert streams[ring.maps["flow_log"]]["pending"] == 2
    first = device.take_events(3)
    assert [(e.map_name, e.cpu) for e in first] == [("samples", 1), ("flow_log", 1),
                                                      ("samples", 1)]
    assert [e.time_ns for e in first] == sorted(e.time_ns for e in first)
    assert first[0].data[8:] == UDP[:len(UDP)] and len(device.events) == 1
    # the perf sample's meta: the frame length, the protocol, the previous output's result
    length, proto, _, previous = struct.unpack_from("<HBBi", first[0].data)
    assert (length, proto, previous) == (len(UDP), 17, 0)
    driver.xdp_detach()
    driver.unload_object(ring)  # the ring buffer goes; its unread records stay
    rest = device.take_events()
    assert [(e.map_name, e.seq) for e in rest] == [("flow_log", 1)]
    assert device.take_events() == []


def test_the_backlog_is_bounded(pair, monkeypatch):
    monkeypatch.setattr(device_module, "EVENT_BACKLOG", 3)
    device = pair.device
    load(pair, "xdp_ringbuf_log", "xdp_ringbuf_log")
    for _ in range(5):
        device.receive(UDP)
    assert device.collect_events() == 5
    assert len(device.events) == 3 and device.ports.events_lost == 2
    assert [e.seq for e in device.take_events()] == [0, 1, 2]


def test_the_backlog_is_bounded_in_bytes_too(pair, monkeypatch):
    monkeypatch.setattr(device_module, "EVENT_BACKLOG_BYTES", 40)  # two 16-byte flow records
    device = pair.device
    load(pair, "xdp_ringbuf_log", "xdp_ringbuf_log")
    for _ in range(3):
        device.receive(UDP)
    assert [e.seq for e in device.take_events()] == [0, 1]
    assert device.ports.events_lost == 1
    device.receive(UDP)  # reading made room again
    assert [e.seq for e in device.take_events()] == [3]
