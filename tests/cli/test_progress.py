"""Progress bars: on stderr while save, restore and migrate run when it is a terminal; never
in a pipe, never with --json (scripts read clean output)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from cli import cmd_migrate, cmd_snapshot
from cli.main import main

from .test_stream_memory import CHUNK, StandInDaemon, payload  # noqa: F401 - a fixture


def run(args: list[str], terminal: bool) -> tuple[int, str]:
    out = Console(file=io.StringIO(), width=100)
    err = Console(file=io.StringIO(), width=100, force_terminal=terminal)
    code = main(args, out, err)
    return code, err.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def snapshot_daemon(payload, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setattr(cmd_snapshot, "DeviceClient", StandInDaemon(payload))
    monkeypatch.setattr(cmd_snapshot, "CHUNK", CHUNK)
    path = str(tmp_path / "s.snap")
    assert run(["save", "--device", "d", "-o", path], False)[0] == 0
    return path


def test_save_and_restore_show_a_bar_on_a_terminal_only(snapshot_daemon, capsys):
    save = ["save", "--device", "d", "-o", snapshot_daemon]
    restore = ["restore", snapshot_daemon, "--device", "d", "--dry-run"]
    for args, label in ((save, "checkpoint"), (restore + ["--json"], "restore"),
                        (restore, "restore")):
        code, shown = run(args, terminal=False)
        assert code == 0 and shown == "", shown
        code, shown = run(args, terminal=True)
        if "--json" in args:
            assert code == 0 and label not in shown and "\x1b" not in shown, shown
        else:
            assert code == 0 and label in shown and "MB" in shown, shown
    capsys.readouterr()


class Migration:
    """A source daemon whose migration runs two polls, then completes."""

    def __init__(self) -> None:
        self.polls = 0

    def __call__(self, path: str) -> Migration:
        return self

    def __enter__(self) -> Migration:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def call(self, method: str, **params: Any) -> Any:
        if method == "migrate.start":
            return {"started": True}
        self.polls += 1
        state = "completed" if self.polls > 2 else "precopy"
        return {"migration": {"state": state, "done": self.polls * 1000, "peer": "b",
                              "report": {"rounds": 1} if state == "completed" else {}}}


def test_migrate_shows_a_bar_on_a_terminal_but_not_with_json(monkeypatch, capsys):
    monkeypatch.setattr(cmd_migrate, "POLL", 0.0)
    args = ["migrate", "--from", "a.sock", "--to", "b.sock"]
    for extra, terminal, shown_expected in (([], True, True), ([], False, False),
                                            (["--json"], True, False)):
        monkeypatch.setattr(cmd_migrate, "DeviceClient", Migration())
        code, shown = run(args + extra, terminal)
        assert code == 0
        assert ("migrate" in shown) == shown_expected, shown
    capsys.readouterr()
