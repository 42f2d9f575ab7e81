"""The external judges: the bpf_conformance and uBPF suites' case format (``suite.py``) and the
test helpers their programs call by fixed ids (``helpers.py``)."""

from .helpers import CONFORMANCE_HELPERS
from .suite import (
    EXCEPTIONS,
    ConformanceCase,
    Verdict,
    all_cases,
    case_program,
    conformance_root,
    judge,
    outcome,
    parse_case,
)

__all__ = ["CONFORMANCE_HELPERS", "EXCEPTIONS", "ConformanceCase", "Verdict", "all_cases",
           "case_program", "conformance_root", "judge", "outcome", "parse_case"]
