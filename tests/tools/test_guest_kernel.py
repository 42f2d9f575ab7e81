"""tools/guest/vmlinux.py: the ELF kernel out of a bzImage, found where the boot protocol
header says, whatever the compression; anything else is refused with a reason."""

from __future__ import annotations

import lzma
import runpy
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "guest" / "vmlinux.py"
KERNEL = b"\x7fELF" + bytes(range(256)) * 64


@pytest.fixture(scope="module")
def tool():
    return runpy.run_path(str(TOOL))


def bzimage(payload: bytes, *, setup_sects: int = 3, version: int = 0x20F,
            offset: int = 0x300) -> bytes:
    image = bytearray((setup_sects + 1) * 512 + offset)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, version)
    struct.pack_into("<II", image, 0x248, offset, len(payload))
    return bytes(image) + payload + struct.pack("<I", len(KERNEL)) + b"trailing code"


def gzipped(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=31)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize("pack", [lzma.compress, gzipped], ids=["xz", "gzip"])
def test_the_elf_kernel_comes_out(tmp_path, pack):
    source, out = tmp_path / "vmlinuz", tmp_path / "vmlinux"
    source.write_bytes(bzimage(pack(KERNEL)))
    subprocess.run([sys.executable, str(TOOL), str(source), str(out)], check=True)
    assert out.read_bytes() == KERNEL


@pytest.mark.parametrize("image, reason", [
    (bytes(4096), "not a bzImage"),
    (b"HdrS", "not a bzImage"),
    (bzimage(lzma.compress(KERNEL), version=0x207), "names no payload"),
    (bzimage(b"\x00" * 64), "unknown payload compression"),
])
def test_what_is_not_a_bzimage_is_refused(tool, image, reason):
    with pytest.raises(tool["NotAKernel"], match=reason):
        tool["decompress"](tool["payload"](image))


def test_setup_sects_zero_means_four(tool):
    image = bytearray(bzimage(lzma.compress(KERNEL), setup_sects=4))
    image[0x1F1] = 0
    assert tool["decompress"](tool["payload"](bytes(image))) == KERNEL


def test_a_damaged_payload_is_one_line_not_a_traceback(tmp_path):
    source = tmp_path / "vmlinuz"
    source.write_bytes(bzimage(lzma.compress(KERNEL)[:200]))
    done = subprocess.run([sys.executable, str(TOOL), str(source), str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert str(source) in done.stderr and not (tmp_path / "out").exists()
