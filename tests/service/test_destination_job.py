"""The destination side of a daemon's live migration: its job shows an end only once the
device is free again, so whoever sees ``completed`` gets a fresh status - the committed
program - rather than the picture the loop kept from before the migration."""

from __future__ import annotations

import socket
import time

from migrate.live import MigrationSource
from service import migration as jobs
from service.device_service import DeviceService
from service.methods import call

from .conftest import FIXTURES


def test_the_destination_job_ends_after_it_lets_the_device_go(monkeypatch):
    source, target = DeviceService("A", "full", seed=1), DeviceService("B", "smartnic", seed=1)
    call(source, "load", {"object": (FIXTURES / "xdp_port_filter_v4.o").read_bytes(),
                          "name": "xdp_port_filter", "program": "xdp_port_filter",
                          "attach": True})
    held_at_the_end: list[bool] = []
    finish = jobs.Migration.finish

    def watched(job, *args, **kwargs):
        if job.role == "destination":
            held_at_the_end.append(target.lock.locked())
        finish(job, *args, **kwargs)

    monkeypatch.setattr(jobs.Migration, "finish", watched)
    a, b = socket.socketpair()
    job = jobs.start_destination(target, b, "test")
    MigrationSource(source.device, lock=source.lock).run(a)
    deadline = time.monotonic() + 20
    while job.state not in jobs.FINISHED:
        assert time.monotonic() < deadline, "the destination never ended"
        time.sleep(0.01)
    assert job.state == "completed" and held_at_the_end == [False]
    (program,) = target.status().programs
    assert program["attach"] and program["isa"] == 3
