"""Device status, feature negotiation, and one control command end to end."""

from __future__ import annotations

import errno

import pytest

from offload.caps.capabilities import Capabilities
from offload.errors import ErrnoError
from offload.uapi import ProgType
from offload.virtio import (
    CONTROLQ,
    BpfCommand,
    DeviceStatus,
    Feature,
    FeatureNegotiationError,
    GuestAllocator,
    GuestMemory,
    MapCreateRequest,
    MapCreateResponse,
    NetConfig,
    StatusError,
    Transport,
    VirtioError,
    VirtqueueError,
    VringLayout,
    bit,
    decode_request,
    decode_response,
    device_offer,
    driver_negotiate,
    feature_set,
    negotiate,
    require_offload,
)
from offload.virtio.features import DEFAULT_DEVICE_FEATURES, names

from .conftest import make_link

S = DeviceStatus
V1 = bit(Feature.VIRTIO_F_VERSION_1)
OFFLOAD = bit(Feature.VIRTIO_NET_F_BPF_OFFLOAD)
CTRL_VQ = bit(Feature.VIRTIO_NET_F_CTRL_VQ)


def transport(features=DEFAULT_DEVICE_FEATURES) -> Transport:
    return Transport(GuestMemory(1 << 16), features, [8, 8, 8], NetConfig().encode())


def test_negotiated_set_is_the_intersection_the_device_accepts():
    t = transport(V1 | CTRL_VQ | bit(Feature.VIRTIO_NET_F_MAC))
    got = driver_negotiate(t, DEFAULT_DEVICE_FEATURES)
    assert got == V1 | CTRL_VQ | bit(Feature.VIRTIO_NET_F_MAC) == t.negotiated
    assert t.status == S.ACKNOWLEDGE | S.DRIVER | S.FEATURES_OK
    with pytest.raises(ErrnoError) as info:
        require_offload(got)
    assert info.value.errno == errno.EOPNOTSUPP and "VIRTIO_NET_F_BPF_OFFLOAD" in str(info.value)


def test_offload_needs_the_control_queue():
    assert negotiate(DEFAULT_DEVICE_FEATURES, V1 | OFFLOAD) == V1
    with pytest.raises(VirtioError, match="without VIRTIO_NET_F_CTRL_VQ"):
        transport(V1 | OFFLOAD)
    require_offload(driver_negotiate(transport(), DEFAULT_DEVICE_FEATURES))


def test_features_ok_is_refused_for_an_invalid_subset_and_the_driver_sees_it():
    t = transport()
    t.write_status(S.ACKNOWLEDGE)
    t.write_status(S.ACKNOWLEDGE | S.DRIVER)
    t.write_driver_features(V1 | OFFLOAD)  # offload without CTRL_VQ
    t.write_status(t.status | S.FEATURES_OK)
    assert not t.status & S.FEATURES_OK and t.negotiated is None  # the 3.1.1 re-read rule
    assert "without VIRTIO_NET_F_CTRL_VQ" in t.events[-1]
    t.write_driver_features(bit(40) | V1)  # not offered
    t.write_status(t.status | S.FEATURES_OK)
    assert not t.status & S.FEATURES_OK and "did not offer" in t.events[-1]
    t.write_driver_features(CTRL_VQ)  # legacy-only driver
    t.write_status(t.status | S.FEATURES_OK)
    assert "VIRTIO_F_VERSION_1" in t.events[-1]


def test_driver_negotiate_sets_failed_when_the_device_refuses():
    class Picky(Transport):
        def _judge_features(self, accepted: int) -> str | None:
            return "this device is picky"

    t = Picky(GuestMemory(1 << 16), DEFAULT_DEVICE_FEATURES, [8])
    with pytest.raises(FeatureNegotiationError, match="picky"):
        driver_negotiate(t, DEFAULT_DEVICE_FEATURES)
    assert t.status & S.FAILED


@pytest.mark.parametrize("steps, words", [
    ([S.DRIVER], "before ACKNOWLEDGE"),
    ([S.ACKNOWLEDGE, S.ACKNOWLEDGE | S.FEATURES_OK], "before DRIVER"),
    ([S.ACKNOWLEDGE, S.ACKNOWLEDGE | S.DRIVER, S.ACKNOWLEDGE | S.DRIVER | S.DRIVER_OK],
     "before FEATURES_OK"),
    ([S.ACKNOWLEDGE, S.ACKNOWLEDGE | S.DRIVER, S.ACKNOWLEDGE], "may not clear"),
    ([0x100], "8-bit"),
    ([S.ACKNOWLEDGE | 0x10], "no meaning"),
])
def test_status_order_rules(steps, words):
    t = transport()
    with pytest.raises(StatusError, match=words):
        for value in steps:
            t.write_status(value)


def test_features_are_written_only_in_their_window():
    t = transport()
    with pytest.raises(StatusError):
        t.write_driver_features(V1)
    driver_negotiate(t, DEFAULT_DEVICE_FEATURES)
    with pytest.raises(StatusError):
        t.write_driver_features(V1)  # after FEATURES_OK


def test_device_consumes_nothing_before_driver_ok():
    memory = GuestMemory(1 << 16)
    t = Transport(memory, DEFAULT_DEVICE_FEATURES, [8, 8, 8])
    driver_negotiate(t, DEFAULT_DEVICE_FEATURES)
    from offload.virtio import setup_queue
    q = setup_queue(t, GuestAllocator(memory), CONTROLQ)
    q.add_buffer([(0x1000, 4)])
    assert t.queue(CONTROLQ) is None and t.pop(CONTROLQ) is None
    t.write_status(t.status | S.DRIVER_OK)
    assert t.pop(CONTROLQ) is not None


def test_bad_queue_addresses_need_a_reset():
    t = transport()
    driver_negotiate(t, DEFAULT_DEVICE_FEATURES)
    t.configure_queue(CONTROLQ, VringLayout(8, 0xFFF0, 0x2000, 0x3000))
    with pytest.raises(VirtqueueError) as info:
        t.enable_queue(CONTROLQ)
    assert info.value.field == "queue_desc"
    assert t.status & S.DEVICE_NEEDS_RESET and "queue_desc" in t.reset_reason
    with pytest.raises(StatusError, match="size 16"):
        t.configure_queue(CONTROLQ, VringLayout(16, 0x1000, 0x2000, 0x3000))


def test_reset_forgets_everything():
    link = make_link()
    link.transport.needs_reset("test")
    link.transport.write_status(0)
    t = link.transport
    assert t.status == 0 and t.negotiated is None and t.queue(CONTROLQ) is None
    assert t.reset_reason is None and not t.config_changed


def test_config_space_holds_the_mac():
    t = transport()
    assert NetConfig.decode(t.read_config(0, 8)).mac == NetConfig().mac
    with pytest.raises(StatusError):
        t.read_config(4, 8)


def test_device_offer_follows_capabilities():
    assert device_offer(Capabilities("x")) == DEFAULT_DEVICE_FEATURES
    no_xdp = Capabilities("x", prog_types=frozenset({ProgType.SOCKET_FILTER}))
    assert not device_offer(no_xdp) & OFFLOAD
    custom = Capabilities("x", features=feature_set([Feature.VIRTIO_NET_F_BPF_OFFLOAD]))
    assert device_offer(custom) == V1  # offload without CTRL_VQ cannot be offered
    assert names(V1 | bit(99)) == ["VIRTIO_F_VERSION_1", "bit 99"]


def test_a_control_command_travels_from_driver_to_device_and_back(link):
    """The flow the driver and device will use: place, kick, pop, decode, answer, collect."""
    request = MapCreateRequest(1, 4, 8, 16, name="counters")
    data = request.encode()
    out, into = link.allocator.alloc(len(data)), link.allocator.alloc(64)
    link.memory.write(out, data)
    head = link.driver.add_buffer([(out, 2), (out + 2, len(data) - 2)], [(into, 1), (into + 1, 63)])
    assert link.driver.kick_prepare()
    link.transport.notify(CONTROLQ)
    assert link.transport.take_kicks() == {CONTROLQ}
    # Device side.
    chain = link.transport.pop(CONTROLQ)
    received = decode_request(chain.read(link.memory))
    assert received == request
    reply = MapCreateResponse(handle=7).encode(chain.writable_len)
    link.device.push_used(chain.head, chain.write(link.memory, reply))
    assert link.device.needs_interrupt()
    # Driver side.
    used = link.driver.get_used()
    assert used.head == head
    back = decode_response(BpfCommand.MAP_CREATE, link.memory.read(into, used.length))
    assert back == MapCreateResponse(handle=7)
    before = link.memory.snapshot()
    assert link.transport.live and link.memory.snapshot() == before


def test_the_device_works_exactly_while_it_is_live():
    """DRIVER_OK without FAILED or DEVICE_NEEDS_RESET (2.1.2), through every status change."""
    link = make_link()
    t, driver = link.transport, link.driver
    buf = link.allocator.alloc(4)

    def offered() -> bool:
        driver.add_outbuf(buf, 4)
        chain = t.pop(CONTROLQ)
        if chain is not None:
            t.device_queue(CONTROLQ).push_used(chain.head, 0)
            driver.get_used()
        return chain is not None

    assert t.live and offered()
    t.write_status(t.status | S.FAILED)
    assert not t.live and t.queue(CONTROLQ) is None and not offered()
    link = make_link()
    t, driver = link.transport, link.driver
    t.needs_reset("the test asked for it")
    assert not t.live and not offered()
    t.write_status(0)
    assert not t.live and t.pop(CONTROLQ) is None
    driver_negotiate(t, DEFAULT_DEVICE_FEATURES)
    assert not t.live
    from offload.virtio import setup_queue
    q = setup_queue(t, GuestAllocator(link.memory, start=0x80000), CONTROLQ)
    t.write_status(t.status | S.DRIVER_OK)
    q.add_outbuf(0x1000, 4)
    assert t.live and t.pop(CONTROLQ) is not None
