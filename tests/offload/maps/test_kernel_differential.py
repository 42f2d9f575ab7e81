"""The same operations on the host kernel's maps and on ours give the same errno and data.

Uses bpf(2) through ctypes; skipped where the kernel refuses it (not root, seccomp, no bpf).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offload.errors import ErrnoError
from offload.maps import MapSpec, create_map
from offload.uapi import MapFlags, MapType

SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
MAP_CREATE, LOOKUP, UPDATE, DELETE, NEXT_KEY, FREEZE = 0, 1, 2, 3, 4, 22


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


LIBC = _libc()


def bpf(cmd: int, attr: bytearray) -> int:
    buffer = (ctypes.c_char * len(attr)).from_buffer(attr)
    result = LIBC.syscall(SYS_BPF, ctypes.c_int(cmd), buffer, ctypes.c_uint(len(attr)))
    return -ctypes.get_errno() if result < 0 else result


class KernelMap:
    """A host-kernel map answering like ours: values, or the errno it failed with."""

    def __init__(self, spec: MapSpec) -> None:
        attr = bytearray(128)
        struct.pack_into("<5I", attr, 0, spec.type, spec.key_size, spec.value_size,
                         spec.max_entries, spec.flags)
        self.fd = bpf(MAP_CREATE, attr)
        self.spec = spec

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)

    def _elem(self, cmd: int, key: bytes | None, value: bytes | None = None, flags: int = 0,
              out: int = 0):
        keybuf = ctypes.create_string_buffer(key, len(key)) if key is not None else None
        valbuf = ctypes.create_string_buffer(value or bytes(out), max(len(value or b""), out, 1))
        attr = bytearray(128)
        struct.pack_into("<IIQQQ", attr, 0, self.fd, 0,
                         ctypes.addressof(keybuf) if keybuf is not None else 0,
                         ctypes.addressof(valbuf) if cmd != DELETE else 0, flags)
        result = bpf(cmd, attr)
        return (result, valbuf.raw[:out]) if result >= 0 else (result, None)

    def lookup(self, key):
        return self._elem(LOOKUP, key, out=self.spec.value_size)

    def update(self, key, value, flags):
        return self._elem(UPDATE, key, value, flags)[0], None

    def delete(self, key):
        return self._elem(DELETE, key)[0], None

    def get_next_key(self, key):
        return self._elem(NEXT_KEY, key, out=self.spec.key_size)

    def freeze(self):
        attr = bytearray(128)
        struct.pack_into("<I", attr, 0, self.fd)
        return bpf(FREEZE, attr), None


def ours(call, *args):
    try:
        value = call(*args)
    except ErrnoError as exc:
        return -exc.errno, None
    return 0, value


def _probe() -> str | None:
    if SYS_BPF is None or LIBC is None:
        return "bpf(2) syscall number unknown on this platform"
    kmap = KernelMap(MapSpec("probe", MapType.ARRAY, 4, 4, 1))
    if kmap.fd < 0:
        return f"the host kernel refused BPF_MAP_CREATE ({errno.errorcode.get(-kmap.fd)})"
    kmap.close()
    return None


REASON = _probe()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

SPECS = {
    "array": MapSpec("a", MapType.ARRAY, 4, 4, 4),
    "hash": MapSpec("h", MapType.HASH, 4, 4, 2),
    "lpm": MapSpec("l", MapType.LPM_TRIE, 6, 4, 2, MapFlags.NO_PREALLOC),
}
KEYS = {
    "array": st.integers(0, 5).map(lambda i: struct.pack("<I", i)),
    "hash": st.integers(0, 5).map(lambda i: struct.pack("<I", i)),
    "lpm": st.builds(lambda p, d: struct.pack("<I", p) + bytes(d), st.integers(0, 17),
                     st.lists(st.sampled_from([0, 0x80, 0xC0, 0xFF, 0x0F]), min_size=2,
                              max_size=2)),
}


def ops(kind: str):
    key = KEYS[kind]
    value = st.binary(min_size=4, max_size=4)
    update = st.tuples(st.just("update"), key, value, st.sampled_from([0, 0, 1, 2, 3, 4]))
    return st.lists(st.one_of(
        update, update, update,
        st.tuples(st.just("lookup"), key),
        st.tuples(st.just("delete"), key),
        st.tuples(st.just("get_next_key"), st.one_of(st.none(), key)),
    ), min_size=8, max_size=30).flatmap(
        lambda body: st.sampled_from([body, body + [("freeze",)] + body]))


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_same_errnos_as_the_kernel(kind):
    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(ops(kind))
    def check(sequence):
        spec = SPECS[kind]
        kernel, mine = KernelMap(spec), create_map(spec)
        try:
            for op in sequence:
                name, args = op[0], op[1:]
                got_kernel = getattr(kernel, name)(*args)
                got_mine = ours(getattr(mine, name), *args)
                if name == "get_next_key" and kind == "hash":
                    # Hash iteration order is the kernel's bucket order, so only a walk's start
                    # (no key, or a missing one) is comparable: it succeeds iff the map has keys.
                    if args[0] is None or ours(mine.lookup, args[0])[0] != 0:
                        assert (got_kernel[0] == 0) == (got_mine[0] == 0), (op, got_kernel,
                                                                             got_mine)
                    continue
                assert got_kernel == got_mine, (op, got_kernel, got_mine)
            walk_kernel, walk_mine, key = [], [], None
            while (step := kernel.get_next_key(key))[0] == 0:
                walk_kernel.append(step[1])
                key = step[1]
            walk_mine = [k for k, _ in mine.items()]
            if kind == "hash":
                walk_kernel.sort()
                walk_mine.sort()
            assert walk_kernel == walk_mine
        finally:
            kernel.close()

    check()
