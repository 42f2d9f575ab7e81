"""Fixtures shared by the snapshot tests."""

from __future__ import annotations

import pytest

from migrate import seal as seal_module


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts decoder runs: a refused snapshot must never reach the decoder."""
    calls: list[int] = []
    real = seal_module.read_snapshot

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(seal_module, "read_snapshot", spy)
    return calls
