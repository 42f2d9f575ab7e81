"""How often a refused load is repeated for its verifier log: once at level 1 to learn why,
and once more with a larger buffer only when the whole log fits in one."""

from __future__ import annotations

import errno

import pytest

from offload.backends.kernel import KernelVerifierError, load_program, programs
from offload.isa import assemble


def attempts(monkeypatch, true_size: int) -> list[tuple[int, int]]:
    """The (log level, log size) of each BPF_PROG_LOAD of a program the kernel refuses with
    a log of ``true_size`` bytes."""
    seen: list[tuple[int, int]] = []

    def refuse(code, prog_type, license_buf, name, flags, attach, level, size, funcs=None):
        seen.append((level, size))
        if not level:
            return -1, errno.EACCES, "", 0
        if size <= true_size:
            return -1, errno.ENOSPC, "...the end: BPF program is too large", true_size
        return -1, errno.EACCES, "the whole log", true_size

    monkeypatch.setattr(programs, "_attempt", refuse)
    with pytest.raises(KernelVerifierError):
        load_program(assemble("mov %r0, 0\nexit"))
    return seen


def test_a_log_that_fits_is_asked_again_with_room(monkeypatch):
    assert attempts(monkeypatch, 100_000) == [(0, programs.LOG_SIZE), (1, programs.LOG_SIZE),
                                              (1, 4 * programs.LOG_SIZE)]


def test_a_log_larger_than_any_buffer_is_not_asked_again(monkeypatch):
    # a million processed instructions print about 86 MB at level 1; asking again for the
    # 64 MiB the loader allows verified the program once more (seconds) to fail the same way
    seen = attempts(monkeypatch, 90_000_000)
    assert seen == [(0, programs.LOG_SIZE), (1, programs.LOG_SIZE)]
