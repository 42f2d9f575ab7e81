"""Ctrl-C during ``migrate`` through real daemons: the migration is cancelled, the source runs
on with its state and traffic, the destination is emptied, both report they no longer
migrate; plus the rough edges of the command (same daemon twice, a long report)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from cli.cmd_migrate import rounds_text
from service.protocol import RemoteError

from .conftest import FIXTURES, ROOT, cli, run_main
from .test_daemon import call, status


def _start(a, b, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "migrate", "--from", str(a.path), "--to",
         str(b.path), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _wait(path, predicate, seconds=60.0):  # returns as soon as it holds; slow only under load
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        picture = status(path)["migration"] or {}
        if predicate(picture):
            return picture
        time.sleep(0.02)
    raise AssertionError(f"no such migration state on {path}: {picture}")


def test_ctrl_c_cancels_the_migration(daemons):
    """SIGINT in the pre-copy rounds (each phase before the cut is cancelled in-process in
    tests/migrate/live/test_cancel.py; starting daemons is what costs time here)."""
    a = daemons("A", "full", "--traffic", "synthetic", "--rate", "2000")
    b = daemons("B", "full")
    assert cli("load", str(FIXTURES / "xdp_firewall.o"), "--device", str(a.path),
               "--attach").returncode == 0
    process = _start(a, b, "--downtime-ms", "0.0001", "--max-rounds", "1000000")
    # pre-copy rounds: the copy (a few KiB) is long done when the stream has moved 20 KB
    _wait(a.path, lambda p: p.get("state") == "running" and p.get("done", 0) > 20_000)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1, err
    assert "cancelled" in err and "Traceback" not in err
    assert "the destination was emptied" in err.splitlines()[-1]  # one line, even in a pipe
    source, dest = status(a.path), status(b.path)
    assert source["migration"]["state"] == "cancelled"
    assert dest["migration"]["state"] == "aborted"
    assert dest["programs"] == [] and dest["maps"] == []
    assert source["programs"][0]["attach"] == "xdp:hw on A"
    counted = source["programs"][0]["counters"]["pass"] + source["programs"][0]["counters"]["drop"]
    time.sleep(0.2)  # traffic goes on through the source's program
    later = status(a.path)["programs"][0]["counters"]
    assert later["pass"] + later["drop"] > counted
    with pytest.raises(RemoteError) as info:  # nothing left to cancel
        call(a.path, "migrate.cancel")
    assert info.value.name == "ENOENT"


def test_the_same_daemon_twice_is_a_usage_error(capsys, tmp_path):
    same = str(tmp_path / "a.sock")
    code, _, err = run_main(capsys, "migrate", "--from", same, "--to", f"unix:{same}")
    assert code == 2 and "same daemon" in err and "already migrating" not in err


def test_a_long_report_lists_a_few_rounds():
    text = rounds_text(list(range(100_000)))
    assert text.startswith("0, 1, 2, 3, ... 99992 rounds") and text.endswith("99998, 99999")
    assert len(text) < 200
    assert rounds_text([5, 3]) == "5, 3"
