"""``vm-migrate``'s refusals before anything moves: bad options, no QEMU at the socket, a
source VM that is not running - each a message and its exit code, never a traceback.
The migration itself: tests/e2e/test_qemu_migration.py."""

from __future__ import annotations

import errno
import json
import socket
import threading

import pytest

from service import methods
from service.device_service import DeviceService
from service.errors import ServiceError

from .conftest import run_main


def args(tmp_path, uri: str = "tcp:127.0.0.1:4444") -> list[str]:
    return ["vm-migrate", "--qmp-from", str(tmp_path / "src.qmp"), "--qmp-to",
            str(tmp_path / "dst.qmp"), "--from", str(tmp_path / "b1.sock"), "--to",
            str(tmp_path / "b2.sock"), "--uri", uri]


def test_a_bad_uri_is_a_usage_error(tmp_path, capsys):
    code, _, err = run_main(capsys, *args(tmp_path, "4444"))
    assert code == 2 and "--uri" in err and "Traceback" not in err


def test_no_qemu_at_the_socket_is_refused(tmp_path, capsys):
    code, _, err = run_main(capsys, *args(tmp_path))
    assert code == 1 and "cannot reach QMP" in err and "Traceback" not in err


def test_a_source_vm_that_is_not_running_is_refused(tmp_path, capsys):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "src.qmp"))
    listener.listen(1)

    def paused_qemu() -> None:
        conn, _ = listener.accept()
        reader = conn.makefile("rb")
        conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\n')
        while line := reader.readline():
            request = json.loads(line)
            answer = {"status": "paused", "running": False} \
                if request["execute"] == "query-status" else {}
            conn.sendall(json.dumps({"return": answer, "id": request["id"]}).encode() + b"\n")
        conn.close()

    threading.Thread(target=paused_qemu, daemon=True).start()
    code, _, err = run_main(capsys, *args(tmp_path))
    assert code == 1 and "Traceback" not in err
    assert "paused, not running" in " ".join(err.split())


def test_cut_and_cancel_need_a_migration_out():
    service = DeviceService("T", "full", seed=1)
    for name in ("migrate.cut", "migrate.cancel"):
        with pytest.raises(ServiceError) as refused:
            methods.call(service, name)
        assert refused.value.errno == errno.ENOENT and "not migrating out" in str(refused.value)
