"""The protocol without sockets: both state machines fed each other's bytes, in any split,
and hostile bytes giving typed errors only."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.live import (
    AddressError,
    MigrationError,
    ProtocolViolation,
    StreamTruncated,
    parse_address,
)
from migrate.live.frames import MAX_PAYLOAD, FrameDecoder, FrameType, encode_frame
from migrate.live.messages import (
    Abort,
    Committed,
    Delta,
    Final,
    Hello,
    Ready,
    RoundAck,
    RoundEnd,
    SnapshotChunk,
    SnapshotEnd,
    Welcome,
)
from migrate.live.protocol import Connection, Role, State

CONVERSATION = [
    (Role.SOURCE, Hello((1,), (2,), "a", "full", 2)),
    (Role.DESTINATION, Welcome(1, 2, "b", "smartnic")),
    (Role.SOURCE, SnapshotChunk(b"\x81\xa4kind" * 40)),
    (Role.SOURCE, SnapshotEnd(280, 1234)),
    (Role.DESTINATION, Ready("COMPATIBLE", 10, 5)),
    (Role.SOURCE, Delta(1, "m", 2, b"k1k2", b"v1v2", b"k3", None)),
    (Role.SOURCE, RoundEnd(1, 3)),
    (Role.DESTINATION, RoundAck(1, 3, 99)),
    (Role.SOURCE, Delta(2, "jt", 1, b"\0\0\0\0", b"", b"", ("prog",))),
    (Role.SOURCE, Final(2, 1, (("p", (0, 1, 2, 3, 4, 5)),), (("rx_frames", 7),))),
    (Role.DESTINATION, Committed(1, 10)),
]


def play(split: int = 0) -> tuple[Connection, Connection, list]:
    sides = {Role.SOURCE: Connection(Role.SOURCE), Role.DESTINATION: Connection(Role.DESTINATION)}
    received = []
    for sender, message in CONVERSATION:
        data = sides[sender].send(message)
        peer = sides[Role.DESTINATION if sender is Role.SOURCE else Role.SOURCE]
        step = split or len(data)
        got = None
        for i in range(0, len(data), step):
            assert got is None
            peer.receive_data(data[i:i + step])
            got = peer.next_message()
        received.append(got)
    return sides[Role.SOURCE], sides[Role.DESTINATION], received


def test_a_whole_migration_runs_between_the_two_machines() -> None:
    source, dest, received = play()
    assert received == [m for _, m in CONVERSATION]
    assert source.state is State.DONE and dest.state is State.DONE
    assert source.bytes_sent == dest.bytes_received
    source.receive_eof()  # a clean end after COMMITTED
    dest.receive_eof()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 64))
def test_any_split_of_the_bytes_gives_the_same_messages(split: int) -> None:
    assert play(split)[2] == [m for _, m in CONVERSATION]


def test_messages_out_of_turn_are_refused_on_both_sides() -> None:
    source = Connection(Role.SOURCE)
    with pytest.raises(ProtocolViolation, match="this side sent DELTA in state hello"):
        source.send(Delta(1, "m", 0, b"", b"", b""))
    dest = Connection(Role.DESTINATION)
    dest.receive_data(Final(1, 0, (), ()).encode())
    with pytest.raises(ProtocolViolation, match="the source sent FINAL in state hello"):
        dest.next_message()
    src = Connection(Role.SOURCE)
    src.send(Hello((1,), (2,), "a", "full", 1))
    src.receive_data(Committed(0, 0).encode())
    with pytest.raises(ProtocolViolation, match="COMMITTED in state welcome"):
        src.next_message()


def test_the_source_may_abort_and_the_destination_refuse() -> None:
    source, dest = Connection(Role.SOURCE), Connection(Role.DESTINATION)
    dest.receive_data(source.send(Hello((1,), (2,), "a", "full", 1)))
    dest.next_message()
    source.receive_data(dest.send(Welcome(1, 2, "b", "full")))
    source.next_message()
    dest.receive_data(source.send(Abort("the operator cancelled")))
    assert dest.next_message() == Abort("the operator cancelled")
    assert dest.state is State.FAILED
    dest.receive_eof()  # no truncation once it ended


def test_truncation_is_typed_inside_a_frame_and_between_frames() -> None:
    dest = Connection(Role.DESTINATION)
    data = Hello((1,), (2,), "a", "full", 1).encode()
    dest.receive_data(data[:-1])
    assert dest.next_message() is None
    with pytest.raises(StreamTruncated, match="inside a frame"):
        dest.receive_eof()
    dest = Connection(Role.DESTINATION)
    dest.receive_data(data)
    dest.next_message()
    with pytest.raises(StreamTruncated, match="in state welcome"):
        dest.receive_eof()


def test_bad_frames_are_refused_before_they_are_buffered() -> None:
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">IB", MAX_PAYLOAD + 2, 1))
    with pytest.raises(ProtocolViolation, match="declares"):
        decoder.next_frame()
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">IB", 1, 99))
    with pytest.raises(ProtocolViolation, match="frame type 99"):
        decoder.next_frame()
    with pytest.raises(ProtocolViolation, match="exceeds"):
        encode_frame(FrameType.SNAPSHOT, bytes(MAX_PAYLOAD + 1))


def test_damaged_or_malformed_messages_are_refused_by_name() -> None:
    delta = Delta(1, "m", 1, b"k", b"\xee\xee", b"")
    data = bytearray(delta.encode())
    data[data.index(b"\xee\xee")] = 0xEF
    conn = Connection(Role.DESTINATION)
    conn.state = State.PRECOPY
    conn.receive_data(bytes(data))
    with pytest.raises(ProtocolViolation, match="CRC-32"):
        conn.next_message()
    conn = Connection(Role.DESTINATION)
    conn.receive_data(encode_frame(FrameType.HELLO, b"\x81\xa5magic\xa3bad"))
    with pytest.raises(ProtocolViolation, match="not an offload-migrate"):
        conn.next_message()
    conn = Connection(Role.DESTINATION)
    conn.receive_data(encode_frame(FrameType.HELLO, b"\xc1"))
    with pytest.raises(ProtocolViolation, match="valid msgpack"):
        conn.next_message()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(list(Role)))
def test_hostile_bytes_give_typed_errors_only(data: bytes, role: Role) -> None:
    conn = Connection(role)
    if role is Role.SOURCE:
        conn.send(Hello((1,), (2,), "a", "full", 1))
    hello = Hello((1,), (2,), "a", "full", 1).encode()
    try:
        conn.receive_data(hello[:5] + data if role is Role.DESTINATION else data)
        while conn.next_message() is not None:
            pass
        conn.receive_eof()
    except MigrationError:
        pass


def test_addresses() -> None:
    assert str(parse_address("tcp:127.0.0.1:7400")) == "tcp:127.0.0.1:7400"
    assert parse_address("tcp:[::1]:80").host == "::1"
    assert parse_address("unix:/run/d.sock").path == "/run/d.sock"
    for bad in ("tcp:host", "tcp::80", "udp:1.2.3.4:5", "unix:", "tcp:h:99999", "x"):
        with pytest.raises(AddressError, match="is not a migration address"):
            parse_address(bad)


def test_the_proof_fields_of_version_2_round_trip_and_are_checked() -> None:
    import msgpack

    from migrate.live.messages import decode_message
    from migrate.live.proof_record import LiveProof

    proof = LiveProof("fw", True, 6, 250, 16, 30, 0.125)
    for message in (Hello((1, 2), (2,), "a", "full", 2, prove=True),
                    Ready("REWRITABLE", 3, 5, proof), Committed(1, 10, proof)):
        frame = FrameDecoder()
        frame.feed(message.encode())
        assert decode_message(frame.next_frame()) == message
    # without a proof the fields are absent: what a version 1 peer reads
    assert b"prove" not in Hello((1, 2), (2,), "a", "full", 2).encode()
    assert b"proof" not in Ready("COMPATIBLE", 1, 1).encode()
    fields = Ready("REWRITABLE", 3, 5, proof).fields()
    fields["proof"]["extra"] = 1
    with pytest.raises(ProtocolViolation, match="unexpected fields 'extra'"):
        decode_message(next_frame(encode_frame(FrameType.READY, msgpack.packb(fields))))
    fields["proof"] = {**proof.fields(), "frames": -1}
    with pytest.raises(ProtocolViolation, match="'frames' must be an integer"):
        decode_message(next_frame(encode_frame(FrameType.READY, msgpack.packb(fields))))


def next_frame(data: bytes):  # type: ignore[no-untyped-def]
    decoder = FrameDecoder()
    decoder.feed(data)
    return decoder.next_frame()
