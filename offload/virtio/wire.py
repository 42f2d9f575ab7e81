"""Bounded little-endian readers and writers for control-queue messages.

The codec (:mod:`.codec`) reads and writes every message's ``LAYOUT`` through these two
classes; they enforce the hard limits below and turn every malformed input into a
:class:`CtrlDecodeError` that names the message and the field, never a ``struct.error`` or an
``IndexError``. Integers are little-endian, as VIRTIO_F_VERSION_1 requires (virtio 1.2, 1.4).
"""

from __future__ import annotations

import struct

from .errors import VirtioError

# Hard limits on every length a message carries (docs/virtio-offload.md, "Limits").
MAX_MESSAGE_SIZE = 1 << 24  # 16 MiB: any request or response, header included
MAX_KEY_SIZE = 1 << 16
MAX_VALUE_SIZE = 1 << 22  # per-CPU values are value_size rounded to 8, times the CPU count
MAX_BATCH_COUNT = 1 << 16
MAX_CURSOR_SIZE = MAX_KEY_SIZE
MAX_INSNS = 1_000_000  # BPF_COMPLEXITY_LIMIT_INSNS, in 8-byte slots
MAX_LICENSE_SIZE = 128
MAX_HELPERS = 4096
MAX_DEVICE_NAME = 64
MAX_TEST_RUN_DATA = 1 << 16  # PROG_TEST_RUN data in or out on the wire (the device bounds it more)
MAX_PROG_BTF_SIZE = 1 << 20  # PROG_LOAD's function BTF (the kernel's BTF_MAX_SIZE is 16 MiB)
NAME_SIZE = 16  # BPF_OBJ_NAME_LEN, NUL included
MAX_ERRNO = 4095  # the kernel's MAX_ERRNO: statuses are 0 or an errno below it

_INTS = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"),
         8: struct.Struct("<Q")}


class CtrlDecodeError(VirtioError):
    """Bytes that are not a well-formed control message; ``field`` names the culprit."""

    def __init__(self, what: str, field: str, message: str) -> None:
        super().__init__(f"malformed {what}: {field}: {message}")
        self.what = what
        self.field = field


class CtrlEncodeError(VirtioError):
    """A message whose fields do not fit the wire format or its limits."""

    def __init__(self, what: str, field: str, message: str) -> None:
        super().__init__(f"cannot encode {what}: {field}: {message}")
        self.what = what
        self.field = field


class Writer:
    """Appends fields to a message, checking each against its width and limit."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.buf = bytearray()

    def uint(self, size: int, field: str, value: int) -> None:
        if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise CtrlEncodeError(self.what, field, f"{value!r} does not fit in {8 * size} "
                                  "unsigned bits")
        self.buf += _INTS[size].pack(value)

    def u8(self, field: str, value: int) -> None:
        self.uint(1, field, value)

    def u16(self, field: str, value: int) -> None:
        self.uint(2, field, value)

    def u32(self, field: str, value: int) -> None:
        self.uint(4, field, value)

    def u64(self, field: str, value: int) -> None:
        self.uint(8, field, value)

    def raw(self, field: str, data: bytes, limit: int = MAX_MESSAGE_SIZE) -> None:
        if len(data) > limit:
            raise CtrlEncodeError(self.what, field, f"{len(data)} bytes exceed the limit of "
                                  f"{limit}")
        self.buf += data

    def name(self, field: str, text: str) -> None:
        """A BPF object name: at most 15 characters of [A-Za-z0-9_.], NUL-padded to 16."""
        if len(text) >= NAME_SIZE or not all(c.isascii() and (c.isalnum() or c in "_.")
                                             for c in text):
            raise CtrlEncodeError(self.what, field, f"{text!r} is not a BPF object name (at "
                                  "most 15 characters of letters, digits, '_' and '.')")
        self.buf += text.encode().ljust(NAME_SIZE, b"\0")

    def getvalue(self) -> bytes:
        if len(self.buf) > MAX_MESSAGE_SIZE:
            raise CtrlEncodeError(self.what, "length", f"{len(self.buf)} bytes exceed the "
                                  f"message limit of {MAX_MESSAGE_SIZE}")
        return bytes(self.buf)


class Reader:
    """Consumes fields from a message, never past its end."""

    def __init__(self, data: bytes | bytearray | memoryview, what: str) -> None:
        self.data = bytes(data)
        self.what = what
        self.pos = 0
        if len(self.data) > MAX_MESSAGE_SIZE:
            raise self.error("length", f"{len(self.data)} bytes exceed the message limit of "
                             f"{MAX_MESSAGE_SIZE}")

    def error(self, field: str, message: str) -> CtrlDecodeError:
        return CtrlDecodeError(self.what, field, message)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def uint(self, size: int, field: str) -> int:
        if self.remaining < size:
            raise self.error(field, f"truncated: {size} bytes needed at offset {self.pos}, "
                             f"{self.remaining} left")
        value = _INTS[size].unpack_from(self.data, self.pos)[0]
        self.pos += size
        return value

    def u8(self, field: str) -> int:
        return self.uint(1, field)

    def u16(self, field: str) -> int:
        return self.uint(2, field)

    def u32(self, field: str) -> int:
        return self.uint(4, field)

    def u64(self, field: str) -> int:
        return self.uint(8, field)

    def length(self, field: str, limit: int) -> int:
        """A u32 length or count, checked against its hard limit."""
        value = self.u32(field)
        if value > limit:
            raise self.error(field, f"{value} exceeds the limit of {limit}")
        return value

    def raw(self, field: str, size: int) -> bytes:
        if size > self.remaining:
            raise self.error(field, f"truncated: {size} bytes announced at offset {self.pos}, "
                             f"{self.remaining} left")
        out = self.data[self.pos:self.pos + size]
        self.pos += size
        return out

    def zero(self, field: str, size: int) -> None:
        """Reserved bytes, which must be zero so they can gain a meaning later."""
        if any(self.raw(field, size)):
            raise self.error(field, "reserved bytes must be zero")

    def text(self, field: str, size: int) -> str:
        data = self.raw(field, size)
        try:
            return data.decode()
        except UnicodeDecodeError as err:
            raise self.error(field, f"not valid UTF-8 ({err.reason} at byte {err.start})") \
                from None

    def name(self, field: str) -> str:
        data = self.raw(field, NAME_SIZE)
        text, nul, pad = data.partition(b"\0")
        if not nul or any(pad):
            raise self.error(field, "a name is NUL-terminated and NUL-padded to 16 bytes")
        if not all(chr(c).isalnum() or chr(c) in "_." for c in text) or not text.isascii():
            raise self.error(field, f"{text!r} has characters other than letters, digits, "
                             "'_' and '.'")
        return text.decode()

    def end(self) -> None:
        if self.remaining:
            raise self.error("length", f"{self.remaining} unexpected bytes after the last field")
