"""The counts of the generated-program tests (tests/offload/oracle) in the terminal summary,
and the scheduling that keeps a module of real guests on one worker.

Under pytest-xdist each worker hands its counts to the controller (``workeroutput``), which
adds them up; this file sits at the top of the tests so that the controller loads it in a
whole-suite run too.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter

import pytest

from tests.offload.oracle.stats import COUNTS

#: Every test process, and every daemon and command a test starts (about 270 interpreters in
#: a run), compiles the project's modules once, as Python does by default: where the
#: environment asks for no bytecode to be written (PYTHONDONTWRITEBYTECODE), each of them would
#: compile everything again (0.3 s of CPU a start), and no rewritten test module would be
#: kept either. Set here, before pytest-xdist starts its workers with this environment; the
#: caches are the usual (git-ignored) __pycache__ folders.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

#: The tests that press Ctrl-C send SIGINT to the commands they start. A runner started with
#: SIGINT ignored (a background job of a non-interactive shell) hands that on to every child,
#: and Python then never raises KeyboardInterrupt; a handler here gives the children the
#: default disposition back (exec resets handlers, not ignored signals).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: Modules whose tests share what one process holds: module-scoped fixtures too costly to
#: build twice (booted QEMU guests), or counts a later test of the module sums up (the
#: generated-verdict agreement rate of test_differential.py, meaningless over a share of the
#: mutations). Each runs on one worker. pytest-xdist's ``xdist_group`` does this by appending
#: the group to node ids, which pytest 9.2 no longer lets a plugin change, so the scheduler
#: groups these modules by path instead; every other test is scheduled on its own.
SHARED_FIXTURE_MODULES = ("tests/e2e/", "tests/offload/backends/test_differential.py")

_GATHERED: Counter[str] = Counter()
_WORKERS: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):  # noqa: ANN001, ANN201 - xdist's types
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureModules(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SHARED_FIXTURE_MODULES):
                return nodeid.split("::", 1)[0]
            return nodeid

    return SharedFixtureModules(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["oracle_counts"] = json.dumps(dict(COUNTS))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # noqa: ANN001 - xdist's types
    counts = getattr(node, "workeroutput", {}).get("oracle_counts")
    if counts:
        _GATHERED.update(json.loads(counts))
        _WORKERS.append(getattr(node, "gateway", None) and node.gateway.id or "?")


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's own type
    counts = _GATHERED + COUNTS
    accepted = counts["accepted"]
    refused = counts["refused"] + counts["refused_risky"]
    if not accepted + refused:
        return
    write = terminalreporter.write_line
    terminalreporter.section("generated programs")
    workers = f" over {len(_WORKERS)} workers" if _WORKERS else ""
    write(f"{accepted} accepted and {refused} refused of {accepted + refused} programs{workers} "
          f"({accepted / (accepted + refused):.1%} accepted), {counts['frames']} frames run on "
          f"both engines, {counts['soundness']} programs through the soundness oracle "
          f"({counts['soundness_steps']} machine states checked; "
          f"{counts['soundness_skipped']} more programs with too many states for it)")
    write(f"breaking a rule on purpose: {counts['refused_risky']} refused, "
          f"{counts['accepted_risky']} accepted (the breach unreachable or harmless); keeping "
          f"every rule: {counts['refused']} refused ({counts['refused_too_large']} as too large)")
    if accepted:
        write(f"{1000 * counts['cpu_seconds'] / accepted:.1f} ms of CPU per accepted program "
              f"({1000 * counts['seconds'] / accepted:.1f} ms wall; generation, refusals and "
              f"Hypothesis included)")
