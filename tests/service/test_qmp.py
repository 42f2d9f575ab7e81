"""The QMP client against scripted peers: negotiation, answers, errors, events, and peers that
are silent, close, or send what is not QMP - each a typed error within the timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable

import pytest

from service.qmp import QmpClient, QmpCommandError, QmpError, QmpTimeout

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}},
                    "capabilities": []}}


def serve(tmp_path, script: Callable[[socket.socket, object], None]) -> str:
    path = str(tmp_path / "qmp.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        listener.close()
        reader = conn.makefile("rb")
        try:
            script(conn, reader)
        except OSError:
            pass
        finally:
            time.sleep(0.2)
            conn.close()

    threading.Thread(target=run, daemon=True).start()
    return path


def send(conn: socket.socket, message: object) -> None:
    conn.sendall(json.dumps(message).encode() + b"\r\n")


def qemu_like(conn, reader) -> None:
    """Greets, negotiates, then answers like QEMU with an event in between."""
    send(conn, GREETING)
    request = json.loads(reader.readline())
    assert request["execute"] == "qmp_capabilities"
    send(conn, {"return": {}, "id": request["id"]})
    while line := reader.readline():
        request = json.loads(line)
        if request["execute"] == "query-status":
            send(conn, {"event": "MIGRATION", "data": {"status": "active"},
                        "timestamp": {"seconds": 1, "microseconds": 2}})
            send(conn, {"return": {"status": "running", "running": True},
                        "id": request["id"]})
        else:
            send(conn, {"error": {"class": "CommandNotFound",
                                  "desc": f"The command {request['execute']} has not been "
                                          "found"}, "id": request["id"]})


def test_commands_answers_errors_and_events(tmp_path):
    with QmpClient(serve(tmp_path, qemu_like), timeout=5) as qmp:
        assert qmp.version["major"] == 7
        assert qmp.execute("query-status") == {"status": "running", "running": True}
        with pytest.raises(QmpCommandError) as err:
            qmp.execute("no-such-command")
        assert err.value.error_class == "CommandNotFound"
        event = qmp.event(("MIGRATION",), 1)
        assert event is not None and event["data"]["status"] == "active"
        started = time.monotonic()
        assert qmp.event(("MIGRATION",), 0.2) is None
        assert time.monotonic() - started < 2


@pytest.mark.parametrize("peer, error", [
    ("silent", QmpTimeout), ("closes", QmpError), ("garbage", QmpError),
    ("not-qmp", QmpError), ("silent-after-greeting", QmpTimeout), ("endless", QmpError),
])
def test_a_hostile_or_dead_peer_is_a_typed_error_within_the_timeout(tmp_path, peer, error):
    def script(conn, reader) -> None:
        if peer == "silent":
            time.sleep(1.5)
        elif peer == "garbage":
            conn.sendall(b"\x00\xff not json\n")
        elif peer == "not-qmp":
            send(conn, {"hello": 1})
        elif peer == "silent-after-greeting":
            send(conn, GREETING)
            time.sleep(1.5)
        elif peer == "endless":
            send(conn, GREETING)
            while True:
                conn.sendall(b"x" * 65536)

    started = time.monotonic()
    with pytest.raises(error):
        QmpClient(serve(tmp_path, script), timeout=0.5)
    assert time.monotonic() - started < 3


def test_no_qemu_at_the_socket(tmp_path):
    with pytest.raises(QmpError, match="cannot reach QMP"):
        QmpClient(str(tmp_path / "none.sock"), timeout=0.5)


def late_answers(conn, reader) -> None:
    """Answers the first command only after the next one came (its caller gave up on it),
    then the next one; then an answer to a request nobody made."""
    send(conn, GREETING)
    request = json.loads(reader.readline())
    send(conn, {"return": {}, "id": request["id"]})
    first = json.loads(reader.readline())
    second = json.loads(reader.readline())
    send(conn, {"return": {"status": "late"}, "id": first["id"]})
    send(conn, {"return": {"status": "running"}, "id": second["id"]})
    third = json.loads(reader.readline())
    send(conn, {"return": {}, "id": third["id"] + 7})


def test_a_request_given_up_does_not_take_the_next_ones_answer(tmp_path):
    """A timeout or Ctrl-C between a request and its answer (vm-migrate's rollback then asks
    migrate_cancel on the same session): the late answer is dropped, not taken for the next
    request's; an answer to a request never made is still refused."""
    with QmpClient(serve(tmp_path, late_answers), timeout=5) as qmp:
        with pytest.raises(QmpTimeout):
            qmp.execute("query-status", timeout=0.2)
        assert qmp.execute("query-status") == {"status": "running"}
        with pytest.raises(QmpError, match="out of turn"):
            qmp.execute("query-status")
