"""A held migration after its commit, through real daemons: the source keeps its state paused
until ``migrate.release`` lets it go; ``migrate.cancel`` resumes it with its own (original,
unlowered) program instead and ``migrate.undo`` empties the destination - what ``vm-migrate``
does when QEMU's switchover fails after the device's final round. The v4 port filter moves
from a full device onto a smartnic (ISA v3), which runs it lowered."""

from __future__ import annotations

import errno
import struct
import time

import pytest

from service.client import DeviceClient
from service.errors import ServiceError

from .conftest import FIXTURES

FILTER_V4 = FIXTURES / "xdp_port_filter_v4.o"
PORT = struct.pack("<H", 6000)


def _until(client: DeviceClient, done, seconds: float = 20.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        picture = client.call("status")["migration"] or {}
        if done(picture):
            return picture
        assert time.monotonic() < deadline, picture
        time.sleep(0.02)


def _refused(client: DeviceClient, method: str) -> int:
    with pytest.raises(ServiceError) as refused:
        client.call(method)
    return refused.value.errno


@pytest.fixture
def committed(daemons):
    """A (full, the v4 filter with a blocked port counted twice) migrated held onto B
    (smartnic) and cut: phase committed."""
    a, b = daemons("A", "full"), daemons("B", "smartnic")
    src, dst = DeviceClient(str(a.path)), DeviceClient(str(b.path))
    src.call("load", object=FILTER_V4.read_bytes(), name="xdp_port_filter",
             program="xdp_port_filter", attach=True)
    src.call("map.update", map="blocked_ports", key=PORT, value=struct.pack("<Q", 2))
    src.call("migrate.start", to=str(b.path), hold=True)
    picture = _until(src, lambda p: p.get("phase") == "precopy")
    assert picture["plan"] == "REWRITABLE"
    assert _refused(src, "migrate.release") == errno.EAGAIN  # not committed yet
    src.call("migrate.cut")
    _until(src, lambda p: p.get("phase") == "committed")
    _until(dst, lambda p: p.get("state") == "completed")  # as vm-migrate waits for it
    yield src, dst, str(b.path)
    src.close()
    dst.close()


def test_release_lets_the_committed_state_go(committed):
    src, dst, _ = committed
    (kept,) = src.call("status")["programs"]  # still here, paused, until released
    assert kept["attach"] and kept["isa"] == 4
    (lowered,) = dst.call("status")["programs"]
    assert lowered["attach"] and lowered["isa"] == 3
    src.call("migrate.release")
    picture = _until(src, lambda p: p.get("state") == "completed")
    assert picture["report"]["downtime"] > 0
    assert src.call("status")["programs"] == []
    assert dst.call("map.lookup", map="blocked_ports", key=PORT)["value"] == \
        struct.pack("<Q", 2)


def test_cancel_after_the_commit_resumes_the_source_and_undo_empties_the_destination(
        committed):
    src, dst, dst_path = committed
    src.call("migrate.cancel")
    picture = _until(src, lambda p: p.get("state") == "cancelled")
    assert "after the commit" in picture["reason"] and picture["phase"] == "committed"
    (program,) = src.call("status")["programs"]  # its own program, attached, not the copy
    assert program["attach"] and program["isa"] == 4
    assert src.call("map.lookup", map="blocked_ports", key=PORT)["value"] == \
        struct.pack("<Q", 2)
    assert dst.call("status")["programs"]  # the committed copy, until undone
    dst.call("migrate.undo")
    status = dst.call("status")
    assert status["programs"] == [] and status["maps"] == []
    assert status["migration"]["state"] == "undone"
    assert _refused(dst, "migrate.undo") == errno.ENOENT  # once
    assert _refused(src, "migrate.undo") == errno.ENOENT  # a source has nothing to undo
    # the source migrates again and the emptied destination takes it (an empty one only)
    src.call("migrate.start", to=dst_path)
    assert _until(src, lambda p: p.get("state") in ("completed", "failed", "refused"))[
        "state"] == "completed"
