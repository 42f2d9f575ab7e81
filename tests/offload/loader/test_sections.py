"""Section names to program types, after libbpf's SEC() conventions."""

from __future__ import annotations

import pytest

from offload.loader.sections import program_type
from offload.uapi import ProgFlags, ProgType


@pytest.mark.parametrize(("section", "expected"), [
    ("xdp", (ProgType.XDP, 0)),
    ("xdp.frags", (ProgType.XDP, ProgFlags.XDP_HAS_FRAGS)),
    ("xdp/devmap", (ProgType.XDP, 0)),
    ("xdp.frags/devmap", (ProgType.XDP, ProgFlags.XDP_HAS_FRAGS)),
    ("tc", (ProgType.SCHED_CLS, 0)),
    ("tc/ingress", (ProgType.SCHED_CLS, 0)),
    ("classifier", (ProgType.SCHED_CLS, 0)),
    ("action", (ProgType.SCHED_ACT, 0)),
    ("socket", (ProgType.SOCKET_FILTER, 0)),
    ("kprobe/do_unlinkat", (ProgType.KPROBE, 0)),
    ("kretprobe/do_unlinkat", (ProgType.KPROBE, 0)),
    ("tp/syscalls/sys_enter_write", (ProgType.TRACEPOINT, 0)),
    ("raw_tp.w/bpf_test_finish", (ProgType.RAW_TRACEPOINT_WRITABLE, 0)),
    ("fentry/tcp_v4_connect", (ProgType.TRACING, 0)),
    ("cgroup/connect6", (ProgType.CGROUP_SOCK_ADDR, 0)),
    ("cgroup/sock_create", (ProgType.CGROUP_SOCK, 0)),
    ("cgroup_skb/egress", (ProgType.CGROUP_SKB, 0)),
    ("sk_skb/stream_verdict", (ProgType.SK_SKB, 0)),
    ("lsm/file_open", (ProgType.LSM, 0)),
])
def test_known_sections(section: str, expected: tuple[ProgType, int]) -> None:
    assert program_type(section) == expected


@pytest.mark.parametrize("section", [".text", "xdpfoo", "xdp_frags", "tcx_ingress", "maps",
                                     "cgroup/bind_unix", "license", ""])
def test_sections_that_name_no_program(section: str) -> None:
    assert program_type(section) is None
