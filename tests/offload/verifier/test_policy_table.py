"""The policy table of docs/verifier.md, one case per row: the device's verdict, and where the
host kernel can be asked as root, the kernel's in the mode the row names.

Each row's expectation is "accept" or a substring of the refusal. ``unpriv`` is checked with
CAP_BPF and CAP_NET_ADMIN but without CAP_PERFMON and CAP_SYS_ADMIN (``kernel_modes``: the
unprivileged rules on pointers and stack; XDP never loads without CAP_BPF), ``priv`` as root.
None: the kernel cannot be asked here (a rule keyed on CAP_BPF itself, which XDP always has);
the table gives the kernel's rule from its source instead. The table in the documentation
and the rows here name each other: a row without a case, or a case without a row, fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from offload.backends.kernel import kernel_available
from offload.caps.capabilities import Capabilities, Limits
from offload.isa import Instruction, assemble
from offload.isa.asm import label_slots
from offload.maps.spec import MapSpec
from offload.program import ArgKind, FuncArg, FuncInfo, FuncProto, Linkage
from offload.uapi import AttachType, MapFlags, MapType
from offload.verifier import VerifierError, verify

from .kernel_modes import PRIV, UNPRIV, kernel_verdict, unpriv_mode_usable
from .suite import FULL

DOC = Path(__file__).resolve().parents[3] / "docs" / "verifier.md"
ACCEPT = "accept"

HASH = MapSpec("hash", MapType.HASH, 4, 8, 16)
RDONLY = replace(MapSpec("ro", MapType.ARRAY, 4, 8, 1), flags=MapFlags.RDONLY_PROG)
WRONLY = replace(MapSpec("wo", MapType.ARRAY, 4, 8, 1), flags=MapFlags.WRONLY_PROG)
PROG_ARRAY = MapSpec("progs", MapType.PROG_ARRAY, 4, 4, 4)
RINGBUF = MapSpec("events", MapType.RINGBUF, 0, 0, 4096)
#: a value of 16 bytes whose struct bpf_spin_lock is at offset 0 (map handle 6), at 8
LOCKED = MapSpec("locked", MapType.HASH, 4, 16, 16, spin_lock_off=0)
LOCKED_AT_8 = replace(LOCKED, spin_lock_off=8)


@dataclass(frozen=True)
class Row:
    id: str
    src: str | tuple[Instruction, ...]
    device: str
    unpriv: str | None
    priv: str | None
    maps: dict[int, MapSpec] = field(default_factory=dict)
    caps: Capabilities = FULL
    license: str = "GPL"
    attach: int = 0
    #: why a None expectation cannot be checked here
    unchecked: str = "a rule keyed on CAP_BPF, which an XDP loader always has"
    #: global functions (BTF func_info): label -> argument kinds (``global_fn``)
    globals: tuple[tuple[str, tuple[FuncArg, ...]], ...] = ()

    @property
    def functions(self) -> tuple[FuncInfo, ...]:
        """The func_info the device's verifier and the kernel get: main, and each global
        function at its label."""
        if not self.globals or not isinstance(self.src, str):
            return ()
        slots = label_slots(self.src)
        return (FuncInfo(0, "main", Linkage.GLOBAL, FuncProto((FuncArg(ArgKind.CTX),))),
                *(FuncInfo(slots[name], name, Linkage.GLOBAL, FuncProto(args))
                  for name, args in self.globals))


# r2 = data, r3 = data_end, r6 = ctx; 14 bytes proven; "out" returns XDP_PASS
PKT = """
mov %r6, %r1
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, out
"""
OUT = """
out:
mov %r0, 2
exit
"""
# a map value byte bounded to 0..3, stored to the stack and read back, offsets the value
NARROW = """
ldxb %r5, [%r0+0]
and %r5, 3
{store}
{fill}
add %r0, %r5
ldxb %r0, [%r0+0]
"""
# r0 = a hash map value or NULL (map handle 1)
LOOKUP = """
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map_fd(1)
call 1
"""
CHECKED = LOOKUP + "jeq %r0, 0, out\n"
DONE = "mov %r0, 2\nexit\n"
#: an 8-byte reservation from the ring buffer (handle 5) in R0, maybe NULL; its submit
RESERVE = "lddw %r1, map_fd(5)\nmov %r2, 8\nmov %r3, 0\ncall 131\n"
SUBMIT = "mov %r1, %r0\nmov %r2, 0\ncall 132\n"
#: a TCP socket lookup of a zeroed IPv4 tuple on the stack (the call at insn 7): R0 sock_or_null
SK_LOOKUP = ("stdw [%r10-16], 0\nstdw [%r10-8], 0\nmov %r2, %r10\nadd %r2, -16\nmov %r3, 12\n"
             "mov %r4, -1\nmov %r5, 0\ncall 84\n")
ADJUST = "mov %r1, %r6\nmov %r2, 0\ncall 44\n"  # bpf_xdp_adjust_head(ctx, 0)
# r7 = a null-checked value of LOCKED (map handle 6); LOCK/UNLOCK take and release its lock
LOCKED_VALUE = "mov %r6, %r1\n" + CHECKED.replace("map_fd(1)", "map_fd(6)") + "mov %r7, %r0\n"
LOCK = "mov %r1, %r7\ncall 93\n"
UNLOCK = "mov %r1, %r7\ncall 94\n"
EXIT_LOCKED = "BPF_EXIT instruction in main prog cannot be used inside bpf_spin_lock-ed region"
UNBOUNDED_MAP_MATH = "math between map_value pointer and register with unbounded min value"
CALLS = "call local f1\nmov %r0, 2\nexit\n" + "".join(
    f"f{i}:\ncall local f{i + 1}\nexit\n" for i in range(1, 7)) + "f7:\nmov %r0, 2\nexit\n"
TOO_DEEP = "call local f1\nmov %r0, 2\nexit\n" + "".join(
    f"f{i}:\ncall local f{i + 1}\nexit\n" for i in range(1, 9)) + "f9:\nmov %r0, 2\nexit\n"


CALLBACK = "cb:\nmov %r0, 0\nexit\n"  # a bpf_loop callback that goes on


def loop_call(count: str = "mov %r1, 4", ctx: str = "mov %r3, 0",
              flags: str = "mov %r4, 0") -> str:
    """``bpf_loop(count, cb, ctx, flags)``; the program defines ``cb:`` after its exit."""
    return f"{count}\nlddw %r2, func cb\n{ctx}\n{flags}\ncall 181\n"


def small(**limits: int) -> Capabilities:
    return replace(FULL, limits=replace(Limits(), **limits))


SCALAR_ARG, CTX_ARG, MEM8_ARG = (FuncArg(ArgKind.SCALAR), FuncArg(ArgKind.CTX),
                                 FuncArg(ArgKind.MEM, 8))
#: a call of global ``fn`` with 8 initialised bytes of the stack; ``fn`` null-checks, writes 1
GLOBAL_MEM_CALL = "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\ncall local fn\n" + DONE
GLOBAL_MEM_FN = "fn:\nmov %r0, 0\njeq %r1, 0, +1\nstdw [%r1+0], 1\nexit\n"

ROWS = [
    # ------------------------------------------------------------ pointer arithmetic
    Row("arith_map_value_const_oob", CHECKED + "mov %r1, %r0\nadd %r1, 100\n" + DONE + OUT,
        ACCEPT, "invalid access to map value, value_size=8 off=100 size=1", ACCEPT, {1: HASH}),
    Row("arith_map_value_var", CHECKED + "ldxb %r2, [%r0+0]\nand %r2, 7\nadd %r0, %r2\n"
        "ldxb %r0, [%r0+0]\n" + DONE + OUT, ACCEPT, ACCEPT, ACCEPT, {1: HASH}),
    Row("arith_stack_var", "stdw [%r10-16], 0\nstdw [%r10-8], 0\nldxw %r2, [%r1+16]\n"
        "and %r2, 7\nmov %r3, %r10\nadd %r3, -16\nadd %r3, %r2\nldxb %r0, [%r3+0]\nexit\n",
        ACCEPT, "variable stack access prohibited for !root", ACCEPT),
    Row("arith_pkt_var", PKT + "ldxw %r5, [%r6+16]\nand %r5, 15\nadd %r2, %r5\nmov %r4, %r2\n"
        "add %r4, 1\njgt %r4, %r3, out\nldxb %r0, [%r2+0]\n" + DONE + OUT,
        ACCEPT, "R2 has pointer with unsupported alu operation, pointer arithmetic with it "
        "prohibited for !root", ACCEPT),
    Row("arith_ctx_var", "ldxw %r2, [%r1+16]\nand %r2, 4\nadd %r1, %r2\nldxw %r0, [%r1+0]\n"
        "exit\n", "dereference of modified ctx ptr",
        "R1 has pointer with unsupported alu operation", "variable ctx access"),
    Row("arith_map_ptr", "lddw %r1, map_fd(1)\nadd %r1, 8\n" + DONE,
        "pointer arithmetic on map_ptr prohibited", "pointer arithmetic on map_ptr prohibited",
        "pointer arithmetic on map_ptr prohibited", {1: HASH}),
    Row("arith_or_null", LOOKUP + "add %r0, 4\n" + DONE, "null-check it first",
        "pointer arithmetic on map_value_or_null prohibited",
        "pointer arithmetic on map_value_or_null prohibited", {1: HASH}),
    Row("arith_pkt_end", "ldxw %r3, [%r1+4]\nadd %r3, 1\n" + DONE,
        "pointer arithmetic on pkt_end prohibited", "pointer arithmetic on pkt_end prohibited",
        "pointer arithmetic on pkt_end prohibited"),
    Row("arith_mul", "mov %r1, %r10\nmul %r1, 2\n" + DONE,
        "pointer arithmetic with operator *= on pointer prohibited",
        "pointer arithmetic with *= operator prohibited",
        "pointer arithmetic with *= operator prohibited"),
    Row("arith_bitwise", "mov %r1, %r10\nand %r1, -8\n" + DONE,
        "bitwise operator &= on pointer prohibited", "bitwise operator &= on pointer prohibited",
        "bitwise operator &= on pointer prohibited"),
    Row("arith_ptr_plus_ptr", "mov %r2, %r10\nadd %r2, %r1\n" + DONE,
        "pointer += pointer prohibited", "pointer += pointer prohibited",
        "pointer += pointer prohibited"),
    Row("arith_stack_minus_stack", "mov %r1, %r10\nmov %r2, %r10\nadd %r2, -8\n"
        "sub %r1, %r2\n" + DONE, "pointer -= pointer prohibited",
        "pointer -= pointer prohibited", ACCEPT),
    Row("arith_pkt_end_minus_pkt", PKT + "mov %r5, %r3\nsub %r5, %r2\n" + DONE + OUT,
        ACCEPT, "pointer -= pointer prohibited", ACCEPT),
    Row("arith_scalar_minus_ptr", "mov %r1, 5\nsub %r1, %r10\n" + DONE,
        "tried to subtract pointer from scalar", "tried to subtract pointer from scalar",
        "tried to subtract pointer from scalar"),
    Row("arith_neg", "mov %r1, %r10\nneg %r1\n" + DONE,
        "pointer arithmetic with neg operator prohibited", "pointer arithmetic prohibited",
        ACCEPT),
    Row("arith_bswap", "mov %r1, %r10\nbe64 %r1\n" + DONE, "byte swap of pointer prohibited",
        "pointer arithmetic prohibited", ACCEPT),
    Row("arith_alu32", "mov %r1, %r10\nadd32 %r1, -8\n" + DONE,
        "32-bit pointer arithmetic prohibited", "32-bit pointer arithmetic prohibited",
        "32-bit pointer arithmetic prohibited"),
    Row("arith_mov32", "mov32 %r1, %r10\n" + DONE, "partial copy of pointer",
        "partial copy of pointer", ACCEPT),
    Row("arith_movsx", "movsx3264 %r1, %r10\n" + DONE, "sign-extension part of pointer",
        "sign-extension part of pointer", ACCEPT),
    # ------------------------------------------------------------ stale packet pointers
    Row("stale_pkt_arith", PKT + "mov %r7, %r2\n" + ADJUST + "add %r7, 4\n" + DONE + OUT,
        "R7 !read_ok", "R7 !read_ok", ACCEPT),
    Row("stale_pkt_spilled_arith", PKT + "stxdw [%r10-8], %r2\n" + ADJUST +
        "ldxdw %r7, [%r10-8]\nadd %r7, 4\n" + DONE + OUT, "R7 !read_ok", "R7 !read_ok",
        ACCEPT),
    Row("stale_pkt_deref", PKT + "mov %r7, %r2\n" + ADJUST + "ldxb %r0, [%r7+0]\n" + DONE + OUT,
        "R7 !read_ok", "R7 !read_ok", "R7 invalid mem access 'scalar'"),
    Row("stale_pkt_end_compare", PKT + "mov %r7, %r3\n" + ADJUST +
        "ldxw %r2, [%r6+0]\njgt %r2, %r7, out\n" + DONE + OUT,
        "R7 !read_ok", "R7 !read_ok", ACCEPT),
    Row("pkt_recheck_after_adjust", PKT + ADJUST + "ldxw %r2, [%r6+0]\nldxw %r3, [%r6+4]\n"
        "mov %r4, %r2\nadd %r4, 14\njgt %r4, %r3, out\nldxb %r0, [%r2+13]\n" + DONE + OUT,
        ACCEPT, ACCEPT, ACCEPT),
    # ------------------------------------------------------------ pointer comparisons
    Row("cmp_ptr_scalar", "ldxw %r3, [%r1+4]\njgt %r3, 100, out\n" + DONE + OUT,
        "pointer comparison prohibited", "pointer comparison prohibited", ACCEPT),
    Row("cmp_ptr_ptr", "mov %r2, %r10\njgt %r2, %r1, out\n" + DONE + OUT,
        "pointer comparison prohibited", "pointer comparison prohibited", ACCEPT),
    Row("cmp_pkt_pkt_end", PKT + "ldxb %r0, [%r2+13]\n" + DONE + OUT, ACCEPT, ACCEPT, ACCEPT),
    Row("cmp_pkt_jmp32", "ldxw %r2, [%r1+0]\nldxw %r3, [%r1+4]\nmov %r4, %r2\nadd %r4, 14\n"
        "jgt32 %r4, %r3, out\n" + DONE + OUT, "pointer comparison prohibited",
        "pointer comparison prohibited", ACCEPT),
    Row("cmp_null_check", CHECKED + "ldxb %r0, [%r0+0]\n" + DONE + OUT, ACCEPT, ACCEPT, ACCEPT,
        {1: HASH}),
    Row("cmp_or_null_nonzero", LOOKUP + "jeq %r0, 5, out\n" + DONE + OUT,
        "pointer comparison prohibited", "pointer comparison prohibited", ACCEPT, {1: HASH}),
    # ------------------------------------------------------------ pointer leaks
    Row("leak_into_map", CHECKED + "stxdw [%r0+0], %r10\n" + DONE + OUT,
        "R10 leaks addr into map", "R10 leaks addr into map", ACCEPT, {1: HASH}),
    Row("leak_into_packet", PKT + "stxdw [%r2+0], %r6\n" + DONE + OUT,
        "R6 leaks addr into packet", "R6 leaks addr into packet", ACCEPT),
    Row("leak_return", "mov %r0, %r10\nexit\n", "R0 leaks addr as return value",
        "R0 leaks addr as return value", ACCEPT),
    Row("leak_into_helper", "mov %r1, %r10\nmov %r2, 0\ncall 23\nexit\n",
        "R1 leaks addr into helper function", "R1 leaks addr into helper function", ACCEPT),
    Row("leak_atomic_operand", "stdw [%r10-8], 0\nlock add [%r10-8], %r1\n" + DONE,
        "leaks addr into mem", "leaks addr into mem", ACCEPT),
    Row("leak_spilled_into_helper", "stxdw [%r10-8], %r10\nstw [%r10-12], 0\nmov %r2, %r10\n"
        "add %r2, -12\nmov %r3, %r10\nadd %r3, -8\nlddw %r1, map_fd(1)\nmov %r4, 0\ncall 2\n"
        + DONE, "holds a spilled pointer", "invalid read from stack R3 off -8+0 size 8", ACCEPT,
        {1: HASH}),
    # ------------------------------------------------------------ stack
    Row("stack_spill_fill_pointer", "stxdw [%r10-8], %r1\nldxdw %r1, [%r10-8]\n"
        "ldxw %r0, [%r1+12]\nexit\n", ACCEPT, ACCEPT, ACCEPT),
    Row("stack_partial_spill", "stxw [%r10-8], %r10\n" + DONE,
        "invalid size of register spill", "invalid size of register spill",
        "invalid size of register spill"),
    Row("stack_partial_fill", "stxdw [%r10-8], %r10\nldxw %r0, [%r10-8]\n" + DONE,
        "invalid size of register fill", "invalid size of register fill",
        "invalid size of register fill"),
    Row("stack_corrupt_spill", "stxdw [%r10-8], %r10\nstw [%r10-8], 0\n" + DONE,
        "attempt to corrupt spilled pointer on stack",
        "attempt to corrupt spilled pointer on stack", ACCEPT),
    Row("stack_narrow_spill", CHECKED + NARROW.format(store="stxw [%r10-16], %r5",
                                                       fill="ldxw %r5, [%r10-16]") + OUT,
        ACCEPT, ACCEPT, ACCEPT, {1: HASH}),
    Row("stack_narrow_spill_unaligned", CHECKED + NARROW.format(
        store="stxw [%r10-12], %r5", fill="ldxw %r5, [%r10-12]") + OUT,
        "R0 unbounded memory access", "R0 unbounded memory access",
        "R0 unbounded memory access", {1: HASH}),
    Row("stack_narrow_spill_wide_fill", "mov %r1, 3\nstxw [%r10-8], %r1\n"
        "ldxdw %r0, [%r10-8]\n" + DONE, "invalid read from stack off -8+4 size 8",
        "invalid read from stack off -8+4 size 8", ACCEPT),
    Row("stack_uninit_read", "ldxdw %r0, [%r10-8]\n" + DONE,
        "invalid read from stack off -8+0 size 8", "invalid read from stack R10 off=-8 size=8",
        ACCEPT),
    Row("stack_uninit_helper_arg", "mov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd(1)\ncall 1\n"
        + DONE, "invalid indirect read from stack", "invalid read from stack R2 off=-4 size=4",
        ACCEPT, {1: HASH}),
    Row("stack_var_offset_write", "ldxw %r2, [%r1+16]\nand %r2, 8\nmov %r3, %r10\n"
        "add %r3, -16\nadd %r3, %r2\nstdw [%r3+0], 0\n" + DONE,
        ACCEPT, "variable stack access prohibited for !root", ACCEPT),
    Row("stack_out_of_frame", "stdw [%r10-520], 0\n" + DONE, "invalid stack off=-520 size=8",
        "invalid write to stack", "invalid write to stack"),
    Row("stack_misaligned", "stw [%r10-6], 0\n" + DONE, "misaligned stack access",
        "misaligned stack access", "misaligned stack access"),
    # ------------------------------------------------------------ packet
    Row("pkt_unchecked", "ldxw %r2, [%r1+0]\nldxb %r0, [%r2+0]\nexit\n",
        "invalid access to packet", "invalid access to packet", "invalid access to packet"),
    Row("pkt_off_by_one", PKT + "ldxh %r0, [%r2+13]\n" + DONE + OUT,
        "invalid access to packet, off=13 size=2", "invalid access to packet, off=13 size=2",
        "invalid access to packet, off=13 size=2"),
    Row("pkt_write_checked", PKT + "stb [%r2+0], 1\n" + DONE + OUT, ACCEPT, ACCEPT, ACCEPT),
    Row("pkt_meta_unchecked", "ldxw %r2, [%r1+8]\nldxb %r0, [%r2+0]\nexit\n",
        "invalid access to packet metadata", "invalid access to packet",
        "invalid access to packet"),
    Row("pkt_atomic", PKT + "mov %r5, 1\nlock add [%r2+0], %r5\n" + DONE + OUT,
        "BPF_ATOMIC stores into R2 pkt is not allowed",
        "BPF_ATOMIC stores into R2 pkt is not allowed",
        "BPF_ATOMIC stores into R2 pkt is not allowed"),
    # ------------------------------------------------------------ map values
    Row("map_value_oob", CHECKED + "ldxdw %r0, [%r0+4]\n" + DONE + OUT,
        "invalid access to map value, value_size=8 off=4 size=8",
        "invalid access to map value, value_size=8 off=4 size=8",
        "invalid access to map value, value_size=8 off=4 size=8", {1: HASH}),
    Row("map_value_var_unbounded", CHECKED + "ldxdw %r2, [%r0+0]\nadd %r0, %r2\n"
        "ldxb %r0, [%r0+0]\n" + DONE + OUT, "R0 min value is outside of the allowed memory range",
        UNBOUNDED_MAP_MATH, UNBOUNDED_MAP_MATH, {1: HASH}),
    Row("map_no_null_check", LOOKUP + "ldxb %r0, [%r0+0]\n" + DONE,
        "invalid mem access 'map_value_or_null'", "invalid mem access 'map_value_or_null'",
        "invalid mem access 'map_value_or_null'", {1: HASH}),
    Row("map_rdonly_prog_write", CHECKED.replace("map_fd(1)", "map_fd(2)") +
        "stdw [%r0+0], 1\n" + DONE + OUT, "write into map forbidden",
        "write into map forbidden", "write into map forbidden", {2: RDONLY}),
    Row("map_wronly_prog_read", CHECKED.replace("map_fd(1)", "map_fd(3)") +
        "ldxdw %r0, [%r0+0]\n" + DONE + OUT, "read from map forbidden",
        "read from map forbidden", "read from map forbidden", {3: WRONLY}),
    # ------------------------------------------------------------ division
    Row("div_imm_zero", "mov %r0, 1\ndiv %r0, 0\nexit\n", "div by zero", "div by zero",
        "div by zero"),
    Row("mod_imm_zero", "mov %r0, 1\nmod %r0, 0\nexit\n", "div by zero", "div by zero",
        "div by zero"),
    Row("div_reg_zero", "ldxw %r2, [%r1+16]\nmov %r0, 1\ndiv %r0, %r2\nmod %r0, %r2\nexit\n",
        ACCEPT, ACCEPT, ACCEPT),
    Row("sdiv_imm_zero", "mov %r0, 1\nsdiv %r0, 0\nexit\n", "div by zero", "div by zero",
        "div by zero"),
    Row("sdiv_overflow", "lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nsmod %r0, -1\nexit\n",
        ACCEPT, ACCEPT, ACCEPT),
    # ------------------------------------------------------------ context
    Row("ctx_read_fields", "ldxw %r0, [%r1+12]\nldxw %r2, [%r1+16]\nldxw %r3, [%r1+8]\n"
        "ldxw %r4, [%r1+0]\nldxw %r5, [%r1+4]\nexit\n", ACCEPT, ACCEPT, ACCEPT),
    Row("ctx_egress_ifindex", "ldxw %r0, [%r1+20]\nexit\n",
        "invalid bpf_context access off=20 size=4", "invalid bpf_context access off=20 size=4",
        "invalid bpf_context access off=20 size=4"),
    Row("ctx_egress_ifindex_devmap", "ldxw %r0, [%r1+20]\nexit\n", ACCEPT, ACCEPT, ACCEPT,
        attach=AttachType.XDP_DEVMAP),
    Row("ctx_write", "stxw [%r1+16], %r1\n" + DONE, "invalid bpf_context access off=16 size=4",
        "leaks addr into ctx", "invalid bpf_context access off=16 size=4"),
    Row("ctx_store_imm", "stw [%r1+16], 0\n" + DONE, "BPF_ST stores into R1 ctx is not allowed",
        "invalid bpf_context access off=16 size=4", "invalid bpf_context access off=16 size=4"),
    Row("ctx_narrow_load", "ldxb %r0, [%r1+12]\nexit\n",
        "invalid bpf_context access off=12 size=1", "invalid bpf_context access off=12 size=1",
        "invalid bpf_context access off=12 size=1"),
    Row("ctx_modified", "add %r1, 4\nldxw %r0, [%r1+0]\nexit\n",
        "dereference of modified ctx ptr R1 off=4 disallowed",
        "dereference of modified ctx ptr R1 off=4 disallowed",
        "dereference of modified ctx ptr R1 off=4 disallowed"),
    # ------------------------------------------------------------ helpers
    Row("helper_gpl_only", "stw [%r10-4], 0\nmov %r3, %r10\nadd %r3, -4\nmov %r2, 0\n"
        "mov %r4, 0\nmov %r5, 0\ncall 163\n" + DONE,
        "cannot call GPL-restricted function from non-GPL compatible program",
        "cannot call GPL-restricted function from non-GPL compatible program",
        "cannot call GPL-restricted function from non-GPL compatible program",
        license="Proprietary"),
    Row("helper_trace_printk", "stdw [%r10-8], 0\nmov %r1, %r10\nadd %r1, -8\nmov %r2, 8\n"
        "call 6\n" + DONE, ACCEPT, "program of this type cannot use helper bpf_trace_printk#6",
        ACCEPT),
    Row("helper_task", "call 14\n" + DONE, "unknown func bpf_get_current_pid_tgid#14",
        ACCEPT, ACCEPT),
    Row("helper_tail_call", "lddw %r2, map_fd(4)\nmov %r3, 1\ncall 12\n" + DONE,
        ACCEPT, ACCEPT, ACCEPT, {4: PROG_ARRAY}),
    # ------------------------------------------------------------ references
    Row("helper_ringbuf_reserve_leak", RESERVE + DONE, "Unreleased reference id=2 alloc_insn=4",
        "Unreleased reference id=2 alloc_insn=4", "Unreleased reference id=2 alloc_insn=4",
        {5: RINGBUF}),
    Row("helper_ringbuf_reserve_submit", RESERVE + "jeq %r0, 0, out\n" + SUBMIT + DONE + OUT,
        ACCEPT, ACCEPT, ACCEPT, {5: RINGBUF}),
    Row("helper_sk_lookup_leak", SK_LOOKUP + DONE, "Unreleased reference id=2 alloc_insn=7",
        "Unreleased reference id=2 alloc_insn=7", "Unreleased reference id=2 alloc_insn=7"),
    Row("ref_sk_lookup_release", SK_LOOKUP + "jeq %r0, 0, out\nldxw %r2, [%r0+72]\n"
        "mov %r1, %r0\ncall 86\n" + DONE + OUT, ACCEPT, ACCEPT, ACCEPT),
    Row("ref_double_release", RESERVE + "jeq %r0, 0, out\nmov %r6, %r0\n" + SUBMIT
        + "mov %r1, %r6\nmov %r2, 0\ncall 133\n" + DONE + OUT, "R6 !read_ok", "R6 !read_ok",
        "R1 type=scalar expected=ringbuf_mem", {5: RINGBUF}),
    Row("ref_sk_double_release", SK_LOOKUP + "jeq %r0, 0, out\nmov %r6, %r0\nmov %r1, %r0\n"
        "call 86\nmov %r1, %r6\ncall 86\n" + DONE + OUT, "R6 !read_ok", "R6 !read_ok",
        "R1 type=scalar expected=sock_common, sock"),
    Row("ref_use_after_release", RESERVE + "jeq %r0, 0, out\nmov %r6, %r0\n" + SUBMIT
        + "stdw [%r6+0], 1\n" + DONE + OUT, "R6 !read_ok", "R6 !read_ok",
        "R6 invalid mem access 'scalar'", {5: RINGBUF}),
    Row("ref_release_unreferenced", CHECKED + "mov %r1, %r0\nmov %r2, 0\ncall 132\n" + DONE
        + OUT, "R1 type=map_value expected=ringbuf_mem", "R1 type=map_value expected=ringbuf_mem",
        "R1 type=map_value expected=ringbuf_mem", {1: HASH}),
    Row("ref_release_unchecked", RESERVE + SUBMIT + DONE,
        "R1 type=ringbuf_mem_or_null expected=ringbuf_mem",
        "R1 type=ringbuf_mem_or_null expected=ringbuf_mem",
        "R1 type=ringbuf_mem_or_null expected=ringbuf_mem", {5: RINGBUF}),
    Row("ref_release_modified", RESERVE + "jeq %r0, 0, out\nadd %r0, 4\n" + SUBMIT + DONE + OUT,
        "R1 must have zero offset when passed to release func",
        "R1 must have zero offset when passed to release func",
        "R1 must have zero offset when passed to release func", {5: RINGBUF}),
    Row("ref_tail_call", "mov %r6, %r1\n" + SK_LOOKUP + "jeq %r0, 0, out\nmov %r7, %r0\n"
        "mov %r1, %r6\nlddw %r2, map_fd(4)\nmov %r3, 1\ncall 12\nmov %r1, %r7\ncall 86\n"
        + DONE + OUT, "Unreleased reference id=2 alloc_insn=8",
        "Unreleased reference id=2 alloc_insn=8", "Unreleased reference id=2 alloc_insn=8",
        {4: PROG_ARRAY}),
    Row("ref_subprog_release", SK_LOOKUP + "jeq %r0, 0, out\nmov %r1, %r0\ncall local f\n"
        + DONE + OUT + "f:\ncall 86\nmov %r0, 0\nexit\n", ACCEPT, ACCEPT, ACCEPT),
    Row("ref_subprog_leak", "call local f\n" + DONE + "f:\n" + SK_LOOKUP + "mov %r0, 0\nexit\n",
        "Unreleased reference id=2 alloc_insn=10", "Unreleased reference id=2 alloc_insn=10",
        "Unreleased reference id=2 alloc_insn=10"),
    Row("ref_spilled_copy", SK_LOOKUP + "stxdw [%r10-24], %r0\njne %r0, 0, ok\n" + DONE
        + "ok:\nldxdw %r1, [%r10-24]\ncall 86\n" + DONE, ACCEPT, ACCEPT, ACCEPT),
    Row("ref_two_referenced_args", RESERVE + "mov %r6, %r0\n" + RESERVE + "jeq %r0, 0, out\n"
        "jeq %r6, 0, out2\nmov %r1, %r6\nmov %r2, 4\nmov %r3, %r0\nmov %r4, 4\nmov %r5, 0\n"
        "call 28\nmov %r1, %r6\nmov %r2, 0\ncall 132\nout2:\n" + SUBMIT + DONE + OUT,
        "more than one arg with ref_obj_id R3 4 2", "more than one arg with ref_obj_id R3 4 2",
        "more than one arg with ref_obj_id R3 4 2", {5: RINGBUF}),
    Row("sock_write", SK_LOOKUP + "jeq %r0, 0, out\nstw [%r0+72], 1\nmov %r1, %r0\ncall 86\n"
        + DONE + OUT, "R0 cannot write into sock", "R0 cannot write into sock",
        "R0 cannot write into sock"),
    Row("sock_common_field", SK_LOOKUP.replace("call 84", "call 99") + "jeq %r0, 0, out\n"
        "ldxw %r2, [%r0+8]\nmov %r1, %r0\ncall 86\n" + DONE + OUT,
        "R0 invalid sock_common access off=8 size=4", "R0 invalid sock_common access off=8 size=4",
        "R0 invalid sock_common access off=8 size=4"),
    Row("sock_wide_read", SK_LOOKUP + "jeq %r0, 0, out\nldxdw %r2, [%r0+0]\nmov %r1, %r0\n"
        "call 86\n" + DONE + OUT, "R0 invalid sock access off=0 size=8",
        "R0 invalid sock access off=0 size=8", "R0 invalid sock access off=0 size=8"),
    Row("sock_arith", SK_LOOKUP + "jeq %r0, 0, out\nadd %r0, 4\n" + DONE + OUT,
        "R0 pointer arithmetic on sock prohibited", "R0 pointer arithmetic on sock prohibited",
        "R0 pointer arithmetic on sock prohibited"),
    Row("sock_into_map", SK_LOOKUP + "jeq %r0, 0, out\nmov %r6, %r0\n" + LOOKUP
        + "jeq %r0, 0, rel\nstxdw [%r0+0], %r6\nrel:\nmov %r1, %r6\ncall 86\n" + DONE + OUT,
        "R6 leaks addr into map", "R6 leaks addr into map", ACCEPT, {1: HASH}),
    Row("ringbuf_mem_oob", RESERVE + "jeq %r0, 0, out\nstdw [%r0+8], 1\n" + SUBMIT + DONE + OUT,
        "invalid access to memory, mem_size=8 off=8 size=8",
        "invalid access to memory, mem_size=8 off=8 size=8",
        "invalid access to memory, mem_size=8 off=8 size=8", {5: RINGBUF}),
    Row("ringbuf_variable_size", "ldxw %r2, [%r1+16]\nand %r2, 8\n" + RESERVE.replace(
        "mov %r2, 8\n", "") + "jeq %r0, 0, out\n" + SUBMIT + DONE + OUT,
        "R2 is not a known constant", "R2 is not a known constant",
        "R2 is not a known constant", {5: RINGBUF}),
    # ------------------------------------------------------------ helpers (continued)
    Row("helper_spin_lock", "stw [%r10-4], 0\nmov %r1, %r10\nadd %r1, -4\ncall 93\n" + DONE,
        "R1 type=fp expected=map_value", "R1 type=fp expected=map_value",
        "R1 type=fp expected=map_value"),
    # ------------------------------------------------------------ bpf_spin_lock
    Row("lock_unlock", LOCKED_VALUE + LOCK + UNLOCK + DONE + OUT, ACCEPT, ACCEPT, ACCEPT,
        {6: LOCKED}),
    Row("lock_at_offset", LOCKED_VALUE + "mov %r1, %r7\nadd %r1, 8\ncall 93\n"
        "mov %r1, %r7\nadd %r1, 8\ncall 94\n" + DONE + OUT, ACCEPT,
        "bpf_spin_lock cannot be accessed directly by load/store", ACCEPT, {6: LOCKED_AT_8}),
    Row("lock_exit_locked", LOCKED_VALUE + LOCK + DONE + OUT, EXIT_LOCKED, EXIT_LOCKED,
        EXIT_LOCKED, {6: LOCKED}),
    Row("lock_call_locked", LOCKED_VALUE + LOCK + "call 5\n" + UNLOCK + DONE + OUT,
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock", {6: LOCKED}),
    Row("lock_tail_call_locked", LOCKED_VALUE + LOCK + "mov %r1, %r6\nlddw %r2, map_fd(4)\n"
        "mov %r3, 0\ncall 12\n" + UNLOCK + DONE + OUT,
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock", {4: PROG_ARRAY, 6: LOCKED}),
    Row("lock_subprog_locked", LOCKED_VALUE + LOCK + "call local fn\n" + UNLOCK + DONE + OUT
        + "fn:\nmov %r0, 0\nexit\n", ACCEPT, None, ACCEPT, {6: LOCKED}),
    Row("lock_double", LOCKED_VALUE + LOCK + LOCK + UNLOCK + DONE + OUT,
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock", {6: LOCKED}),
    Row("lock_unlock_unlocked", LOCKED_VALUE + UNLOCK + DONE + OUT,
        "bpf_spin_unlock without taking a lock", "bpf_spin_unlock without taking a lock",
        "bpf_spin_unlock without taking a lock", {6: LOCKED}),
    Row("lock_unlock_other", LOCKED_VALUE + CHECKED.replace("map_fd(1)", "map_fd(6)")
        + "mov %r1, %r0\ncall 93\n" + UNLOCK + DONE + OUT, "bpf_spin_unlock of different lock",
        "bpf_spin_unlock of different lock", "bpf_spin_unlock of different lock",
        {6: LOCKED}),
    Row("lock_field_access", LOCKED_VALUE + "ldxw %r1, [%r7+0]\n" + DONE + OUT,
        "bpf_spin_lock cannot be accessed directly by load/store",
        "bpf_spin_lock cannot be accessed directly by load/store",
        "bpf_spin_lock cannot be accessed directly by load/store", {6: LOCKED}),
    Row("lock_wrong_offset", LOCKED_VALUE + "mov %r1, %r7\nadd %r1, 4\ncall 93\n" + DONE
        + OUT, "off 4 doesn't point to 'struct bpf_spin_lock' that is at 0",
        "off 4 doesn't point to 'struct bpf_spin_lock' that is at 0",
        "off 4 doesn't point to 'struct bpf_spin_lock' that is at 0", {6: LOCKED}),
    Row("lock_or_null", LOOKUP.replace("map_fd(1)", "map_fd(6)") + "mov %r1, %r0\n"
        "call 93\n" + DONE, "R1 type=map_value_or_null expected=map_value",
        "R1 type=map_value_or_null expected=map_value",
        "R1 type=map_value_or_null expected=map_value", {6: LOCKED}),
    Row("lock_no_lock_in_map", CHECKED + "mov %r1, %r0\ncall 93\n" + DONE + OUT,
        "map 'hash' has no valid bpf_spin_lock",
        "map 'hash' has to have BTF in order to use bpf_spin_lock",
        "map 'hash' has to have BTF in order to use bpf_spin_lock", {1: HASH}),
    # ------------------------------------------------------------ calls, loops, limits
    Row("call_bpf2bpf", CALLS, ACCEPT, None, ACCEPT),
    Row("call_too_deep", TOO_DEEP, "too deep", "the call stack of 9 frames is too deep",
        "the call stack of 9 frames is too deep"),
    Row("call_recursion", "call local fn\nexit\nfn:\ncall local fn\nexit\n",
        "recursive call from insn", "the call stack of 9 frames is too deep",
        "the call stack of 9 frames is too deep"),
    Row("loop_bounded", "mov %r1, 0\nmov %r0, 0\nloop:\nadd %r0, %r1\nadd %r1, 1\n"
        "jlt %r1, 100, loop\n" + DONE, ACCEPT, None, ACCEPT),
    Row("loop_infinite", "mov %r0, 0\nloop:\njeq %r0, 0, loop\nexit\n",
        "infinite loop detected at insn 1", "infinite loop detected at insn 1",
        "infinite loop detected at insn 1"),
    Row("limit_processed", "mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 3000000, loop\n" + DONE,
        "BPF program is too large. Processed", "The sequence of 8193 jumps is too complex",
        None, caps=small(max_processed_insns=1000),
        unchecked="a million instructions take the kernel seconds to process"),
    Row("limit_insns", "mov %r0, 0\n" * 5 + DONE, "BPF program is too large", None, None,
        caps=small(max_insns=4), unchecked="the kernel's limits are 4096 and 1,000,000 "
        "instructions; the device's is its profile's"),
    Row("kfunc", "call kfunc 5\n" + DONE, "kernel function calls are not supported", None,
        "kernel btf_id 5 is not a function"),
    Row("ld_abs", "mov %r6, %r1\nldabsw 0\n" + DONE,
        "BPF_LD_[ABS|IND] instructions not allowed", "BPF_LD_[ABS|IND] instructions not allowed",
        "BPF_LD_[ABS|IND] instructions not allowed"),
    # ------------------------------------------------------------ callbacks (bpf_loop)
    Row("callback_loop", "stdw [%r10-8], 0\n" + loop_call(ctx="mov %r3, %r10\nadd %r3, -8")
        + DONE + "cb:\nldxdw %r3, [%r2+0]\nadd %r3, 1\nstxdw [%r2+0], %r3\nmov %r0, 0\n"
        "exit\n", ACCEPT, ACCEPT, ACCEPT),
    Row("callback_bad_return", loop_call() + DONE + "cb:\nmov %r0, 2\nexit\n",
        "At callback return the register R0 has 2 should have been in [0, 1]",
        "At callback return the register R0 has smin=2 smax=2 should have been in [0, 1]",
        "At callback return the register R0 has smin=2 smax=2 should have been in [0, 1]"),
    Row("callback_flags", loop_call(flags="mov %r4, 1") + DONE + CALLBACK,
        "R4 flags of bpf_loop must be 0", ACCEPT, ACCEPT),
    Row("callback_caller_regs", "mov %r6, 7\n" + loop_call() + DONE +
        "cb:\nmov %r0, %r6\nand %r0, 1\nexit\n", "R6 !read_ok", "R6 !read_ok", "R6 !read_ok"),
    Row("callback_ctx_not_stack", "mov %r6, %r1\n" + loop_call(ctx="mov %r3, %r6") + DONE +
        CALLBACK, "R3 type=ctx expected=fp", "R3 type=ctx expected=fp",
        "R3 type=ctx expected=fp"),
    Row("callback_zero_runs", loop_call(ctx="mov %r3, %r10\nadd %r3, -8") +
        "ldxdw %r0, [%r10-8]\n" + DONE + "cb:\nstdw [%r2+0], 1\nmov %r0, 0\nexit\n",
        "invalid read from stack off -8+0 size 8", "invalid read from stack R10 off=-8 size=8",
        ACCEPT),
    Row("callback_second_run", "stdw [%r10-8], 0\nstdw [%r10-16], 0\n" +
        loop_call(count="mov %r1, 2", ctx="mov %r3, %r10\nadd %r3, -16") + DONE +
        "cb:\nldxdw %r3, [%r2+8]\nmov %r4, %r2\nadd %r4, %r3\nldxb %r5, [%r4+8]\n"
        "stdw [%r2+8], 8\nmov %r0, 0\nexit\n", "invalid stack off=0 size=1",
        "R4 tried to add from different maps, paths or scalars",
        "invalid read from stack R4 off=0 size=1"),
    Row("callback_stale_packet", "ldxw %r7, [%r1+0]\nldxw %r8, [%r1+4]\nmov %r2, %r7\n"
        "add %r2, 14\njgt %r2, %r8, out\nstxdw [%r10-8], %r1\n" +
        loop_call(count="mov %r1, 1", ctx="mov %r3, %r10\nadd %r3, -8") +
        "ldxb %r0, [%r7+0]\n" + OUT + "cb:\nldxdw %r1, [%r2+0]\nmov %r2, 0\ncall 44\n"
        "mov %r0, 0\nexit\n", "R7 !read_ok", "R7 !read_ok", "R7 invalid mem access 'scalar'"),
    Row("callback_func_deref", "lddw %r1, func cb\nldxb %r0, [%r1+0]\nexit\n" + CALLBACK,
        "R1 invalid mem access 'func'", "R1 invalid mem access 'func'",
        "R1 invalid mem access 'func'"),
    Row("callback_func_arith", "lddw %r2, func cb\nadd %r2, 8\n" + DONE + CALLBACK,
        "R2 pointer arithmetic on func prohibited", ACCEPT, ACCEPT),
    Row("callback_func_leak", "lddw %r0, func cb\nexit\n" + CALLBACK,
        "R0 leaks addr as return value", "R0 leaks addr as return value", ACCEPT),
    Row("callback_count_pointer", loop_call(count="mov %r1, %r10") + DONE + CALLBACK,
        "R1 leaks addr into helper function", "R1 leaks addr into helper function", "EFAULT"),
    Row("callback_tail_call", "stxdw [%r10-8], %r1\n" +
        loop_call(ctx="mov %r3, %r10\nadd %r3, -8") + DONE + "cb:\nldxdw %r1, [%r2+0]\n"
        "lddw %r2, map_fd(4)\nmov %r3, 0\ncall 12\nmov %r0, 0\nexit\n",
        "bpf_tail_call is not allowed in a callback", "EFAULT", "EFAULT", {4: PROG_ARRAY}),
    Row("callback_locked", LOCKED_VALUE + LOCK + loop_call() + UNLOCK + DONE + OUT + CALLBACK,
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock", {6: LOCKED}),
    Row("callback_keeps_lock", loop_call(count="mov %r1, 1") + DONE + "cb:\nstw [%r10-4], 0\n"
        "mov %r2, %r10\nadd %r2, -4\nlddw %r1, map_fd(6)\ncall 1\njeq %r0, 0, cbout\n"
        "mov %r1, %r0\ncall 93\ncbout:\nmov %r0, 0\nexit\n",
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock",
        "function calls are not allowed while holding a lock", {6: LOCKED}),
    # -- global functions (BTF func_info linkage GLOBAL) -------------------------------------
    Row("global_scalars", "mov %r1, 1\nmov %r2, 2\ncall local fn\nand %r0, 1\nadd %r0, 1\n"
        "exit\nfn:\nmov %r0, %r1\nadd %r0, %r2\nexit\n", ACCEPT, ACCEPT, ACCEPT,
        globals=(("fn", (SCALAR_ARG, SCALAR_ARG)),)),
    Row("global_pointer_as_number", "mov %r1, %r10\ncall local fn\n" + DONE + "fn:\nmov %r0, 0\n"
        "exit\n", "R1 is not a scalar", "R1 is not a scalar", "R1 is not a scalar",
        globals=(("fn", (SCALAR_ARG,)),)),
    Row("global_ctx_expected", "mov %r1, 0\ncall local fn\n" + DONE + "fn:\nmov %r0, 0\n"
        "exit\n", "arg#0 expects pointer to ctx", "arg#0 expects pointer to ctx",
        "arg#0 expects pointer to ctx", globals=(("fn", (CTX_ARG,)),)),
    Row("global_mem_unchecked", GLOBAL_MEM_CALL + "fn:\nldxdw %r0, [%r1+0]\nexit\n",
        "R1 invalid mem access 'mem_or_null'", "R1 invalid mem access 'mem_or_null'",
        "R1 invalid mem access 'mem_or_null'", globals=(("fn", (MEM8_ARG,)),)),
    Row("global_mem_checked", GLOBAL_MEM_CALL + GLOBAL_MEM_FN, ACCEPT, ACCEPT, ACCEPT,
        globals=(("fn", (MEM8_ARG,)),)),
    Row("global_mem_uninit", "mov %r1, %r10\nadd %r1, -8\ncall local fn\n" + DONE
        + GLOBAL_MEM_FN, "invalid indirect read from stack R1 off -8+0 size 8",
        "invalid read from stack R1 off=-8 size=8", ACCEPT, globals=(("fn", (MEM8_ARG,)),)),
    Row("global_mem_too_small", CHECKED + "mov %r1, %r0\ncall local fn\n" + DONE + OUT
        + GLOBAL_MEM_FN, "invalid access to map value, value_size=8 off=0 size=16",
        "invalid access to map value, value_size=8 off=0 size=16",
        "invalid access to map value, value_size=8 off=0 size=16", {1: HASH},
        globals=(("fn", (FuncArg(ArgKind.MEM, 16),)),)),
    Row("global_mem_written", "stdw [%r10-8], 0\n" + GLOBAL_MEM_CALL.replace(
        "stdw [%r10-8], 0\n", "") .replace(DONE, "ldxdw %r1, [%r10-8]\njeq %r1, 0, +1\n"
        "ldxw %r0, [%r1+0]\n" + DONE) + GLOBAL_MEM_FN,
        "R1 invalid mem access 'scalar'", "R1 invalid mem access 'scalar'",
        "R1 invalid mem access 'scalar'", globals=(("fn", (MEM8_ARG,)),)),
    Row("global_r0_unknown", "mov %r1, 0\ncall local fn\njeq %r0, 0, +1\nldxw %r0, [%r0+0]\n"
        + DONE + "fn:\nmov %r0, 0\nexit\n", "R0 invalid mem access 'scalar'",
        "R0 invalid mem access 'scalar'", "R0 invalid mem access 'scalar'",
        globals=(("fn", (SCALAR_ARG,)),)),
    Row("global_returns_pointer", "call local fn\n" + DONE + "fn:\nmov %r0, %r1\nexit\n",
        "R0 leaks addr as return value", "R0 leaks addr as return value",
        "At subprogram exit the register R0 is not a scalar value (ctx)",
        globals=(("fn", (CTX_ARG,)),)),
    Row("global_locked", LOCKED_VALUE + LOCK + "mov %r1, 1\ncall local fn\n" + UNLOCK + DONE
        + OUT + "fn:\nmov %r0, 0\nexit\n",
        "global function calls are not allowed while holding a lock",
        "global function calls are not allowed while holding a lock",
        "global function calls are not allowed while holding a lock", {6: LOCKED},
        globals=(("fn", (SCALAR_ARG,)),)),
    Row("global_callback", loop_call(count="mov %r1, 1") + DONE + "cb:\nmov %r0, 0\nexit\n",
        "callback function not static", "callback function not static",
        "callback function not static", globals=(("cb", (SCALAR_ARG, SCALAR_ARG)),)),
    Row("global_stale_pkt", PKT + "mov %r7, %r2\nmov %r1, %r6\ncall local fn\n"
        "ldxb %r0, [%r7+0]\n" + DONE + OUT + "fn:\nmov %r2, 0\ncall 44\nmov %r0, 0\nexit\n",
        "R7 !read_ok", "R7 !read_ok", "R7 invalid mem access 'scalar'",
        globals=(("fn", (CTX_ARG,)),)),
]
IDS = [row.id for row in ROWS]


def _insns(row: Row) -> tuple[Instruction, ...]:
    return tuple(assemble(row.src)) if isinstance(row.src, str) else row.src


def _device(row: Row) -> tuple[bool, str]:
    try:
        verify(_insns(row), caps=row.caps, maps=row.maps, license=row.license,
               expected_attach_type=row.attach, functions=row.functions)
    except VerifierError as err:
        return False, err.reason
    return True, ""


def _matches(expected: str, verdict: tuple[bool, str]) -> bool:
    accepted, reason = verdict
    return accepted if expected == ACCEPT else (not accepted and expected in reason)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_device_verdict(row):
    verdict = _device(row)
    assert _matches(row.device, verdict), f"{row.id}: the device says {verdict}"


KERNEL, WHY = kernel_available()
UNPRIV_OK, UNPRIV_WHY = unpriv_mode_usable() if KERNEL else (False, WHY)


@pytest.mark.skipif(not KERNEL, reason=f"the host kernel's bpf() is unusable: {WHY}")
@pytest.mark.parametrize("mode", [PRIV, UNPRIV])
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_kernel_verdict(row, mode):
    expected = row.priv if mode == PRIV else row.unpriv
    if expected is None:
        pytest.skip(row.unchecked)
    if mode == UNPRIV and not UNPRIV_OK:
        pytest.skip(f"cannot drop CAP_PERFMON here: {UNPRIV_WHY}")
    verdict = kernel_verdict(_insns(row), row.maps, mode, license=row.license,
                             expected_attach_type=row.attach, functions=row.functions)
    assert _matches(expected, verdict), f"{row.id} ({mode}): the kernel says {verdict}"


def _section(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading)
    level = heading.split(" ")[0]
    ends = [i for i in (text.find("\n## ", start + 1), text.find("\n" + level + " ", start + 1))
            if i >= 0]
    return text[start:min(ends) if ends else len(text)]


def _doc_ids() -> list[str]:
    """The case each table row names: ``(`case`)`` closing its first cell."""
    cell = r"(?:[^|\\\n]|\\.)*"  # a table cell: no unescaped pipe
    return re.findall(rf"^\|{cell}\(`([a-z0-9_]+)`\)\s*\|", _section("## Policy table"),
                      flags=re.MULTILINE)


def test_the_documented_table_and_the_cases_name_each_other():
    documented = _doc_ids()
    assert len(documented) == len(set(documented)), "a row is documented twice"
    assert sorted(documented) == sorted(IDS)


def test_where_the_device_is_more_lenient_than_unprivileged_linux_the_documentation_says_why():
    """Every case the device accepts and unprivileged Linux refuses is listed, with why, in the
    section on exceptions, and that section lists no other."""
    lenient = {row.id for row in ROWS if row.device == ACCEPT and row.unpriv not in (None, ACCEPT)}
    listed = set(re.findall(r"`([a-z0-9_]+)`",
                            _section("### Where the device is more lenient than unprivileged")))
    assert lenient and lenient == listed & set(IDS)
