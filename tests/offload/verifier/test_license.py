"""GPL-only helpers need a GPL-compatible license, as the kernel's ``license_is_gpl_compatible``
decides; the device reads the license a ``PROG_LOAD`` carries."""

from __future__ import annotations

import pytest

from offload.backends.builtin import BuiltinBackend
from offload.caps import load_profile
from offload.isa import assemble
from offload.uapi import ProgType
from offload.verifier import VerifierError, verify

CAPS = load_profile("full")
#: bpf_check_mtu (GPL-only) on the stack-held MTU
CHECK_MTU = assemble("stw [%r10-4], 0\nmov %r3, %r10\nadd %r3, -4\nmov %r2, 0\nmov %r4, 0\n"
                     "mov %r5, 0\ncall 163\nmov %r0, 2\nexit")
PLAIN = assemble("mov %r0, 2\nexit")
REFUSAL = "cannot call GPL-restricted function from non-GPL compatible program"


@pytest.mark.parametrize("license", ["GPL", "GPL v2", "GPL and additional rights",
                                     "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL", None])
def test_gpl_compatible_licenses_call_gpl_only_helpers(license: str | None) -> None:
    verify(CHECK_MTU, caps=CAPS, license=license)


@pytest.mark.parametrize("license", ["Proprietary", "MIT", "BSD", "gpl", ""])
def test_other_licenses_do_not(license: str) -> None:
    with pytest.raises(VerifierError, match=REFUSAL):
        verify(CHECK_MTU, caps=CAPS, license=license)
    verify(PLAIN, caps=CAPS, license=license)  # programs without such helpers load


def test_the_device_reads_the_license_of_the_load() -> None:
    backend = BuiltinBackend(CAPS, engine="reference", seed=1)
    with pytest.raises(VerifierError, match=REFUSAL):
        backend.load_program(1, CHECK_MTU, prog_type=ProgType.XDP, name="mtu",
                             license="Proprietary")
    backend.load_program(2, CHECK_MTU, prog_type=ProgType.XDP, name="mtu", license="GPL")
