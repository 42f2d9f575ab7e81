"""BPF_PROG_LOAD: success, rejection with the kernel verifier's log, ProgramSpec loading."""

from __future__ import annotations

import errno
import struct

import pytest

from offload.backends.kernel import (
    BpfSyscallError,
    KernelMap,
    KernelVerifierError,
    load_program,
    load_program_spec,
    run_xdp,
)
from offload.backends.kernel.programs import rejection_reason
from offload.errors import ErrnoError, OffloadError
from offload.isa import PseudoSrc, assemble
from offload.isa.tag import program_tag
from offload.maps import MapSpec
from offload.program import MapReference, ProgramSpec, resolve_map_references
from offload.uapi import MapType, ProgType

kernel = pytest.mark.usefixtures("kernel")
PASS = assemble("mov %r0, 2\nexit")


def test_rejection_reason_is_the_line_after_the_last_instruction() -> None:
    log = ("0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\n"
           "processed 1 insns (limit 1000000) max_states_per_insn 0\n"
           "verification time 12 usec\nstack depth 0\n")
    assert rejection_reason(log) == "R0 !read_ok"
    loop = ("1: (05) goto pc-2\ninfinite loop detected at insn 0\ncur state: R0=2\n"
            "old state: R0=2\nprocessed 11 insns (limit 1000000)\n")
    assert rejection_reason(loop) == "infinite loop detected at insn 0"
    assert rejection_reason("jump out of range from insn 1 to 3\nprocessed 0 insns\n") == \
        "jump out of range from insn 1 to 3"
    assert rejection_reason("0: (95) exit\nprocessed 1 insns\n") == "0: (95) exit"
    assert rejection_reason("") == ""


@kernel
def test_a_valid_program_loads() -> None:
    with load_program(PASS, name="pass", log_level=1) as prog:
        assert "processed 2 insns" in prog.log
        info = prog.info()
        assert (info.type, info.name, info.xlated_len) == (ProgType.XDP, "pass", 16)
        assert info.gpl_compatible and info.verified_insns == 2 and len(info.tag) == 8
        assert info.tag == program_tag(PASS)


@kernel
def test_the_tag_is_the_kernels_for_wide_and_jumping_programs() -> None:
    """A 64-bit constant (not a map load) keeps its immediates in the tag; jumps and calls
    hash as written."""
    text = """
        lddw %r0, 0x1122334455667788
        jeq %r0, 0, +2
        call local fn
        mov %r0, 2
        exit
    fn:
        mov %r0, 1
        exit
    """
    insns = assemble(text)
    with load_program(insns, name="wide") as prog:
        assert prog.info().tag == program_tag(insns)
    assert program_tag(insns) != program_tag(assemble(text.replace("0x11", "0x21")))
    assert prog.closed


@kernel
@pytest.mark.parametrize(("text", "name", "reason"), [
    ("exit", "EACCES", "R0 !read_ok"),
    ("ldxw %r0, [%r1+100]\nexit", "EACCES", "invalid bpf_context access off=100 size=4"),
    ("mov %r0, 2\nstw [%r1+0], 1\nexit", "EACCES", "invalid bpf_context access"),
    ("ldxw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nexit", "EACCES", "invalid access to packet"),
    ("mov %r0, 2\nlsh %r0, 70\nexit", "EINVAL", "invalid shift 70"),
    ("mov %r0, 2\njeq %r0, 2, +1\nexit", "EINVAL", "jump out of range from insn 1 to 3"),
    ("call 999\nexit", "EINVAL", "invalid func unknown#999"),
    ("call 9\nexit", "EINVAL", "program of this type cannot use helper bpf_skb_store_bytes#9"),
    ("loop:\nmov %r0, 2\nja loop", "EINVAL", "infinite loop detected at insn 0"),
])
def test_rejections_carry_the_kernel_log(text: str, name: str, reason: str) -> None:
    with pytest.raises(KernelVerifierError) as info:
        load_program(assemble(text), name="bad")
    exc = info.value
    assert isinstance(exc, BpfSyscallError) and isinstance(exc, ErrnoError)
    assert isinstance(exc, OffloadError)
    assert exc.name == name and reason in exc.reason and reason in exc.log
    assert str(exc).startswith(f"{name}: BPF_PROG_LOAD of program 'bad' failed: ")
    assert str(exc).endswith(exc.reason)


@kernel
def test_gpl_only_helpers_need_a_gpl_license() -> None:
    text = "mov %r1, %r10\nadd %r1, -8\nstdw [%r10-8], 0\nmov %r2, 8\ncall 6\nmov %r0, 2\nexit"
    with load_program(assemble(text), license="Dual MIT/GPL"):
        pass
    with pytest.raises(KernelVerifierError, match="GPL-restricted"):
        load_program(assemble(text), license="MIT")


@kernel
def test_small_log_buffers_grow_until_the_log_fits() -> None:
    body = "mov %r0, 2\n" + "add %r0, 0\n" * 300 + "exit"
    with load_program(assemble(body), log_level=2, log_size=128) as prog:
        assert prog.log.count("add r0") >= 300 or prog.log.count("r0 += 0") >= 300


@kernel
def test_other_program_types_and_attributes() -> None:
    with load_program(assemble("mov %r0, 0\nexit"), prog_type=ProgType.SCHED_CLS,
                      license="", name="tc") as prog:
        assert prog.info().type == ProgType.SCHED_CLS and not prog.info().gpl_compatible
    with pytest.raises(KernelVerifierError) as info:
        load_program(PASS, prog_flags=1 << 30)
    assert info.value.name == "EINVAL"


def test_local_argument_checks_need_no_kernel() -> None:
    with pytest.raises(ErrnoError, match="NUL"):
        load_program(PASS, license="GPL\0")
    with pytest.raises(ErrnoError, match="log_size"):
        load_program(PASS, log_level=1, log_size=1)


@kernel
def test_a_program_spec_loads_with_map_fds_patched() -> None:
    """Counts packets in a hash map (MAP_FD) and returns a value from a global (MAP_VALUE)."""
    text = """
        stw [%r10-4], 0
        lddw %r1, map_fd(0)
        mov %r2, %r10
        add %r2, -4
        call 1
        jeq %r0, 0, out
        mov %r1, 1
        lock add [%r0+0], %r1
    out:
        lddw %r1, map_value(0)+0
        ldxw %r0, [%r1+4]
        exit
    """
    spec = ProgramSpec("count", ProgType.XDP, tuple(assemble(text)), license="GPL",
                       map_refs=(MapReference(1, "hits"),
                                 MapReference(9, "cfg", PseudoSrc.MAP_VALUE, offset=0)))
    hits_spec = MapSpec("hits", MapType.HASH, 4, 8, 1, contents=((bytes(4), bytes(8)),))
    cfg_spec = MapSpec("cfg", MapType.ARRAY, 4, 8, 1,
                       contents=((bytes(4), struct.pack("<II", 0, 1)),))
    with KernelMap.create(hits_spec) as hits, KernelMap.create(cfg_spec) as cfg:
        with load_program_spec(spec, {"hits": hits, "cfg": cfg.fd}) as prog:
            result = run_xdp(prog, bytes(60), repeat=3)
            assert result.retval == 1  # XDP_DROP, read from cfg at offset 4
            assert struct.unpack("<Q", hits.lookup(bytes(4)))[0] == 3
            assert set(prog.info().map_ids) == {hits.info().id, cfg.info().id}
            # the tag ignores which fds the maps got, so the device's handles give the same one
            assert prog.info().tag == program_tag(spec.instructions)
            handles = resolve_map_references(spec.instructions, spec.map_refs,
                                             {"hits": 7, "cfg": 9}, program="count")
            assert program_tag(handles) == program_tag(spec.instructions)
        with pytest.raises(ErrnoError) as info:
            load_program_spec(spec, {"hits": hits})
        assert info.value.errno == errno.EBADF and "'cfg'" in str(info.value)
        bad = ProgramSpec("oob", ProgType.XDP, spec.instructions, license="GPL",
                          map_refs=(MapReference(1, "hits"),
                                    MapReference(9, "cfg", PseudoSrc.MAP_VALUE, offset=64)))
        with pytest.raises(KernelVerifierError) as info:
            load_program_spec(bad, {"hits": hits, "cfg": cfg})
        assert "offset" in info.value.reason or "value_size" in info.value.reason
