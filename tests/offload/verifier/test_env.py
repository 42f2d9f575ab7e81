"""Env.cached: a pure function's result computed once per verification, in bounded memory."""

from __future__ import annotations

from offload.isa import assemble
from offload.uapi import ProgType
from offload.verifier import env as env_module
from offload.verifier.env import Env
from offload.verifier.program import layout

from .suite import FULL


def make_env() -> Env:
    return Env(layout(assemble("mov %r0, 2\nexit"), FULL), FULL, ProgType.XDP)


def test_each_distinct_call_is_computed_once():
    env = make_env()
    calls = []

    def square(x: int) -> int | None:
        calls.append(x)
        return None if x < 0 else x * x  # None is a result like any other

    assert [env.cached(square, x) for x in (3, 3, -1, -1, 4, 3)] == [9, 9, None, None, 16, 9]
    assert calls == [3, -1, 4]


def test_the_memo_starts_over_when_full(monkeypatch):
    monkeypatch.setattr(env_module, "MEMO_LIMIT", 4)
    env = make_env()
    for x in range(10):
        assert env.cached(abs, -x) == x
        assert len(env.memo) <= 4
