"""The soundness oracle: every machine state a verified program reaches must lie inside the
abstract state the verifier claimed for that instruction (state embedding)."""

from .oracle import (
    Escape,
    OracleReport,
    SoundnessError,
    SoundnessOracle,
    StateRecorder,
    check_program,
)

__all__ = ["Escape", "OracleReport", "SoundnessError", "SoundnessOracle", "StateRecorder",
           "check_program"]
