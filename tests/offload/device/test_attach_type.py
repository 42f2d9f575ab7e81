"""A program loaded for a map entry (``SEC("xdp/devmap")``) keeps its attach type from the
loader through the control queue, the device and a snapshot to the restored device: only
such a program may read ``xdp_md.egress_ifindex``, as in the kernel."""

from __future__ import annotations

import pytest

from migrate.checkpoint import checkpoint
from migrate.codec import decode, encode
from migrate.restore import restore
from offload.caps import load_profile
from offload.device import build_device
from offload.driver import DriverError
from offload.isa import assemble
from offload.program import ProgramSpec
from offload.uapi import AttachType, ProgType

FULL = load_profile("full")
READS_EGRESS = tuple(assemble("ldxw %r0, [%r1+20]\nmov %r0, 2\nexit"))


def spec(attach: int) -> ProgramSpec:
    return ProgramSpec("egress", ProgType.XDP, READS_EGRESS, "GPL",
                       expected_attach_type=attach)


def test_a_devmap_program_reads_egress_ifindex_and_an_ordinary_one_is_refused():
    pair = build_device("src", FULL)
    handle = pair.driver.prog_load(spec(AttachType.XDP_DEVMAP))
    assert pair.device.objects.programs[handle].expected_attach_type == AttachType.XDP_DEVMAP
    assert pair.device.backend.programs[handle].expected_attach_type == AttachType.XDP_DEVMAP
    with pytest.raises(DriverError, match="invalid bpf_context access off=20 size=4"):
        pair.driver.prog_load(spec(0))


def test_the_attach_type_survives_a_snapshot_and_a_restore():
    pair = build_device("src", FULL)
    pair.driver.prog_load(spec(AttachType.XDP_DEVMAP))
    snapshot = decode(encode(checkpoint(pair.device)))
    (program,) = snapshot.programs
    assert program.spec.expected_attach_type == AttachType.XDP_DEVMAP
    target = build_device("dst", FULL)
    restore(snapshot, target.driver)
    (restored,) = target.device.objects.programs.values()
    assert restored.expected_attach_type == AttachType.XDP_DEVMAP
