"""Every unsafe program of fixtures/verifier/reject is refused, for the stated reason."""

from __future__ import annotations

import pytest

from offload.verifier import VerifierError, verify

from .suite import cases

REJECT = cases("reject")


def test_the_suite_covers_every_rule():
    assert len(REJECT) >= 80
    prefixes = {case.name.split("_")[0] for case in REJECT}
    assert {"cf", "loop", "reg", "ctx", "pkt", "map", "stack", "helper", "exit"} <= prefixes


@pytest.mark.parametrize("case", REJECT, ids=lambda c: c.name)
def test_rejected_with_reason(case):
    assert case.reason, f"{case.path} has no '# reason:' header"
    with pytest.raises(VerifierError) as info:
        verify(case.insns, caps=case.caps, maps=case.maps)
    err = info.value
    assert case.reason in err.reason, (err.insn_index, err.reason, str(err.log))
    assert 0 <= err.insn_index < sum(insn.width for insn in case.insns) or err.insn_index == 0
    assert "\n" not in err.reason
    assert err.log is not None and err.log.reason == err.reason
