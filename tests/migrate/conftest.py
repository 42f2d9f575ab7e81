"""Fixtures shared by the snapshot tests."""

from __future__ import annotations

import pytest

from migrate import codec as codec_module


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts decoder runs: a refused snapshot must never reach the decoder."""
    calls: list[int] = []
    real = codec_module.read_snapshot  # the seal imports it from the codec when it decodes

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(codec_module, "read_snapshot", spy)
    return calls
