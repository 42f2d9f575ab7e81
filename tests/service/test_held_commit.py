"""A held migration after its commit, through real daemons: the source keeps its state paused
until ``migrate.release`` lets it go; ``migrate.cancel`` resumes it with its own (original,
unlowered) program instead and ``migrate.undo`` empties the destination - what ``vm-migrate``
does when QEMU's switchover fails after the device's final round. The v4 port filter moves
from a full device onto a smartnic (ISA v3), which runs it lowered."""

from __future__ import annotations

import errno
import struct

from .conftest import PORT, migration_until, refused_errno


def test_release_lets_the_committed_state_go(held_commit):
    src, dst, _ = held_commit
    (kept,) = src.call("status")["programs"]  # still here, paused, until released
    assert kept["attach"] and kept["isa"] == 4
    (lowered,) = dst.call("status")["programs"]
    assert lowered["attach"] and lowered["isa"] == 3
    src.call("migrate.release")
    picture = migration_until(src, lambda p: p.get("state") == "completed")
    assert picture["report"]["downtime"] > 0
    assert src.call("status")["programs"] == []
    assert dst.call("map.lookup", map="blocked_ports", key=PORT)["value"] == \
        struct.pack("<Q", 2)


def test_cancel_after_the_commit_resumes_the_source_and_undo_empties_the_destination(
        held_commit):
    src, dst, dst_path = held_commit
    src.call("migrate.cancel")
    picture = migration_until(src, lambda p: p.get("state") == "cancelled")
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
    assert refused_errno(dst, "migrate.undo") == errno.ENOENT  # once
    assert refused_errno(src, "migrate.undo") == errno.ENOENT  # a source has nothing to undo
    # the source migrates again and the emptied destination takes it (an empty one only)
    src.call("migrate.start", to=dst_path)
    assert migration_until(src, lambda p: p.get("state") in ("completed", "failed", "refused"))[
        "state"] == "completed"
