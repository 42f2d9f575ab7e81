"""The vhost-user back-end against a front-end that acts as QEMU does."""

from __future__ import annotations

import os
import socket
import time

import pytest

from offload.vhost_user import VhostUserServer, channel
from offload.vhost_user.protocol import (
    HEADER,
    LOG_PAGE,
    MAX_PAYLOAD,
    Region,
    Request,
    VringState,
    encode_memory_table,
)

from .frontend import QUEUE_SIZE, RAM, REGIONS, USER_BASE, Frontend, memfd


def wait_for(condition, timeout: float = 5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out")


@pytest.fixture
def server(tmp_path):
    sent: list[bytes] = []
    srv = VhostUserServer(tmp_path / "vu.sock", sent.append).start()
    srv.sent = sent
    yield srv
    srv.close()


def connect(server) -> Frontend:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(server.path)
    return Frontend(sock)


def open_fds() -> int:
    """Descriptors this process holds, without the server loop's own epoll instance."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:[eventpoll]"
        except OSError:
            pass
    return count


def test_frames_cross_both_queues(server):
    front = connect(server)
    try:
        front.handshake()
        front.post_rx(8)
        assert server.deliver(b"\x01" * 60) and server.deliver(b"\x02" * 1500)
        assert wait_for(front.received) == [b"\x01" * 60, b"\x02" * 1500]
        assert front.calls(0) >= 1
        front.transmit(b"\xaa" * 64)
        front.transmit(b"\xbb" * 100)
        wait_for(lambda: len(server.sent) == 2)
        assert server.sent == [b"\xaa" * 64, b"\xbb" * 100]
        assert wait_for(lambda: front.tx.get_used()) is not None
    finally:
        front.close()


def test_no_receive_buffer_drops_the_frame(server):
    front = connect(server)
    try:
        front.handshake()
        assert not server.deliver(b"x" * 60)
        assert server.session.rx_dropped == 1
        front.post_rx(1)
        assert not server.deliver(b"x" * 4000)  # larger than the guest's buffer
        assert server.session.rx_dropped == 2
    finally:
        front.close()


def test_get_vring_base_hands_over_the_index_and_a_new_session_resumes(server):
    front = connect(server)
    front.handshake()
    front.post_rx(4)
    for i in range(3):
        assert server.deliver(bytes([i]) * 60)
    assert len(front.received()) == 3
    base = VringState.decode("", front.ask(Request.GET_VRING_BASE, VringState(0, 0).encode()))
    assert base == VringState(0, 3)
    assert not server.deliver(b"late" * 20)  # the ring stopped
    front.reconnect(server.path)  # QEMU restarted its chardev: same guest, same rings
    try:
        wait_for(lambda: server.connections == 2)
        front.send(Request.SET_OWNER)
        front.send(Request.SET_MEM_TABLE, encode_memory_table(REGIONS), [front.ram_fd] * 2)
        front.start_ring(0, base=3)
        front.ask(Request.GET_FEATURES)
        assert server.deliver(b"\x09" * 60)
        assert wait_for(front.received) == [b"\x09" * 60]
    finally:
        front.close()


def test_dirty_logging_marks_every_page_the_device_writes(server):
    front = connect(server)
    try:
        front.handshake(log=True)
        log_fd = front.set_log(RAM // LOG_PAGE)
        front.post_rx(1)
        (addr,) = front.rx_buffers.values()
        assert server.deliver(b"\x05" * 2000)
        front.received()
        bitmap = os.pread(log_fd, RAM // LOG_PAGE // 8, 0)

        def dirty(gpa: int) -> bool:
            page = gpa // LOG_PAGE
            return bool(bitmap[page // 8] >> page % 8 & 1)

        assert dirty(addr) and dirty(addr + 12 + 1999)  # the buffer, header and frame
        assert dirty(front.rx.layout.device)  # the used ring, at its log address
        assert not dirty(front.tx.layout.desc + QUEUE_SIZE * 16 + LOG_PAGE * 64)
        assert sum(bin(b).count("1") for b in bitmap) <= 4
    finally:
        front.close()


# ------------------------------------------------------------------------------ refusals
def refused(server, send) -> str:
    """Run ``send(front)`` on a fresh connection; the back-end must drop it with a reason,
    keep no descriptor it received, and accept the next front-end."""
    before = open_fds()
    refusals = len(server.refusals)
    front = connect(server)
    try:
        send(front)
        wait_for(lambda: len(server.refusals) > refusals)
        wait_for(lambda: server.connection is None)
    finally:
        front.close()
    wait_for(lambda: open_fds() <= before)
    good = connect(server)  # the server still serves
    try:
        good.handshake()
        good.post_rx(1)
        assert server.deliver(b"ok" * 30)
    finally:
        good.close()
    return server.refusals[refusals]


def region_table(*regions: Region) -> bytes:
    return encode_memory_table(list(regions))


CASES = {
    "unknown request": (lambda f: f.send(99), "request 99 is not a request"),
    "bad version": (lambda f: f.sock.sendall(HEADER.pack(1, 2, 0)), "message version 2"),
    "huge payload": (lambda f: f.sock.sendall(HEADER.pack(1, 1, MAX_PAYLOAD + 1)),
                     "more than the 4096 bytes"),
    "short payload": (lambda f: f.send(Request.SET_FEATURES, b"\x00" * 4),
                      "payload of 4 bytes, expected 8"),
    "features never offered": (lambda f: f.send(Request.SET_FEATURES,
                                                 (1 << 63).to_bytes(8, "little")),
                               "were never offered"),
    "memory table without fds": (lambda f: f.send(Request.SET_MEM_TABLE,
                                                  region_table(*REGIONS)),
                                 "came with 0 file descriptors"),
    "fewer fds than regions": (lambda f: f.send(Request.SET_MEM_TABLE, region_table(*REGIONS),
                                                [f.ram_fd]),
                               "2 regions came with 1 file descriptors"),
    "overlapping regions": (lambda f: f.send(
        Request.SET_MEM_TABLE, region_table(Region(0, 0x200000, USER_BASE, 0),
                                            Region(0x100000, 0x200000, USER_BASE + 0x300000,
                                                   0x100000)), [f.ram_fd, f.ram_fd]),
        "overlap in guest addresses"),
    "region past its file": (lambda f: f.send(
        Request.SET_MEM_TABLE, region_table(Region(0, RAM * 2, USER_BASE, 0)), [f.ram_fd]),
        "past its file"),
    "two files": (lambda f: f.send(
        Request.SET_MEM_TABLE, region_table(Region(0, 0x1000, USER_BASE, 0),
                                            Region(0x1000, 0x1000, USER_BASE + 0x1000, 0x1000)),
        [f.ram_fd, f.owned(memfd(0x2000))]), "several memory files"),
    "kick before addresses": (lambda f: (f.send(Request.SET_MEM_TABLE,
                                                region_table(*REGIONS), [f.ram_fd] * 2),
                                         f.send(Request.SET_VRING_NUM,
                                                VringState(0, 64).encode()),
                                         f.send(Request.SET_VRING_KICK,
                                                (0).to_bytes(8, "little"), [f.kick[0]])),
                              "has no addresses yet"),
    "ring in no region": (lambda f: (
        f.send(Request.SET_MEM_TABLE, region_table(*REGIONS), [f.ram_fd] * 2),
        f.send(Request.SET_VRING_NUM, VringState(0, 64).encode()),
        f.send(Request.SET_VRING_ADDR, f.vring_addr(0).__class__(
            0, 0, USER_BASE + RAM, USER_BASE + 0x200000, USER_BASE + 0x201000, 0).encode()),
        f.send(Request.SET_VRING_KICK, (0).to_bytes(8, "little"), [f.kick[0]])),
        "lies in no memory region"),
    "queue size not a power of two": (lambda f: f.send(Request.SET_VRING_NUM,
                                                       VringState(0, 100).encode()),
                                      "not a power of two"),
    "vring that does not exist": (lambda f: f.send(Request.SET_VRING_NUM,
                                                   VringState(5, 64).encode()),
                                  "vring 5 does not exist"),
    "kick with the no-fd flag and an fd": (lambda f: f.send(
        Request.SET_VRING_KICK, (1 << 8).to_bytes(8, "little"), [f.kick[0]]),
        "the no-descriptor flag is 1 but 1 descriptors came"),
    "fds on a request that takes none": (lambda f: f.send(Request.GET_FEATURES, b"",
                                                          [f.kick[0]]),
                                         "came with 1 file descriptors"),
    "nine fds": (lambda f: f.send(Request.SET_MEM_TABLE, region_table(*REGIONS),
                                  [f.ram_fd] * 9), "more than 8 descriptors"),
    "second owner": (lambda f: (f.send(Request.SET_OWNER), f.send(Request.SET_OWNER)),
                     "already has an owner"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_hostile_front_ends_are_refused_and_the_server_stays_up(server, case):
    send, reason = CASES[case]
    assert reason in refused(server, send)


def test_a_front_end_that_stalls_mid_message_is_dropped(server, monkeypatch):
    monkeypatch.setattr(channel, "MESSAGE_DEADLINE", 0.2)

    def stall(front):
        front.sock.sendall(HEADER.pack(Request.SET_FEATURES, 1, 8) + b"\x00\x00")

    assert "stopped in the middle of a payload" in refused(server, stall)


def test_a_guest_descriptor_in_the_memory_hole_breaks_only_that_session(server):
    front = connect(server)
    try:
        front.handshake()
        front.rx.add_buffer([], [(0xA0000, 2048)])  # the VGA window: not guest RAM
        front.rx.kick_prepare()
        assert not server.deliver(b"x" * 60)
        assert "in a hole of guest memory" in server.refusals[-1]
        wait_for(lambda: server.connection is None)
    finally:
        front.close()


def test_send_rarp_announces_the_guest_on_the_wire(server):
    front = connect(server)
    try:
        front.handshake()
        mac = bytes.fromhex("52540000000a")
        front.send(Request.SEND_RARP, mac + bytes(2))
        wait_for(lambda: server.sent)
        (frame,) = server.sent
        assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x80\x35"
        assert frame[20:22] == b"\x00\x03" and frame[22:28] == mac and len(frame) == 60
    finally:
        front.close()
