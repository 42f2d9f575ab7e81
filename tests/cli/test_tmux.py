"""The live status view on a real terminal: tmux runs it, capture-pane reads the screen."""

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
    device = daemons("T", "full", "--traffic", "synthetic", "--rate", "500")
    assert cli("load", str(FIXTURES / "xdp_firewall.o"), "--device", str(device.path),
               "--attach").returncode == 0
    server = f"offload-test-{os.getpid()}"
    command = " ".join(shlex.quote(part) for part in (
        "env", f"PYTHONPATH={ROOT}", sys.executable, "-m", "cli.main", "status", "--device",
        str(device.path), "--interval", "0.2"))
    tmux(server, "new-session", "-d", "-s", "view", "-x", "110", "-y", "45", "-c", str(ROOT),
         command + "; echo status-exited-$?; sleep 30")
    try:
        wait_for(server, "xdp_firewall")
        screen = wait_for(server, "blocked_v4")  # the map table may be drawn a moment later
        assert "device T" in screen and "VIRTIO_NET_F_BPF_OFFLOAD" in screen
        wait_for(server, "/s")  # rates appear once the view has refreshed
        tmux(server, "send-keys", "-t", "view", "C-c")
        wait_for(server, "status-exited-0")
    finally:
        tmux(server, "kill-server")
