"""Build ``.BTF`` blobs type by type, for tests (layout of Documentation/bpf/btf.rst)."""

from __future__ import annotations

import struct

from offload.loader.btf_layout import BtfKind


class BtfWriter:
    """Types are numbered from 1 in the order they are added; each ``add`` returns the id."""

    def __init__(self) -> None:
        self.types: list[bytes] = []
        self.strings = bytearray(b"\0")

    def name(self, text: str) -> int:
        if not text:
            return 0
        offset = len(self.strings)
        self.strings.extend(text.encode() + b"\0")
        return offset

    def add(self, kind: BtfKind, name: str = "", vlen: int = 0, size_or_type: int = 0,
            extra: bytes = b"", kind_flag: bool = False) -> int:
        info = (int(kind_flag) << 31) | (int(kind) << 24) | vlen
        self.types.append(struct.pack("<III", self.name(name), info, size_or_type) + extra)
        return len(self.types)

    def int_(self, name: str, size: int, bits: int | None = None, signed: bool = False) -> int:
        encoding = 1 if signed else 0
        return self.add(BtfKind.INT, name, 0, size,
                        struct.pack("<I", encoding << 24 | (bits if bits is not None else size * 8)))

    def ptr(self, target: int) -> int:
        return self.add(BtfKind.PTR, size_or_type=target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self.add(BtfKind.ARRAY, extra=struct.pack("<III", elem, index, nelems))

    def struct(self, name: str, size: int, members: list[tuple[str, int, int]],
               union: bool = False) -> int:
        extra = b"".join(struct.pack("<III", self.name(n), t, off) for n, t, off in members)
        return self.add(BtfKind.UNION if union else BtfKind.STRUCT, name, len(members), size,
                        extra)

    def blob(self) -> bytes:
        types = b"".join(self.types)
        strings = bytes(self.strings)
        header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                             len(strings))
        return header + types + strings
