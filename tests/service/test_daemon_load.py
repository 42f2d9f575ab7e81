"""A daemon under load: 200 clients connecting at once all get answers (status, load, map
updates) while another client sits in the middle of a message it never finishes sending."""

from __future__ import annotations

import socket
import struct
import threading

from service.client import DeviceClient
from service.protocol import MessageReader, encode_request

from .conftest import FIXTURES

CLIENTS = 200
TIMEOUT = 120.0  # a loaded two-core machine: generous, never a synchronisation


def test_two_hundred_clients_at_once_all_succeed_while_one_stalls(daemons):
    daemon = daemons("L")
    path = str(daemon.path)
    with DeviceClient(path, timeout=TIMEOUT) as setup:
        setup.call("load", object=(FIXTURES / "xdp_firewall.o").read_bytes(), attach=True)
    passing = (FIXTURES / "xdp_pass.o").read_bytes()

    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.settimeout(TIMEOUT)
    stalled.connect(path)
    request = encode_request(1, "ping", {})
    stalled.sendall(request[:3])  # the start of a message, and then nothing

    start = threading.Barrier(CLIENTS)
    results: list[object] = [None] * CLIENTS

    def client(index: int) -> None:
        try:
            start.wait(TIMEOUT)
            with DeviceClient(path, timeout=TIMEOUT) as c:
                status = c.call("status")
                loaded = c.call("load", object=passing, program="xdp_pass_all")
                c.call("map.update", map="blocked_v4", key=struct.pack(">I", index),
                       value=struct.pack("<Q", index))
                results[index] = (status["name"], sorted(loaded["programs"]))
        except BaseException as exc:  # noqa: BLE001 - reported below, per client
            results[index] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    failures = [(i, r) for i, r in enumerate(results) if r != ("L", ["xdp_pass_all"])]
    assert not failures, f"{len(failures)} of {CLIENTS} clients failed, e.g. {failures[:3]}"

    with DeviceClient(path, timeout=TIMEOUT) as check:
        items = dict((bytes(k), bytes(v)) for k, v in check.call("map.items", map="blocked_v4")["items"])
    assert len(items) == CLIENTS
    assert items[struct.pack(">I", 7)] == struct.pack("<Q", 7)

    stalled.sendall(request[3:])  # the stalled client was kept, and is answered now
    reader = MessageReader()
    answers = []
    while not answers:
        data = stalled.recv(1 << 16)
        assert data, "the daemon dropped the stalled client"
        answers = reader.feed(data)
    assert answers[0].unwrap()["name"] == "L"
    stalled.close()
