"""kernel_available(): a yes/no with a reason, and the skip path when bpf() is refused."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from offload.backends.kernel import (
    BpfSyscallError,
    KernelMap,
    availability,
    kernel_available,
    syscall,
)
from offload.maps import MapSpec
from offload.uapi import MapType

from .skipping import require_kernel


@pytest.fixture
def refused(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every bpf() call fails with EPERM, as under a seccomp filter or without CAP_BPF."""
    kernel_available.cache_clear()
    monkeypatch.setattr(syscall, "invoke", lambda cmd, addr, size: (-1, errno.EPERM))
    yield
    kernel_available.cache_clear()


def test_the_answer_is_a_flag_and_a_sentence() -> None:
    usable, reason = kernel_available()
    assert isinstance(usable, bool) and "bpf()" in reason
    if usable:
        assert reason.startswith("bpf() works on Linux ")
    else:
        assert ": " in reason  # the refusal follows the summary


@pytest.mark.usefixtures("refused")
def test_eperm_makes_the_backend_unavailable_with_the_errno_named() -> None:
    usable, reason = kernel_available()
    assert not usable
    assert "bpf() is not usable" in reason and "EPERM" in reason and "BPF_MAP_CREATE" in reason


@pytest.mark.usefixtures("refused")
def test_eperm_skips_kernel_tests_with_that_reason() -> None:
    with pytest.raises(pytest.skip.Exception) as info:
        require_kernel()
    assert "host-kernel backend unavailable" in str(info.value) and "EPERM" in str(info.value)


@pytest.mark.usefixtures("refused")
def test_eperm_reaches_callers_as_an_errno_error() -> None:
    with pytest.raises(BpfSyscallError) as info:
        KernelMap.create(MapSpec("m", MapType.ARRAY, 4, 4, 1))
    assert info.value.errno == errno.EPERM and info.value.name == "EPERM"
    assert "CAP_BPF" in str(info.value) and "map 'm'" in str(info.value)


def test_refusals_are_explained_from_the_process_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(availability.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(availability, "_read", lambda path: "2" if "unprivileged" in path
                        else "Name:\tpython\nSeccomp:\t2\n")
    why = availability.explain_refusal(errno.EPERM)
    assert "not root (euid 1000)" in why
    assert "unprivileged_bpf_disabled is 2" in why
    assert "seccomp filter" in why
    monkeypatch.setattr(availability.os, "geteuid", lambda: 0)
    monkeypatch.setattr(availability, "_read", lambda path: "CapEff:\t00000000a80425fb\n")
    assert "root but without CAP_BPF" in availability.explain_refusal(errno.EPERM)
    monkeypatch.setattr(availability, "_read", lambda path: "CapEff:\t000001ffffffffff\n")
    assert "security module" in availability.explain_refusal(errno.EPERM)
    monkeypatch.setattr(availability, "_read", lambda path: None)
    assert "CONFIG_BPF_SYSCALL" in availability.explain_refusal(errno.ENOSYS)
