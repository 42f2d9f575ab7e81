"""A peer that sends wrong types, missing, extra or huge values, or params that are not a map,
gets a typed error answer for each request on the same connection, and the daemon goes on
serving it and everyone else."""

from __future__ import annotations

import socket

import msgpack
import pytest

from service.client import DeviceClient
from service.errors import ErrorKind
from service.params import U64
from service.protocol import MessageReader, RemoteError, Response

from .conftest import FIXTURES

BAD = [
    ("load", [{"object": "ELF as text"}], "object"),
    ("load", [{}], "object"),
    ("load", [{"object": b"", "program": [1]}], "program[0]"),
    ("load", [{"object": b"", "map_sizes": {"m": U64}}], "map_sizes.m"),
    ("map.update", [{"map": "m", "key": b"k", "value": b"v", "flags": U64, "extra": 1}],
     "extra"),
    ("map.update", [{"map": None, "key": b"k", "value": b"v"}], "map"),
    ("map.items", [{"map": [1]}], "map"),
    ("checkpoint.read", [{"transfer": U64, "offset": 0}], "transfer"),
    ("restore.begin", [{"size": -(1 << 63)}], "size"),
    ("restore.write", [{"transfer": 1, "data": "text"}], "data"),
    ("restore.commit", [{"transfer": 1, "source": "A"}], "source"),
    ("inject", [{"frames": [b"", "frame"]}], "frames[1]"),
    ("events.read", [{"max": 1 << 40}], "max"),
    ("traffic.set", [{"rate": "fast"}], "rate"),
    ("migrate.start", [{"to": b"/tmp/x.sock"}], "to"),
    ("status", ["not a map"], None),
    ("ping", [{}, {}], None),
    ("attach", {"program": 1}, None),  # a map where the array belongs
    ("detach", 5, None),
]


def test_every_bad_request_gets_a_typed_answer_and_the_daemon_serves_on(daemons):
    d = daemons("H", "full")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(d.path))
    stream = b"".join(msgpack.packb([0, n, method, params], use_bin_type=True)
                      for n, (method, params, _) in enumerate(BAD))
    sock.sendall(stream + msgpack.packb([0, 999, "ping", []]))
    reader, answers = MessageReader(), []
    while len(answers) < len(BAD) + 1:
        data = sock.recv(1 << 16)
        assert data, f"the daemon closed the connection after {len(answers)} answers"
        answers += reader.feed(data)
    sock.close()
    for n, (method, _, field) in enumerate(BAD):
        answer = answers[n]
        assert isinstance(answer, Response) and answer.msgid == n and answer.result is None
        with pytest.raises(RemoteError) as info:
            answer.unwrap()
        err = info.value
        assert (err.name, err.kind) == ("EINVAL", ErrorKind.INVALID), (method, err)
        assert err.data.get("field") == field, (method, err.data)
        if field is not None:
            assert repr(field) in err.message and repr(method) in err.message
    assert answers[-1].unwrap() == {"name": "H", "profile": "full"}

    with DeviceClient(str(d.path)) as client:  # and a fresh client is served as ever
        loaded = client.call("load", object=(FIXTURES / "xdp_firewall.o").read_bytes(),
                             name="xdp_firewall", attach=True)
        assert loaded["attached"] == "xdp_firewall"
        with pytest.raises(RemoteError) as info:
            client.call("map.items", map="nope")
        assert (info.value.name, info.value.kind) == ("ENOENT", ErrorKind.REFUSED)
        assert client.call("map.items", map="blocked_v4") == {"items": []}


def test_a_bad_migration_handshake_is_answered_and_refused(daemons):
    d = daemons("M", "full")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(d.path))
    sock.sendall(msgpack.packb([0, 1, "migrate.incoming", [{"allow_fallback": "yes"}]]))
    reader, answers = MessageReader(), []
    while not answers:
        data = sock.recv(4096)
        assert data, "the daemon closed the connection without an answer"
        answers += reader.feed(data)
    assert sock.recv(4096) == b""  # then the connection ends: it was to carry a migration
    sock.close()
    with pytest.raises(RemoteError) as info:
        answers[0].unwrap()
    assert (info.value.name, info.value.data.get("field")) == ("EINVAL", "allow_fallback")
    with DeviceClient(str(d.path)) as client:
        assert client.call("ping") == {"name": "M", "profile": "full"}
