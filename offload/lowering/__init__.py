"""Semantics-preserving rewrites of eBPF programs down to an older ISA version.

When a snapshot taken on an ISA v4 device is restored on a v1/v2/v3 device, each program is
rewritten into an equivalent one the target understands (RFC 9669 semantics, as
:mod:`offload.engine.alu` implements them), or refused with a :class:`LoweringError` naming
the instruction and the reason. The target's verifier still checks the result.
"""

from .arith import ByteOrder
from .errors import LoweringError
from .lower import lower, lower_with_report
from .program import lower_program, lower_program_with_report
from .report import Lowering, LoweringReport

__all__ = [
    "ByteOrder", "Lowering", "LoweringError", "LoweringReport", "lower", "lower_program",
    "lower_program_with_report", "lower_with_report",
]
