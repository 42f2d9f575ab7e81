"""``migrate --prove`` and ``vm-migrate --prove`` through real daemons, and the bounded
rounds in ``migrate --json``. (A proof that finds a difference: tests/service/
test_migrate_proof.py, where the lowering can be made wrong.)"""

from __future__ import annotations

import json
import socket
import threading

from service.client import DeviceClient
from service.frames import frame
from service.vm_migration import VmMigration

from .conftest import FIXTURES, cli

BLOCKED = "10.0.0.66"
FRAMES = [frame("10.0.0.1", "10.0.0.2", 6), frame(BLOCKED, "10.0.0.2", 17)] * 3


def source(daemons, *extra: str):
    """A full-profile daemon running the v4 firewall, with a blocked address and traffic."""
    a = daemons("a", "full", *extra)
    assert cli("load", str(FIXTURES / "xdp_firewall_v4.o"), "--device", str(a.path),
               "--attach").returncode == 0
    with DeviceClient(str(a.path)) as client:
        client.call("map.update", map="blocked_v4", key=socket.inet_aton(BLOCKED),
                    value=bytes(8))
        client.call("inject", frames=FRAMES)
    return a


def destination_program(b, a) -> dict:
    """The program the migration left on ``b``, at once: ``migrate`` and ``vm-migrate`` end
    only when the destination has let go of its device. A failure shows both migrations."""
    with DeviceClient(str(b.path)) as client, DeviceClient(str(a.path)) as at_source:
        status = client.call("status")
        assert status["programs"], (status["migration"], at_source.call("status")["migration"])
        return status["programs"][0]


def test_migrate_prove_onto_a_lowering_profile_and_back_without_a_sample(daemons):
    a = source(daemons, "--sample-ring", "16")
    b = daemons("b", "smartnic")  # samples nothing
    done = cli("migrate", "--from", str(a.path), "--to", str(b.path), "--prove", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["report"]
    proof = report["proof"]
    assert proof["ok"] and proof["rewritten"] and proof["frames"] == 6
    assert proof["generated"] > 0 and proof["branches_covered"] > 0
    assert proof["final"]["frames"] == 6 and proof["final"]["inside_downtime"]
    assert proof["final"]["seconds"] <= report["downtime"]
    summary = report["rounds_summary"]
    assert summary["count"] >= 2 and summary["first"][0] == summary["max"] > 0
    assert "entries_per_round" not in report  # only with --rounds-detail
    with DeviceClient(str(b.path)) as client:
        assert client.call("inject", frames=FRAMES[1:2])["actions"] == ["drop"]

    back = cli("migrate", "--from", str(b.path), "--to", str(a.path), "--prove")
    assert back.returncode == 1
    assert "no sampled frames to prove with" in " ".join(back.stderr.split())
    assert "--sample-ring N" in back.stderr and "Traceback" not in back.stderr
    assert destination_program(b, a)["attach"] == "xdp:hw on b"
    with DeviceClient(str(a.path)) as client:
        assert client.call("status")["programs"] == []

    back = cli("migrate", "--from", str(b.path), "--to", str(a.path), "--json",
               "--rounds-detail")
    assert back.returncode == 0, back.stderr
    report = json.loads(back.stdout)["report"]
    assert report["entries_per_round"][0] == report["rounds_summary"]["first"][0]
    assert len(report["entries_per_round"]) == report["rounds_summary"]["count"]
    assert report["proof"] is None


def test_the_report_table_shows_the_proof():
    from io import StringIO

    from rich.console import Console

    from cli.cmd_migrate import report_table

    proof = {"program": "xdp_firewall", "rewritten": True, "frames": 6, "generated": 256,
             "branches_covered": 16, "branches_total": 30, "ok": True, "seconds": 0.155,
             "final": {"frames": 6, "generated": 0, "seconds": 0.0031, "inside_downtime": True}}
    console = Console(file=StringIO(), width=200)
    console.print(report_table("completed", {"rounds": 0, "entries_per_round": [3, 0],
                                             "downtime": 0.0042, "proof": proof}, {}))
    text = console.file.getvalue()
    assert "proof" in text and "262 frames (256 generated), 16/30 branches " \
        "covered on the full copy (155.0 ms); 6 frames on the final state (3.1 ms of the " \
        "downtime): xdp_firewall behaves as on the source" in text


def test_rounds_are_summarised_within_bounds():
    from cli.cmd_migrate import rounds_json

    report = rounds_json({"entries_per_round": list(range(100_000)), "rounds": 99_998},
                         detail=False)
    assert report["rounds_summary"] == {"count": 100_000, "first": [0, 1, 2, 3],
                                        "last": [99_996, 99_997, 99_998, 99_999],
                                        "total": sum(range(100_000)), "max": 99_999}
    assert "entries_per_round" not in report and len(json.dumps(report)) < 300
    assert rounds_json({"entries_per_round": [5, 3]}, detail=False)["rounds_summary"] == {
        "count": 2, "first": [5, 3], "last": [], "total": 8, "max": 5}
    assert rounds_json({"entries_per_round": [5, 3]}, detail=True)["entries_per_round"] == [5, 3]


class FakeQemu:
    """A QMP socket answering as a QEMU whose migration reaches pre-switchover at once and
    completes after migrate-continue (``incoming``: the destination, waiting)."""

    def __init__(self, path: str, incoming: bool) -> None:
        self.incoming = incoming
        self.commands: list[str] = []
        self.state = "none"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        threading.Thread(target=self._serve, daemon=True).start()

    def _answer(self, command: str) -> object:
        if command == "query-status":
            return {"status": "inmigrate" if self.incoming else "running"}
        if command == "migrate":
            self.state = "pre-switchover"
        elif command == "migrate-continue":
            self.state = "completed"
        elif command == "query-migrate":
            return {"status": self.state, "total-time": 120, "downtime": 30,
                    "setup-time": 1, "ram": {"transferred": 4096}}
        return {}

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        reader = conn.makefile("rb")
        conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}}\n')
        while line := reader.readline():
            request = json.loads(line)
            self.commands.append(request["execute"])
            answer = self._answer(request["execute"])
            conn.sendall(json.dumps({"return": answer, "id": request["id"]}).encode() + b"\n")
        conn.close()


def test_vm_migrate_prove_carries_the_proof(daemons, tmp_path):
    a = source(daemons, "--sample-ring", "8")
    b = daemons("b", "smartnic")
    src, dst = FakeQemu(str(tmp_path / "src.qmp"), False), FakeQemu(str(tmp_path / "dst.qmp"),
                                                                     True)
    report = VmMigration(str(tmp_path / "src.qmp"), str(tmp_path / "dst.qmp"), str(a.path),
                         str(b.path), "tcp:127.0.0.1:4444", timeout=60, prove=True,
                         samples=4).run()
    assert report.proof is not None and report.proof["frames"] == 4
    assert report.proof["final"]["frames"] == 4 and report.as_dict()["proof"] == report.proof
    assert "migrate-continue" in src.commands and dst.commands[0] == "qmp_capabilities"
    assert destination_program(b, a)["attach"] == "xdp:hw on b"
