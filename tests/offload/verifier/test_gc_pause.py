"""The cyclic collector is paused while a program is verified, and resumed as it was."""

from __future__ import annotations

import gc
import threading

from offload.isa import assemble
from offload.verifier import VerifierError, gc_pause, verify

from .suite import FULL


def test_paused_nests_and_resumes_only_what_was_running():
    assert gc.isenabled()
    with gc_pause.paused():
        assert not gc.isenabled()
        with gc_pause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_pause.paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_verification_pauses_the_collector_and_resumes_it_on_refusal_too():
    seen = []

    class Watch:
        compares_all_scalars = False
        keeps_every_state = False

        def layout(self, prog):
            seen.append(gc.isenabled())

        def state(self, slot, state):
            pass

    verify(assemble("mov %r0, 2\nexit"), caps=FULL, observer=Watch())
    assert seen == [False] and gc.isenabled()
    try:
        verify(assemble("exit"), caps=FULL, log_level=0)
    except VerifierError:
        pass
    assert gc.isenabled()


def test_threads_verifying_at_once_leave_the_collector_running():
    program = assemble("\n".join(f"mov %r{1 + i % 5}, {i}" for i in range(200))
                       + "\nmov %r0, 2\nexit")
    errors = []

    def work():
        try:
            for _ in range(20):
                verify(program, caps=FULL, log_level=0)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and gc.isenabled()
