"""Loading a fixture case into the host kernel (as root) through the kernel backend."""

from __future__ import annotations

from offload.backends.kernel import KernelMap, KernelVerifierError, load_program
from offload.isa.opcodes import PseudoSrc

from .suite import Case


def kernel_verdict(case: Case) -> tuple[bool, str]:
    """(accepted, reason) from the host kernel's verifier for this case's program."""
    kernel_maps = {}
    try:
        for handle, spec in case.maps.items():
            kernel_maps[handle] = KernelMap.create(spec)
        insns = []
        for insn in case.insns:
            if insn.is_lddw and insn.src in (PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE):
                km = kernel_maps.get(insn.imm)
                # an unknown handle becomes an fd that is surely not a map
                insn = insn.with_fields(imm=km.fd if km is not None else 0x7FFFFFF0)
            insns.append(insn)
        try:
            prog = load_program(insns, name=case.name[:15])
        except KernelVerifierError as err:
            return False, err.reason or err.name
        prog.close()
        return True, ""
    finally:
        for km in kernel_maps.values():
            km.close()
