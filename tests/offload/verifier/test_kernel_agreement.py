"""The same programs through the host kernel's verifier: where do the verdicts differ, and why.

The kernel loads them as root, so it applies the privileged rules; every case where its verdict
differs from ours is named in the fixture's ``# kernel:`` header with the reason (an
unprivileged rule, a device capability, or extra precision on our side). The test fails on any
disagreement that is not explained, and on an explanation that is no longer true. A case with a
``# kernel-cost:`` header takes the kernel seconds to judge and is asked only in the slow
profile (tests/offload/kernel_cost.py).
"""

from __future__ import annotations

from collections import Counter

import pytest

from offload.backends.kernel import kernel_available
from offload.verifier import VerifierError, verify
from tests.offload.kernel_cost import ASK_COSTLY

from .kernel_load import kernel_verdict
from .suite import cases

AVAILABLE, WHY = kernel_available()
pytestmark = pytest.mark.skipif(not AVAILABLE, reason=f"the host kernel's bpf() is unusable: {WHY}")
ALL = [("reject", c) for c in cases("reject")] + [("accept", c) for c in cases("accept")]


def _ours(case) -> bool:
    try:
        verify(case.insns, caps=case.caps, maps=case.maps)
    except VerifierError:
        return False
    return True


def _category(explanation: str) -> str:
    """``accept: unprivileged rule: ...`` -> ``unprivileged rule``; an explanation with no
    category of its own is its own."""
    body = explanation.split(":", 1)[-1].strip()
    return body.split(":", 1)[0].strip()


def test_agreement_with_the_kernel(record_property):
    agree, unexplained, stale = Counter[str](), [], []
    reasons: Counter[str] = Counter()  # why the kernel takes what the reject suite refuses
    not_asked = []
    for kind, case in ALL:
        ours = _ours(case)
        assert ours == (kind == "accept"), f"{case.name}: the {kind} suite changed"
        if "kernel-cost" in case.header and not ASK_COSTLY:
            not_asked.append(case.name)
            continue
        kernel, reason = kernel_verdict(case)
        if kernel == ours:
            agree[kind] += 1
            if case.kernel:
                stale.append(f"{case.name}: the kernel agrees now, drop '# kernel: {case.kernel}'")
            continue
        declared = "accept" if kernel else "reject"
        if not case.kernel.startswith(declared + ":"):
            unexplained.append(f"{case.name}: kernel {declared}s ({reason}), we do not")
        elif kind == "reject":
            reasons[_category(case.kernel)] += 1
    asked = [(kind, case) for kind, case in ALL if case.name not in not_asked]
    total = sum(agree.values())
    rate = total / len(asked)
    rejects = sum(kind == "reject" for kind, _ in asked)
    reject_rate = agree["reject"] / rejects
    record_property("kernel_agreement", f"{total}/{len(asked)} = {rate:.1%}")
    print(f"\nverdicts agreeing with the host kernel: {total}/{len(asked)} ({rate:.1%}); the reject "
          f"suite {agree['reject']}/{rejects} ({reject_rate:.1%}), the kernel taking the rest "
          f"for: " + ", ".join(f"{n} {c}" for c, n in reasons.most_common()) +
          (f"; not asked (seconds of kernel time, OFFLOAD_KERNEL_SLOW=1 asks): "
           f"{', '.join(not_asked)}" if not_asked else ""))
    assert not unexplained, "\n".join(unexplained)
    assert not stale, "\n".join(stale)
    assert reject_rate >= 0.6  # most of what we refuse, the kernel refuses too
