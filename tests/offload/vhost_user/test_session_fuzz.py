"""Random message sequences against the session: only typed refusals, every descriptor the
session was given closed exactly once by the time it is closed."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.vhost_user.protocol import (
    Header,
    Region,
    Request,
    VhostUserError,
    VringAddr,
    VringState,
    encode_memory_table,
)
from offload.vhost_user.session import Session

from .frontend import QUEUE_SIZE, RAM, REGIONS, USER_BASE, memfd
from .test_server import open_fds

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
small = st.sampled_from([0, 1, 2, 64, 0xFFFF, 0x10000, QUEUE_SIZE, 100])
user = st.sampled_from([USER_BASE, USER_BASE + 0x100000, USER_BASE + 0x200000,
                        USER_BASE + RAM - 16, USER_BASE + 0xA0000, 0, 2**64 - 8])

payloads = {
    Request.SET_FEATURES: u64.map(lambda v: v.to_bytes(8, "little")),
    Request.SET_PROTOCOL_FEATURES: u64.map(lambda v: v.to_bytes(8, "little")),
    Request.SET_VRING_NUM: st.builds(VringState, st.integers(0, 3), small).map(
        lambda s: s.encode()),
    Request.SET_VRING_BASE: st.builds(VringState, st.integers(0, 3), small).map(
        lambda s: s.encode()),
    Request.GET_VRING_BASE: st.builds(VringState, st.integers(0, 3), small).map(
        lambda s: s.encode()),
    Request.SET_VRING_ENABLE: st.builds(VringState, st.integers(0, 3), small).map(
        lambda s: s.encode()),
    Request.SET_VRING_ADDR: st.builds(VringAddr, st.integers(0, 2), st.integers(0, 2),
                                      user, user, user, u64).map(lambda a: a.encode()),
    Request.SET_VRING_KICK: st.integers(0, 0x1FF).map(lambda v: v.to_bytes(8, "little")),
    Request.SET_VRING_CALL: st.integers(0, 0x1FF).map(lambda v: v.to_bytes(8, "little")),
    Request.SET_MEM_TABLE: st.sampled_from([
        encode_memory_table(REGIONS),
        encode_memory_table([Region(0, RAM, USER_BASE, 0)]),
        encode_memory_table([Region(0, 0x1000, USER_BASE, 0)] * 2),
        b"\x00" * 8, b"\x09" + b"\x00" * 7]),
}
message = st.one_of(
    st.tuples(st.sampled_from(list(payloads)), st.integers(0, 3)).flatmap(
        lambda rf: st.tuples(st.just(rf[0]), payloads[rf[0]], st.just(rf[1]))),
    st.tuples(st.sampled_from(list(Request)), st.binary(max_size=40), st.integers(0, 2)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message, max_size=14))
def test_random_sequences_only_refuse_and_leak_nothing(messages):
    before = open_fds()
    ram = memfd(RAM)
    session = Session()
    try:
        for request, payload, nfds in messages:
            fds = [os.dup(ram) if request == Request.SET_MEM_TABLE else os.eventfd(0)
                   for _ in range(nfds)]
            try:
                session.handle(Header(int(request), 1, len(payload)), payload, fds)
            except VhostUserError:
                break  # the connection would be dropped here
        session.deliver(b"x" * 60)
        list(session.transmitted())
    except VhostUserError:
        pass
    finally:
        session.close()
        os.close(ram)
    assert open_fds() == before
