"""Programs the host kernel's verifier takes seconds to judge, asked only in the slow profile.

A few suite programs loop without bound; Linux walks a million instructions (5 to 7 s of
kernel time each) before it refuses them as too large, which is all it ever says of them. The
default run does not ask; ``OFFLOAD_KERNEL_SLOW=1`` does (docs/verifier.md, "Knobs").
"""

from __future__ import annotations

import os

ASK_COSTLY = os.environ.get("OFFLOAD_KERNEL_SLOW", "") not in ("", "0")

#: Conformance cases (file names) Linux refuses only after a million processed instructions.
COSTLY_CONFORMANCE = {
    "mul-loop-memory-iterations.data": "BPF program is too large. Processed 1000001 insn",
}
