"""A daemon's real ports: the --wire and --vhost-user options."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

from offload.caps import load_profile
from offload.device import build_device
from offload.device.udp_wire import UdpWire
from service.errors import UsageError
from service.ports import parse_wire

from .conftest import ROOT


def test_wire_addresses_parse():
    assert parse_wire("udp:127.0.0.1:5001=127.0.0.1:5002") == (("127.0.0.1", 5001),
                                                                ("127.0.0.1", 5002), False)
    assert parse_wire("udp:[::1]:5001=[::1]:5002")[:2] == (("::1", 5001), ("::1", 5002))
    assert parse_wire("udp:127.0.0.1:5001=127.0.0.1:5002,learn")[2] is True
    for bad in ("tcp:1.2.3.4:5=1.2.3.4:6", "udp:127.0.0.1:5001", "udp:127.0.0.1:x=h:1",
                "udp:127.0.0.1:5001=127.0.0.1:5002,learning",
                "udp:127.0.0.1:0=127.0.0.1:1", "udp:127.0.0.1:1=127.0.0.1:70000"):
        with pytest.raises(UsageError, match="--wire"):
            parse_wire(bad)


def serve(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "device", "serve", "--name", "p", "--socket",
         str(tmp_path / "p.sock"), "--state-dir", str(tmp_path / "p.st"), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def test_a_wire_that_cannot_bind_is_a_usage_error(tmp_path):
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        done = serve(tmp_path, "--wire", f"udp:127.0.0.1:{port}=127.0.0.1:9")
    finally:
        taken.close()
    assert done.returncode == 2
    assert f"--wire: cannot bind 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_vhost_user_socket_in_a_missing_folder_is_a_usage_error(tmp_path):
    done = serve(tmp_path, "--vhost-user", str(tmp_path / "missing" / "g.vhost"))
    assert done.returncode == 2 and "--vhost-user: cannot listen on" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_learning_wire_follows_the_peer_it_last_heard_from():


    pair = build_device("w", load_profile("full"))
    old, new = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    for peer in (old, new):
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
    frame = b"\xff" * 6 + b"\x52\x54\x00\x00\x00\x0b" + b"\x08\x06" + bytes(28)
    for learn, expect in ((False, old), (True, new)):
        wire = UdpWire(pair.device, ("127.0.0.1", 0), old.getsockname(), threading.Lock(),
                       learn).start()
        try:
            new.sendto(frame, wire.local)  # the guest's RARP from the device it moved to
            deadline = time.monotonic() + 5
            while wire.received < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            wire.send(frame)
            assert expect.recv(100) == frame
            assert wire.moves == (1 if learn else 0)
        finally:
            wire.close()
