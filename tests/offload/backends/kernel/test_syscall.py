"""The syscall layer: errno names, hints, retries, architecture table (no kernel needed)."""

from __future__ import annotations

import errno

import pytest

from offload.backends.kernel import syscall
from offload.backends.kernel.attr import MapFdAttr
from offload.backends.kernel.syscall import BpfCmd, BpfSyscallError, SyscallUnavailable, bpf
from offload.errors import ErrnoError, OffloadError


def test_errors_are_errno_named_offload_errors() -> None:
    exc = BpfSyscallError(errno.E2BIG, "too big", command=BpfCmd.MAP_UPDATE_ELEM)
    assert isinstance(exc, ErrnoError) and isinstance(exc, OffloadError)
    assert exc.name == "E2BIG" and str(exc) == "E2BIG: too big"
    assert BpfSyscallError(syscall.ENOTSUPP, "no").name == "ENOTSUPP"
    assert str(BpfSyscallError(syscall.ENOTSUPP, "no")) == "ENOTSUPP: no"


def test_hints_prefer_the_command_then_fall_back() -> None:
    assert "not in the map" in syscall.hint(BpfCmd.MAP_LOOKUP_ELEM, errno.ENOENT)
    assert "CAP_BPF" in syscall.hint(BpfCmd.PROG_TEST_RUN, errno.EPERM)
    assert syscall.hint(BpfCmd.MAP_FREEZE, errno.EIO)  # the C library's text


def test_failures_name_the_command_and_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syscall, "invoke", lambda cmd, addr, size: (-1, errno.EBUSY))
    with pytest.raises(BpfSyscallError) as info:
        bpf(BpfCmd.MAP_FREEZE, MapFdAttr(map_fd=3), what="map 'cfg'")
    assert info.value.command == BpfCmd.MAP_FREEZE
    assert str(info.value).startswith("EBUSY: BPF_MAP_FREEZE of map 'cfg' failed: ")


def test_eintr_is_retried_and_eagain_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [(-1, errno.EINTR), (-1, errno.EAGAIN), (5, 0)]
    calls = []

    def fake(cmd: int, addr: int, size: int) -> tuple[int, int]:
        calls.append((cmd, size))
        return answers[len(calls) - 1]

    monkeypatch.setattr(syscall, "invoke", fake)
    assert bpf(BpfCmd.MAP_FREEZE, MapFdAttr(), what="m", retry_eagain=1) == 5
    assert calls == [(22, 4)] * 3
    calls.clear()
    with pytest.raises(BpfSyscallError) as info:
        bpf(BpfCmd.MAP_FREEZE, MapFdAttr(), what="m")
    assert info.value.name == "EAGAIN"


def test_an_endless_eintr_ends_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syscall, "invoke", lambda cmd, addr, size: (-1, errno.EINTR))
    with pytest.raises(BpfSyscallError) as info:
        bpf(BpfCmd.MAP_FREEZE, MapFdAttr(), what="m")
    assert info.value.name == "EINTR"


def test_syscall_numbers_per_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    assert syscall.SYSCALL_NUMBERS["x86_64"] == 321
    assert syscall.SYSCALL_NUMBERS["aarch64"] == 280
    monkeypatch.setattr(syscall.platform, "system", lambda: "Linux")
    monkeypatch.setattr(syscall.platform, "machine", lambda: "aarch64")
    assert syscall.syscall_number() == 280
    monkeypatch.setattr(syscall.platform, "machine", lambda: "pdp11")
    with pytest.raises(SyscallUnavailable) as info:
        syscall.syscall_number()
    assert info.value.name == "ENOSYS" and "'pdp11'" in str(info.value)
    monkeypatch.setattr(syscall.platform, "system", lambda: "Darwin")
    with pytest.raises(SyscallUnavailable, match="only on Linux"):
        syscall.syscall_number()
