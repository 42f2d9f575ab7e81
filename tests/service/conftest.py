"""Device daemons on Unix sockets, each in its own process as ``device serve`` runs it."""

from __future__ import annotations

import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.client import DeviceClient
from service.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "xdp"
STARTUP = 15.0  # seconds a daemon may take to listen (a loaded CI machine)


def answers(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class DaemonProcess:
    def __init__(self, path: Path, name: str, profile: str, *extra: str) -> None:
        self.path = path
        self.name = name
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "device", "serve", "--name", name, "--profile",
             profile, "--socket", str(path), "--seed", "7", *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + STARTUP
        while not answers(path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"daemon {name} did not start: {self.process.stderr.read()}")
            time.sleep(0.05)

    def stop(self) -> tuple[int, str, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return self.process.returncode, out, err


@pytest.fixture(autouse=True)
def state_home(tmp_path, monkeypatch):
    """Daemons started without --state-dir keep their state under the test's directory."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))


@pytest.fixture
def daemons(tmp_path):
    """A factory of daemons on sockets in tmp_path, all stopped at the end of the test; each
    keeps its state in tmp_path/NAME.state."""
    started: list[DaemonProcess] = []

    def start(name: str, profile: str = "full", *extra: str) -> DaemonProcess:
        if "--state-dir" not in extra:
            extra = (*extra, "--state-dir", str(tmp_path / f"{name}.state"))
        daemon = DaemonProcess(tmp_path / f"{name}.sock", name, profile, *extra)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


FILTER_V4 = FIXTURES / "xdp_port_filter_v4.o"
PORT = struct.pack("<H", 6000)


def migration_until(client: DeviceClient, done, seconds: float = 20.0) -> dict:
    """The device's migration picture once ``done`` holds (20 s at most)."""
    deadline = time.monotonic() + seconds
    while True:
        picture = client.call("status")["migration"] or {}
        if done(picture):
            return picture
        assert time.monotonic() < deadline, picture
        time.sleep(0.02)


def refused_errno(client: DeviceClient, method: str) -> int:
    """The errno of the refusal ``method`` must get."""
    with pytest.raises(ServiceError) as refused:
        client.call(method)
    return refused.value.errno


@pytest.fixture
def held_commit(daemons):
    """A (full, the v4 filter with a blocked port counted twice) migrated held onto B
    (smartnic) and cut: phase committed, as vm-migrate leaves it before QEMU's switchover
    (tests/service/test_held_commit.py, tests/cli/test_vm_migrate.py). Clients of A and B,
    and B's socket."""
    a, b = daemons("A", "full"), daemons("B", "smartnic")
    src, dst = DeviceClient(str(a.path)), DeviceClient(str(b.path))
    src.call("load", object=FILTER_V4.read_bytes(), name="xdp_port_filter",
             program="xdp_port_filter", attach=True)
    src.call("map.update", map="blocked_ports", key=PORT, value=struct.pack("<Q", 2))
    src.call("migrate.start", to=str(b.path), hold=True)
    picture = migration_until(src, lambda p: p.get("phase") == "precopy")
    assert picture["plan"] == "REWRITABLE"
    assert refused_errno(src, "migrate.release") == errno.EAGAIN  # not committed yet
    src.call("migrate.cut")
    migration_until(src, lambda p: p.get("phase") == "committed")
    migration_until(dst, lambda p: p.get("state") == "completed")  # as vm-migrate waits for it
    yield src, dst, str(b.path)
    src.close()
    dst.close()
