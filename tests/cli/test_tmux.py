"""The live status view on a real 80x24 terminal: tmux runs it, capture-pane reads the screen,
send-keys presses Tab and q; afterwards the terminal is as it was (canonical mode, echo)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from .conftest import FIXTURES, ROOT, cli

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(server: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", server, *args], capture_output=True, text=True,
                          timeout=10).stdout


def wait_for(server: str, text: str, limit: float = 20.0) -> str:
    deadline = time.monotonic() + limit
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux(server, "capture-pane", "-p", "-t", "view")
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared on the screen:\n{screen}")


def test_live_status_in_tmux(daemons):
    first = daemons("T", "full", "--traffic", "synthetic", "--rate", "500")
    second = daemons("U", "smartnic")
    assert cli("load", str(FIXTURES / "xdp_firewall.o"), "--device", str(first.path),
               "--attach").returncode == 0
    server = f"offload-test-{os.getpid()}"
    command = " ".join(shlex.quote(part) for part in (
        "env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "cli.main", "status", "--device",
        str(first.path), "--device", str(second.path), "--interval", "0.2"))
    terminal = "stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)' | tr '\\n' ' '"
    tmux(server, "new-session", "-d", "-s", "view", "-x", "80", "-y", "24", "-c", str(ROOT),
         f"{command}; echo status-exited-$?; {terminal}; echo; sleep 30")
    try:
        screen = wait_for(server, "xdp_firewall")
        assert "T  full (ISA v4)" in screen and "BPF_OFFLOAD" in screen
        screen = wait_for(server, "blocked_v4")
        # the rate sparkline fills in once a few refreshes have passed
        deadline = time.monotonic() + 20
        while not any(row.split()[:1] == ["pass"] and "█" in row and "/s" in row
                      for row in screen.splitlines()):
            assert time.monotonic() < deadline, screen
            time.sleep(0.2)
            screen = tmux(server, "capture-pane", "-p", "-t", "view")
        rows = screen.rstrip("\n").split("\n")
        assert len(rows) <= 24 and all(len(row) <= 80 for row in rows)
        tmux(server, "send-keys", "-t", "view", "Tab")
        screen = wait_for(server, "U  smartnic")
        assert "no program loaded" in screen and "xdp_firewall" not in screen
        tmux(server, "send-keys", "-t", "view", "1")
        wait_for(server, "T  full")
        tmux(server, "send-keys", "-t", "view", "q")
        screen = wait_for(server, "status-exited-0")
        assert "icanon echo" in screen, screen  # cbreak mode is gone, echo is back
    finally:
        tmux(server, "kill-server")
