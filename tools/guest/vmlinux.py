#!/usr/bin/env python3
"""The ELF kernel inside a bzImage, so QEMU can boot it directly through its PVH entry.

    python3 tools/guest/vmlinux.py BZIMAGE OUT

A bzImage boots through the BIOS option ROM that reads the image in and then decompresses it;
under TCG those two steps take about 3.5 s of a 5 s boot. The boot protocol (Linux's
Documentation/arch/x86/boot.rst, version 2.08 and later) names where the compressed payload
lies: ``payload_offset`` and ``payload_length`` at 0x248 and 0x24c, counted from the
protected-mode code, which starts after the ``setup_sects`` (0x1f1) + 1 sectors of real-mode
setup. The payload is decompressed here with the format its magic names.
"""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

HEADER_MAGIC = b"HdrS"  # at 0x202 in every bzImage with a boot protocol header
ELF_MAGIC = b"\x7fELF"


class NotAKernel(Exception):
    """The file holds no kernel this tool can take out, and why."""


def payload(image: bytes) -> bytes:
    if len(image) < 0x250 or image[0x202:0x206] != HEADER_MAGIC:
        raise NotAKernel("not a bzImage: no boot protocol header at 0x202")
    version = struct.unpack_from("<H", image, 0x206)[0]
    if version < 0x208:
        raise NotAKernel(f"boot protocol {version >> 8}.{version & 0xff} names no payload")
    setup_sects = image[0x1F1] or 4  # 0 means 4, as the protocol says
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    return image[start:start + length]


def decompress(data: bytes) -> bytes:
    # each stream is followed by the decompressed size: the decompressors stop at its end,
    # and a stream cut short ends nowhere (eof stays false)
    stream: lzma.LZMADecompressor | zlib._Decompress | None = None
    if data.startswith(b"\xfd7zXZ\x00"):
        stream = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif data.startswith(b"\x1f\x8b"):
        stream = zlib.decompressobj(wbits=31)
    if stream is not None:
        kernel = stream.decompress(data)
        if not stream.eof:
            raise NotAKernel("the compressed kernel ends early")
        return kernel
    if data.startswith(b"\x28\xb5\x2f\xfd") and shutil.which("zstd"):
        return subprocess.run(["zstd", "-qdc"], input=data, capture_output=True,
                              check=True).stdout
    raise NotAKernel(f"unknown payload compression (magic {data[:6].hex()})")


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    try:
        kernel = decompress(payload(Path(sys.argv[1]).read_bytes()))
    except (NotAKernel, OSError, lzma.LZMAError, zlib.error,
            subprocess.CalledProcessError) as exc:
        raise SystemExit(f"{sys.argv[1]}: {exc}") from None
    if not kernel.startswith(ELF_MAGIC):
        raise SystemExit(f"{sys.argv[1]}: the payload is not an ELF kernel")
    out = Path(sys.argv[2])
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(kernel)
    tmp.replace(out)


if __name__ == "__main__":
    main()
