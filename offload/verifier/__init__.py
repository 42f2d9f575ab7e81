"""The verifier: decides, before anything runs, whether a program is safe on a device.

Abstract interpretation over register and stack state (tnums plus signed and unsigned 32- and
64-bit ranges), following the Linux verifier's rules for unprivileged loaders and speaking its
vocabulary in errors and logs.
"""

from .errors import VerifierError
from .log import LogLine, VerifierLog
from .verifier import Observer, VerifierStats, verify

__all__ = ["LogLine", "VerifierError", "VerifierLog", "Observer", "VerifierStats", "verify"]
