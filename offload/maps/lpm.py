"""BPF_MAP_TYPE_LPM_TRIE (kernel/bpf/lpm_trie.c): longest-prefix match over bit strings.

A key is ``struct bpf_lpm_trie_key_u8``: a little-endian u32 ``prefixlen`` and ``key_size - 4``
bytes of data compared most significant bit first (network order). Updates and deletes name
one prefix exactly; a lookup returns the value of the longest stored prefix that covers the
key's first ``prefixlen`` bits. Bits past a prefix are ignored for matching but kept: the key
an element reports is the one it was last written with.

get_next_key walks the trie in post order - more specific prefixes before the prefixes that
contain them, the 0 branch before the 1 branch - like ``trie_get_next_key()``. That order is
a plain sort on a derived key: the data with every bit past the prefix set to 1, then the
prefix length descending; elements are kept sorted on it, so a walk resumes by bisection
after any change.
"""

from __future__ import annotations

import errno
from bisect import bisect_right, insort
from collections.abc import Iterator

from ..errors import ErrnoError
from ..uapi import MapFlags, UpdateFlags
from .array import ACCESS_MASK
from .base import Map
from .spec import MapSpec

LPM_DATA_SIZE_MIN = 1
LPM_DATA_SIZE_MAX = 256
LPM_KEY_SIZE_MIN = 4 + LPM_DATA_SIZE_MIN
LPM_KEY_SIZE_MAX = 4 + LPM_DATA_SIZE_MAX
LPM_VAL_SIZE_MIN = 1
LPM_VAL_SIZE_MAX = (4 << 20) - LPM_DATA_SIZE_MAX - 24  # KMALLOC_MAX_SIZE - data - node
LPM_CREATE_FLAG_MASK = int(MapFlags.NO_PREALLOC | MapFlags.NUMA_NODE | ACCESS_MASK)


class LpmTrieMap(Map):
    """Prefixes of up to ``8 * (key_size - 4)`` bits mapped to values."""

    def __init__(self, spec: MapSpec, **kwargs) -> None:
        super().__init__(spec, **kwargs)
        self.data_size = self.key_size - 4
        self.max_prefixlen = self.data_size * 8
        self._entries: dict[bytes, list] = {}  # order key -> [stored key, value buffer]
        self._order: list[bytes] = []
        self._lengths: dict[int, int] = {}
        self._longest_first: list[int] = []

    @classmethod
    def check_spec(cls, spec: MapSpec, ncpus: int) -> None:
        problems = []
        if spec.max_entries == 0:
            problems.append("max_entries must be at least 1")
        if not spec.flags & MapFlags.NO_PREALLOC:
            problems.append("BPF_F_NO_PREALLOC is required")
        if spec.flags & ~LPM_CREATE_FLAG_MASK:
            problems.append(f"map_flags {spec.flags & ~LPM_CREATE_FLAG_MASK:#x} are not valid")
        if not LPM_KEY_SIZE_MIN <= spec.key_size <= LPM_KEY_SIZE_MAX:
            problems.append(f"key_size must be {LPM_KEY_SIZE_MIN}..{LPM_KEY_SIZE_MAX} (u32 "
                            f"prefixlen plus 1..{LPM_DATA_SIZE_MAX} data bytes), not {spec.key_size}")
        if not LPM_VAL_SIZE_MIN <= spec.value_size <= LPM_VAL_SIZE_MAX:
            problems.append(f"value_size must be {LPM_VAL_SIZE_MIN}..{LPM_VAL_SIZE_MAX}, not "
                            f"{spec.value_size}")
        if problems:
            raise ErrnoError(errno.EINVAL, "Invalid LPM_TRIE map: " + "; ".join(problems) + ".")

    # -- prefixes ----------------------------------------------------------------------------

    def _split(self, key: bytes) -> tuple[int, int]:
        return int.from_bytes(key[:4], "little"), int.from_bytes(key[4:], "big")

    def _order_key(self, data: int, prefixlen: int) -> bytes:
        host_bits = self.max_prefixlen - prefixlen
        covered = data | ((1 << host_bits) - 1)
        return covered.to_bytes(self.data_size, "big") + host_bits.to_bytes(2, "big")

    def _prefix(self, key: bytes, what: str) -> bytes:
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            raise ErrnoError(errno.EINVAL, f"Cannot {what} prefix length {prefixlen}: this trie "
                                           f"holds prefixes of at most {self.max_prefixlen} bits.")
        return self._order_key(data, prefixlen)

    def _match(self, key: bytes) -> list | None:
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            return None
        entries = self._entries
        for length in self._longest_first:
            if length <= prefixlen:
                found = entries.get(self._order_key(data, length))
                if found is not None:
                    return found
        return None

    def _count_length(self, prefixlen: int, delta: int) -> None:
        count = self._lengths.get(prefixlen, 0) + delta
        if count:
            self._lengths[prefixlen] = count
        else:
            del self._lengths[prefixlen]
        if count in (0, 1):
            self._longest_first = sorted(self._lengths, reverse=True)

    # -- hooks -------------------------------------------------------------------------------

    def _count(self) -> int:
        return len(self._entries)

    def _lookup(self, key: bytes) -> bytes | None:
        found = self._match(key)
        return None if found is None else bytes(found[1])

    def _store(self, key: bytes, value: bytes, flags: int) -> None:
        order_key = self._prefix(key, "store")
        entry = self._entries.get(order_key)
        if entry is not None and flags == UpdateFlags.NOEXIST:
            raise ErrnoError(errno.EEXIST, "This prefix is already in the trie (BPF_NOEXIST).")
        if entry is None and flags == UpdateFlags.EXIST:
            raise ErrnoError(errno.ENOENT, "This prefix is not in the trie (BPF_EXIST).")
        if entry is None:
            if len(self._entries) >= self.max_entries:
                raise ErrnoError(errno.ENOSPC, f"The trie is full ({self.max_entries} prefixes).")
            self._entries[order_key] = [key, bytearray(value)]
            insort(self._order, order_key)
            self._count_length(self._split(key)[0], 1)
        else:
            entry[0] = key
            entry[1][:] = value
        self._touch(key)

    def _update(self, key: bytes, value: bytes, flags: int) -> None:
        self._store(key, value, flags)

    def _program_update(self, key: bytes, value: bytes, flags: int, cpu: int) -> None:
        self._store(key, value, flags)

    def _delete(self, key: bytes) -> None:
        order_key = self._prefix(key, "delete")
        entry = self._entries.pop(order_key, None)
        if entry is None:
            raise ErrnoError(errno.ENOENT, "This prefix is not in the trie.")
        position = bisect_right(self._order, order_key) - 1
        del self._order[position]
        self._count_length(self._split(key)[0], -1)
        self._touch(entry[0])

    def _exact(self, key: bytes) -> tuple[bytes, bytes] | None:
        prefixlen, data = self._split(key)
        if prefixlen > self.max_prefixlen:
            return None
        entry = self._entries.get(self._order_key(data, prefixlen))
        return None if entry is None else (entry[0], bytes(entry[1]))

    def _next_key(self, key: bytes | None) -> bytes | None:
        position = 0
        if key is not None:
            prefixlen, data = self._split(key)
            if prefixlen <= self.max_prefixlen:
                order_key = self._order_key(data, prefixlen)
                if order_key in self._entries:
                    position = bisect_right(self._order, order_key)
        if position >= len(self._order):
            return None
        return self._entries[self._order[position]][0]

    def _ref(self, key: bytes, cpu: int) -> tuple[bytes, bytearray] | None:
        found = self._match(key)
        return None if found is None else (found[0], found[1])

    def _iter_entries(self) -> Iterator[tuple[bytes, bytes]]:
        order = self._order
        position = 0
        while position < len(order):
            order_key = order[position]
            entry = self._entries[order_key]
            yield entry[0], bytes(entry[1])
            position = bisect_right(order, order_key)
