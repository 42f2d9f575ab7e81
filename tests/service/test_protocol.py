"""msgpack-RPC codec of the control socket: messages survive any cut of the stream; anything
else is a typed protocol error."""

from __future__ import annotations

import errno

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrate.seal import IntegrityError
from offload.errors import ErrnoError
from service.errors import ErrorKind, InvalidRequest
from service.protocol import (
    MessageReader,
    RemoteError,
    Request,
    Response,
    RpcProtocolError,
    encode_request,
    encode_response,
    error_payload,
)

params = st.dictionaries(st.text(max_size=8),
                         st.one_of(st.integers(-2**63, 2**64 - 1), st.binary(max_size=64),
                                   st.text(max_size=16), st.booleans(), st.none()),
                         max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.text(min_size=1, max_size=12), params),
                min_size=1, max_size=5),
       st.lists(st.integers(1, 40), max_size=20))
def test_requests_survive_any_fragmentation(requests, cuts):
    stream = b"".join(encode_request(i, m, p) for i, m, p in requests)
    reader = MessageReader()
    got, pos = [], 0
    for cut in cuts:
        got += reader.feed(stream[pos:pos + cut])
        pos += cut
    got += reader.feed(stream[pos:])
    assert got == [Request(i, m, [p]) for i, m, p in requests]


def test_responses_and_errors_round_trip():
    reader = MessageReader()
    ok = encode_response(3, None, {"x": b"\x00"})
    err = encode_response(4, error_payload(ErrnoError(errno.ENOENT, "no such map")), None)
    first, second = reader.feed(ok + err)
    assert first == Response(3, None, {"x": b"\x00"}) and first.unwrap() == {"x": b"\x00"}
    with pytest.raises(RemoteError) as info:
        second.unwrap()
    assert (info.value.name, info.value.errno, info.value.message) == \
        ("ENOENT", errno.ENOENT, "no such map")
    assert info.value.kind == ErrorKind.REFUSED


def test_error_payload_carries_the_kind_not_an_exit_code():
    sealed = error_payload(IntegrityError("the digest does not match."))
    assert sealed["kind"] == "integrity" and sealed["errno"] == "EBADMSG"
    assert "exit" not in sealed
    assert error_payload(OSError(errno.EACCES, "denied"))["kind"] == "usage"
    assert error_payload(ErrnoError(524, "no batches"))["errno"] == "ENOTSUPP"
    assert error_payload(RuntimeError("bug"))["kind"] == "internal"
    bad = error_payload(InvalidRequest("the parameter 'map' is missing.", field="map"))
    assert (bad["kind"], bad["errno"], bad["data"]) == ("invalid", "EINVAL", {"field": "map"})


@pytest.mark.parametrize("error, kind", [
    ({"errno": "EBADMSG", "code": 74, "kind": "integrity", "message": "m", "data": {}},
     ErrorKind.INTEGRITY),
    ({"kind": "nonsense"}, ErrorKind.REFUSED),
    ({"errno": 5, "code": "x", "message": None, "data": []}, ErrorKind.REFUSED),
])
def test_a_peer_s_error_map_is_read_defensively(error, kind):
    with pytest.raises(RemoteError) as info:
        Response(1, error, None).unwrap()
    assert info.value.kind == kind and isinstance(info.value.data, dict)
    assert isinstance(info.value.errno, int) and isinstance(info.value.name, str)


@pytest.mark.parametrize("value", [
    5, [], [7, 1, "m", []], [0, "id", "m", []], [0, True, "m", []], [0, 1, 2, []],
    [0, 1, "m"], [1, 1, "error", None], [1, 1, None],
])
def test_malformed_messages_are_refused(value):
    with pytest.raises(RpcProtocolError):
        MessageReader().feed(msgpack.packb(value))


@pytest.mark.parametrize("params", [{}, [1], [{}, {}], "x", None])
def test_requests_with_odd_params_still_parse_for_the_method_table_to_answer(params):
    (request,) = MessageReader().feed(msgpack.packb([0, 9, "ping", params]))
    assert request == Request(9, "ping", params)


def test_bytes_that_are_not_msgpack_or_too_large_are_refused():
    with pytest.raises(RpcProtocolError):
        MessageReader().feed(b"\xc1")
    with pytest.raises(RpcProtocolError):
        MessageReader().feed(msgpack.packb(msgpack.ExtType(1, b"x")))
    with pytest.raises(RpcProtocolError, match="larger than"):
        MessageReader().feed(b"\xc6\xff\xff\xff\xff" + bytes(64 << 20))
