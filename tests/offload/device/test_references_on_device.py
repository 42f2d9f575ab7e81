"""Programs holding references on the device, on both engines: ring buffer reservations
become records when submitted and nothing when discarded (their room freed when the reader
passes it, as the kernel frees a discarded record), and socket lookups find no socket."""

from __future__ import annotations

import struct

from offload.uapi import XdpAction
from service.frames import ether, ipv4, tcp, udp

from .libbpf_pair import load, pair  # noqa: F401 (the fixture)

UDP = ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1000, 53, b"query")))
TCP = ether(ipv4("10.0.0.3", "10.0.0.2", 6, tcp(1000, 80)))
SAMPLE = 40  # struct sample: len, proto, pad, 32 bytes of the frame
COST = (SAMPLE + 8 + 7) & ~7


def test_reserved_records_are_submitted_or_discarded(pair):
    device = pair.device
    handles = load(pair, "xdp_ringbuf_log", "xdp_ringbuf_sample")
    ring = device.backend.map(handles["flow_log"])
    assert device.receive(TCP) == XdpAction.PASS
    assert device.receive(UDP) == XdpAction.PASS  # discarded
    assert device.receive(TCP) == XdpAction.PASS
    # the discarded record keeps its room until the reader passes it, as in the kernel
    assert ring.query(0) == 3 * COST and ring.query(3) == 3 * COST
    events = device.take_events()
    assert [(e.map_name, e.kind, e.seq) for e in events] == \
        [("flow_log", "ringbuf", 0), ("flow_log", "ringbuf", 2)]
    length, proto = struct.unpack_from("<IB", events[0].data)
    assert (length, proto) == (len(TCP), 6) and len(events[0].data) == SAMPLE
    assert events[0].data[8:] == TCP[:32]
    assert ring.query(0) == 0 and ring.query(2) == 3 * COST  # consumer caught up


def test_a_reservation_that_does_not_fit_is_null(pair):
    device = pair.device
    handles = load(pair, "xdp_ringbuf_log", "xdp_ringbuf_reserve")
    ring = device.backend.map(handles["flow_log"])
    fits = (4096 - 8) // 24  # 16-byte flow records in a 4 KiB ring
    for _ in range(fits + 2):
        assert device.receive(UDP) == XdpAction.PASS
    assert ring.pending == fits and ring.lost == 2
    assert [e.seq for e in ring.take_events()][-1] == fits - 1


def test_a_run_that_faults_gives_its_reservation_back(pair):
    """A verified program releases every reservation; a run cut short by a fault (here the
    engine's instruction budget) must not leave one behind."""
    device = pair.device
    handles = load(pair, "xdp_ringbuf_log", "xdp_ringbuf_sample")
    ring = device.backend.map(handles["flow_log"])
    engine = device.backend.programs[handles["xdp_ringbuf_sample"]].engine
    engine.max_steps = 60  # past the reservation, before the submit
    device.receive(TCP)
    assert ring.query(3) == COST  # it reserved (the producer moved) ...
    assert ring.take_events() == [] and ring.query(0) == 0  # ... and nothing stays
    assert not device.backend._frame_env()[0].reservations


def test_socket_lookups_find_no_socket_on_the_device(pair):
    device, driver = pair.device, pair.driver
    handles = load(pair, "xdp_sk_lookup", "xdp_sk_established")
    assert device.receive(TCP) == XdpAction.DROP  # no established socket: dropped
    assert device.receive(UDP) == XdpAction.PASS  # not TCP
    counts = [struct.unpack("<Q", driver.map_lookup_elem(handles["sk_stats"],
                                                         struct.pack("<I", k)))[0]
              for k in range(4)]
    assert counts == [1, 0, 0, 0]
    for program, frame in (("xdp_udp_bound", UDP), ("xdp_syncookie", TCP)):
        load(pair, "xdp_sk_lookup", program)
        assert device.receive(frame) == XdpAction.PASS
