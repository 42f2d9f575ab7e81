"""Live migration end to end: two devices, a real stream between two threads, traffic on the
source while it moves, and every way it can fail leaving the source running."""

from __future__ import annotations

import socket
import threading

import pytest

from fixtures.snapshots.generate import TRAFFIC, device_for
from migrate.live import (
    ConnectionLost,
    DestinationRefused,
    MigrationDestination,
    MigrationOutcome,
    MigrationSource,
    StreamTruncated,
    connect,
    listen,
)
from migrate.live.frames import FrameDecoder, FrameType
from migrate.live.messages import Ready, RoundAck, SnapshotEnd, Welcome
from migrate.live.protocol import Connection, Role, State
from offload.caps import load_profile
from offload.device import build_device

from .conftest import Side, Traffic, handle_of, map_contents, proto_packets

FULL = load_profile("full")


def test_migration_under_traffic_loses_no_update() -> None:
    source = device_for("counters")  # 27 frames counted already, per CPU
    dest = build_device("dest", FULL, ncpus=2)
    a, b = socket.socketpair()
    migration = MigrationSource(source.device, downtime_target=0.05)
    traffic = Traffic(source, migration.lock).start()
    traffic.wait_for(50)
    side = Side(MigrationDestination(dest).serve, b)
    side.start()
    try:
        report = migration.run(a)
    finally:
        traffic.stop()
    dest_report = side.outcome()
    assert side.error is None
    assert report.outcome is MigrationOutcome.COMPLETED
    assert dest_report.outcome is MigrationOutcome.COMPLETED
    assert report.downtime is not None and report.downtime > 0
    assert report.entries_per_round[0] == 256 and len(report.entries_per_round) >= 2
    assert report.bytes_sent == dest_report.bytes_received
    # the source let go: nothing attached, nothing left
    assert source.device.attached is None and not source.device.objects.maps
    assert not source.device.paused
    on_source = len(TRAFFIC) + traffic.injected
    for n, frame in enumerate(TRAFFIC * 3):  # traffic now reaches the destination
        dest.device.receive(frame, rx_queue_index=n % 2)
    after = 3 * len(TRAFFIC)
    stats = handle_of(dest, "proto_stats")
    assert proto_packets(dest, stats, 2) == on_source + after
    program = dest.device.objects.programs[dest.device.attached]
    assert program.counters.pass_ == on_source + after


def test_migration_over_tcp_and_unix_moves_every_kind_of_map(tmp_path) -> None:
    for address, name in (("tcp:127.0.0.1:0", "tailcall"), (f"unix:{tmp_path}/m.sock", "lpm")):
        source = device_for(name)
        before = map_contents(source)
        dest = build_device("dest", FULL, seed=7)
        server = listen(address)
        if address.startswith("tcp"):
            host, port = server.getsockname()[:2]
            address = f"tcp:{host}:{port}"

        def accept_and_serve(listener):
            conn, _ = listener.accept()
            listener.close()
            return MigrationDestination(dest).serve(conn)

        side = Side(accept_and_serve, server)
        side.start()
        report = MigrationSource(source.device).run(connect(address))
        side.outcome()
        assert side.error is None and report.outcome is MigrationOutcome.COMPLETED
        after = map_contents(dest)
        for map_name, entries in before.items():
            if map_name != "jump_table":  # program handles differ; they are relinked by name
                assert after[map_name] == entries, map_name
        outputs = []
        reference = device_for(name)
        for frame in TRAFFIC:
            outputs.append((dest.device.receive(frame), reference.device.receive(frame)))
        assert all(x == y for x, y in outputs)


class FakeDestination:
    """A destination that follows the real protocol (the sans-I/O Connection) up to
    ``die_at``, then closes its socket: a daemon killed mid-transfer."""

    def __init__(self, die_at: str) -> None:
        self.die_at = die_at

    def __call__(self, sock: socket.socket) -> None:
        conn = Connection(Role.DESTINATION)
        sock.settimeout(10)

        def message():
            while (m := conn.next_message()) is None:
                data = sock.recv(65536)
                if not data:
                    return None
                conn.receive_data(data)
            return m

        message()  # hello
        sock.sendall(conn.send(Welcome(1, 2, "fake", "full")))
        if self.die_at == "copy":
            message()
            sock.close()
            return
        while not isinstance(message(), SnapshotEnd):
            pass
        sock.sendall(conn.send(Ready("COMPATIBLE", 0, 0)))
        while conn.state is not State.COMMIT:
            if message() is None:
                break
            if conn.state is State.ROUND:
                sock.sendall(conn.send(RoundAck(1, 0, 0)))
        sock.close()  # FINAL arrived; the destination dies before COMMITTED


@pytest.mark.parametrize("die_at", ["copy", "commit"])
def test_a_killed_destination_leaves_the_source_running(die_at: str) -> None:
    source = device_for("counters")
    a, b = socket.socketpair()
    migration = MigrationSource(source.device, timeout=5)
    traffic = Traffic(source, migration.lock).start()
    traffic.wait_for(20)
    side = Side(FakeDestination(die_at), b)
    side.start()
    with pytest.raises(ConnectionLost) as info:
        migration.run(a)
    side.outcome()
    assert info.value.report is not None
    assert info.value.report.outcome is MigrationOutcome.FAILED
    if die_at == "commit":
        assert info.value.report.entries_per_round[0] == 256
        assert "may have committed" in str(info.value)
    # still running: attached, unpaused, not tracking, traffic counted by the program
    assert not source.device.paused and source.device.attached is not None
    seen = traffic.injected
    traffic.wait_for(seen + 20)
    traffic.stop()
    with migration.lock:
        stats = handle_of(source, "proto_stats")
        assert proto_packets(source, stats, 2) == len(TRAFFIC) + traffic.injected
        assert not source.device.backend.map(stats).tracking_dirty


@pytest.mark.parametrize("cut", ["inside-copy", "after-restore"])
def test_a_truncated_stream_is_a_typed_error_and_the_destination_rolls_back(cut: str) -> None:
    source = device_for("firewall")
    dest = build_device("dest", FULL)
    a, b = socket.socketpair()
    relay_a, relay_b = socket.socketpair()
    side = Side(MigrationDestination(dest, timeout=5).serve, relay_b)
    side.start()
    relay = _relay_then_cut(a, relay_a, cut)
    # The source learns of the failure either from its own cut stream or from the
    # destination's REFUSE naming the truncation, whichever reaches it first.
    with pytest.raises((ConnectionLost, DestinationRefused)) as info:
        MigrationSource(source.device, timeout=5).run(b)
    relay.join(10)
    side.outcome()
    assert isinstance(side.error, StreamTruncated), side.error
    assert "ends inside a frame" in str(side.error)
    assert side.error.report is not None
    assert side.error.report.outcome is MigrationOutcome.FAILED
    if cut == "after-restore":  # the copy had been restored; now it is gone again
        assert side.error.report.entries_per_round[0] > 0
    assert not dest.device.objects.maps and not dest.device.objects.programs
    assert dest.device.attached is None
    # the source's own view: its stream broke (FAILED), or the destination declined the
    # truncated stream first (REFUSED); either way it runs on
    expected = (MigrationOutcome.REFUSED if isinstance(info.value, DestinationRefused)
                else MigrationOutcome.FAILED)
    assert info.value.report.outcome is expected
    assert source.device.attached is not None and not source.device.paused


def _relay_then_cut(source_side: socket.socket, dest_side: socket.socket, cut: str):
    """Forward frames both ways; cut the source's stream in the middle of a frame: the first
    snapshot chunk, or the first frame sent after the destination said READY."""

    def pump_back():
        try:
            while data := dest_side.recv(65536):
                source_side.sendall(data)
        except OSError:
            pass

    def pump():
        threading.Thread(target=pump_back, daemon=True).start()
        decoder = FrameDecoder()
        buffered = bytearray()
        try:
            while data := source_side.recv(65536):
                buffered += data
                decoder.feed(data)
                while (frame := decoder.next_frame()) is not None:
                    size = len(frame.payload) + 5
                    whole, buffered[:] = bytes(buffered[:size]), buffered[size:]
                    last = (cut == "inside-copy" and frame.type == FrameType.SNAPSHOT) or \
                        (cut == "after-restore" and frame.type in (FrameType.DELTA,
                                                                   FrameType.FINAL))
                    dest_side.sendall(whole[:size // 2] if last else whole)
                    if last:
                        raise EOFError
        except (OSError, EOFError):
            pass
        dest_side.shutdown(socket.SHUT_WR)
        source_side.shutdown(socket.SHUT_RDWR)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def test_a_refusing_destination_leaves_the_source_running() -> None:
    source = device_for("tailcall")  # tail calls: the smartnic profile has none
    before = map_contents(source)
    dest = build_device("nic", load_profile("smartnic"))
    a, b = socket.socketpair()
    migration = MigrationSource(source.device)
    traffic = Traffic(source, migration.lock).start()
    side = Side(MigrationDestination(dest).serve, b)
    side.start()
    with pytest.raises(DestinationRefused) as info:
        migration.run(a)
    traffic.stop()
    side.outcome()
    assert info.value.code == "incompatible"
    assert "tail_call" in str(info.value) or "PROG_ARRAY" in str(info.value)
    assert info.value.report.outcome is MigrationOutcome.REFUSED
    assert isinstance(side.error, DestinationRefused)
    assert not dest.device.objects.maps and not dest.device.objects.programs
    assert not source.device.paused and source.device.attached is not None
    after = map_contents(source)
    assert after["jump_table"] == before["jump_table"]
    assert after["udp_blocked"] == before["udp_blocked"]
