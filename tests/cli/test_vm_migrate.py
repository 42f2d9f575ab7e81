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
from service.client import DeviceClient
from service.device_service import DeviceService
from service.errors import ServiceError

from .conftest import migration_until, run_main


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


class ScriptedQmp:
    """A QMP peer that reports a migration in a given state and records the commands it
    gets: how the source QEMU looks to ``--recover`` after ``vm-migrate`` died."""

    def __init__(self, path, migration: str) -> None:
        self.migration = migration
        self.commands: list[str] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            reader = conn.makefile("rb")
            conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\n')
            while line := reader.readline():
                request = json.loads(line)
                self.commands.append(request["execute"])
                if request["execute"] == "migrate_cancel":
                    self.migration = "cancelled"
                answer = {"status": self.migration} if request["execute"] == "query-migrate" \
                    else {"status": "running", "running": True} \
                    if request["execute"] == "query-status" else {}
                conn.sendall(json.dumps({"return": answer, "id": request["id"]}).encode()
                             + b"\n")
            conn.close()


def recover_line(tmp_path, src: DeviceClient, dst: DeviceClient) -> list[str]:
    return ["vm-migrate", "--recover", "--qmp-from", str(tmp_path / "src.qmp"),
            "--from", src.path, "--to", dst.path]


def test_recover_after_qemu_completed_lets_the_source_state_go(held_commit, tmp_path, capsys):
    src, dst, _ = held_commit
    qemu = ScriptedQmp(tmp_path / "src.qmp", "completed")
    code, out, err = run_main(capsys, *recover_line(tmp_path, src, dst))
    assert code == 0, err
    assert "QEMU had completed" in " ".join(out.split()) and "migrate_cancel" not in qemu.commands
    migration_until(src, lambda p: p.get("state") == "completed")
    assert src.call("status")["programs"] == []
    (moved,) = dst.call("status")["programs"]
    assert moved["attach"] and moved["isa"] == 3


def test_recover_before_the_switchover_rolls_both_back(held_commit, tmp_path, capsys):
    src, dst, _ = held_commit
    line = recover_line(tmp_path, src, dst)
    qemu = ScriptedQmp(tmp_path / "src.qmp", "pre-switchover")
    code, out, err = run_main(capsys, *line, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["recovered"] and not report["problems"]
    assert "migrate_cancel" in qemu.commands
    assert "the source device resumed with its state" in report["steps"]
    assert "the destination device removed its copy" in report["steps"]
    (kept,) = src.call("status")["programs"]  # its own v4 program runs on
    assert kept["attach"] and kept["isa"] == 4
    assert dst.call("status")["programs"] == []
    code, out, _ = run_main(capsys, *line)  # once more: nothing left to do
    assert code == 0 and "nothing to recover" in out


def test_recover_needs_the_source_qemu_to_decide(held_commit, tmp_path, capsys):
    src, dst, _ = held_commit
    code, _, err = run_main(capsys, *recover_line(tmp_path, src, dst))
    assert code == 1 and "nothing was changed" in " ".join(err.split())
    assert src.call("status")["migration"]["phase"] == "committed"  # left as it was


def test_migrating_needs_the_destination_qemu_and_uri(tmp_path, capsys):
    code, _, err = run_main(capsys, "vm-migrate", "--qmp-from", "x", "--from", "a", "--to", "b")
    assert code == 2 and "--qmp-to and --uri" in err
