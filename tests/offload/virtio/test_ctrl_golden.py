"""Control messages on the wire, pinned: the bytes of every command and what hostile bytes get.

The samples cover every request and response class and each field's variants; their bytes
are docs/virtio-offload.md's layouts and must not change. The refusals of hostile input -
every truncation, every byte forced to 0x00 and to 0xFF, a trailing byte - and of
unencodable messages are pinned by a digest of their exception types and messages.
"""

from __future__ import annotations

import hashlib

import pytest

from offload.caps.capabilities import Limits
from offload.isa.opcodes import PseudoSrc
from offload.virtio import CtrlDecodeError, CtrlEncodeError, decode_request, decode_response
from offload.virtio import bpf_maps as m
from offload.virtio import bpf_progs as p

INSNS = bytes.fromhex("b701000002000000" "1800000000000000" "0000000000000000"
                      "9500000000000000")
#: a BTF header and one ``int``: the codec carries the blob, the device reads it
BTF = bytes.fromhex("9feb010018000000000000001000000010000000050000000100000000000001"
                    "0400000020000000") + b"\0int\0"
LIMITS = Limits(1000, 2000, 3, 256, 4, 5, 6, 7, 8, 9)

REQUESTS = [
    p.CapsRequest(),
    m.MapCreateRequest(1, 4, 8, 16),
    m.MapCreateRequest(12, 4, 4, 2, 1, 7, "outer.map", 4),
    m.MapFreeRequest(3),
    m.MapFreezeRequest(0xFFFFFFFF),
    m.MapLookupRequest(2, b"\x01\x02\x03\x04"),
    m.MapLookupRequest(2, b"k", 4),
    m.MapUpdateRequest(2, b"\x01\x00", b"value!", 1),
    m.MapUpdateRequest(9, b"k", b""),
    m.MapDeleteRequest(2, b"\xaa\xbb"),
    m.MapGetNextKeyRequest(5),
    m.MapGetNextKeyRequest(5, b"\x00\x01"),
    m.MapLookupBatchRequest(4, 16),
    m.MapLookupBatchRequest(4, 1, b"cursor", 4),
    m.MapUpdateBatchRequest(4, 2, 1, 2, b"ab", b"xyzw", 4),
    m.MapUpdateBatchRequest.of(4, b"", b"", 0),
    p.ProgLoadRequest(6, INSNS, "GPL"),
    p.ProgLoadRequest(6, INSNS, "Dual MIT/GPL", (p.MapRef(1, 7), p.MapRef(0, 8,
                      PseudoSrc.MAP_VALUE, 16)), "xdp_prog", 33, 32, 1, 4096),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=BTF, func_info=(p.FuncInfoRec(0, 3),)),
    p.ProgLoadRequest(6, INSNS, "GPL", (p.MapRef(1, 7),), "with_funcs", btf=BTF,
                      func_info=(p.FuncInfoRec(0, 3), p.FuncInfoRec(3, 4))),
    p.ProgUnloadRequest(11),
    p.XdpAttachRequest(11, 8, 10),
    p.XdpDetachRequest(),
    p.XdpDetachRequest(8, 11),
]
RESPONSES = [
    p.CapsResponse(),
    p.CapsResponse(0, "", 0, "smartnic", 3, frozenset({1, 2, 27}), frozenset({6}),
                   frozenset({1, 2, 3, 51}), LIMITS, True, 65536, 1 << 26),
    m.MapCreateResponse(handle=5),
    m.MapCreateResponse(status=22, log="bad key size"),
    m.MapFreeResponse(),
    m.MapFreezeResponse(status=16),
    m.MapLookupResponse(value=b"\x01\x02\x03\x04\x05\x06\x07\x08"),
    m.MapLookupResponse(status=2),
    m.MapUpdateResponse(),
    m.MapDeleteResponse(status=2, log="no such key"),
    m.MapGetNextKeyResponse(key=b"\x00\x02"),
    m.MapLookupBatchResponse(count=2, key_size=1, value_size=2, keys=b"ab", values=b"1234",
                             cursor=b"c", done=True),
    m.MapLookupBatchResponse(),
    m.MapUpdateBatchResponse(count=3),
    m.MapUpdateBatchResponse(status=7, log="E2BIG", count=1),
    p.ProgLoadResponse(log="processed 4 insns", handle=9, verified_insns=4),
    p.ProgLoadResponse(status=13, log="R0 !read_ok", log_true_size=4000),
    p.ProgUnloadResponse(),
    p.XdpAttachResponse(status=17),
    p.XdpDetachResponse(),
]
UNENCODABLE = [
    m.MapCreateRequest(1, 4, 8, 1 << 32),
    m.MapCreateRequest(1, 4, 8, 16, name="a-b"),
    m.MapCreateRequest(1, 4, 8, 16, name="x" * 16),
    m.MapLookupRequest(1, bytes((1 << 16) + 1)),
    m.MapLookupRequest(1, b"k", -1),
    m.MapUpdateRequest(1, b"k", bytes((1 << 22) + 1)),
    m.MapLookupBatchRequest(1, 0),
    m.MapLookupBatchRequest(1, (1 << 16) + 1),
    m.MapUpdateBatchRequest(1, 1, 1, 0, b"a", b"x"),
    m.MapUpdateBatchRequest(1, 2, 1, 1, b"abb", b"12"),
    p.ProgLoadRequest(6, b"\0" * 7, "GPL"),
    p.ProgLoadRequest(6, b"", "GPL"),
    p.ProgLoadRequest(6, INSNS, "GPL\0"),
    p.ProgLoadRequest(6, INSNS, "x" * 129),
    p.ProgLoadRequest(6, INSNS, "GPL", (p.MapRef(4, 1),)),
    p.ProgLoadRequest(6, INSNS, "GPL", (p.MapRef(0, 1, 3),)),
    p.ProgLoadRequest(6, INSNS, "GPL", (p.MapRef(0, 1), p.MapRef(0, 2))),
    p.ProgLoadRequest(6, INSNS, "GPL", name="bad name"),
    p.ProgLoadRequest(6, INSNS, "GPL", func_info=(p.FuncInfoRec(0, 3),)),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=BTF),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=b"", func_info=(p.FuncInfoRec(0, 3),)),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=bytes((1 << 20) + 1),
                      func_info=(p.FuncInfoRec(0, 3),)),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=BTF, func_info=(p.FuncInfoRec(0, 3),),
                      func_info_rec_size=16),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=BTF, func_info=(p.FuncInfoRec(2, 3),)),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=BTF,
                      func_info=(p.FuncInfoRec(0, 3), p.FuncInfoRec(3, 4), p.FuncInfoRec(1, 5))),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=BTF, func_info=(p.FuncInfoRec(0, 3), p.FuncInfoRec(4, 4))),
    p.ProgLoadRequest(6, INSNS, "GPL", btf=BTF, func_info=(p.FuncInfoRec(0, 0),)),
    p.XdpAttachRequest(1, 1 << 32),
    p.CapsResponse(map_types=frozenset({64})),
    p.CapsResponse(helpers=frozenset(range(1, 4098))),
    p.CapsResponse(name="n" * 65),
    m.MapFreeResponse(status=4096),
    m.MapCreateResponse(handle=-1),
]

#: The bytes of REQUESTS and RESPONSES (hex), as docs/virtio-offload.md lays them out.
REQUEST_HEX = [
    "4000",
    "400101000000040000000800000010000000000000000000000000000000000000000000000000000000ffffffff",
    "40010c00000004000000040000000200000001000000070000006f757465722e6d61700000000000000004000000",
    "400203000000",
    "400dffffffff",
    "40030200000000000000000000000400000001020304",
    "4003020000000400000000000000010000006b",
    "40040200000001000000000000000200000006000000010076616c756521",
    "400409000000000000000000000001000000000000006b",
    "40050200000002000000aabb",
    "4006050000000000000000000000",
    "40060500000001000000020000000001",
    "40070400000010000000000000000000000000000000",
    "40070400000001000000040000000000000006000000637572736f72",
    "4008040000000400000000000000020000000100000002000000616278797a77",
    "4008040000000000000000000000000000000000000000000000",
    "400906000000000000000000000000000000000000000400000000000000030000000000000000000000000000000000"
    "0000b70100000200000018000000000000000000000000000000950000000000000047504c",
    "4009060000002100000020000000010000000010000004000000020000000c0000007864705f70726f67000000000000"
    "0000b7010000020000001800000000000000000000000000000095000000000000000100000007000000010000000000"
    "0000000000000800000002000000100000004475616c204d49542f47504c",
    "400906000000000000000000000000000000000000000400000000000000030001000000000000000000000000000000"
    "0000b70100000200000018000000000000000000000000000000950000000000000047504c2d00000008000000010000"
    "009feb010018000000000000001000000010000000050000000100000000000001040000002000000000696e74000000"
    "000003000000",
    "40090600000000000000000000000000000000000000040000000100000003000100776974685f66756e637300000000"
    "0000b7010000020000001800000000000000000000000000000095000000000000000100000007000000010000000000"
    "000047504c2d00000008000000020000009feb0100180000000000000010000000100000000500000001000000000000"
    "01040000002000000000696e740000000000030000000300000004000000",
    "400a0b000000",
    "400b0b000000080000000a000000",
    "400c0000000000000000",
    "400c080000000b000000",
]
RESPONSE_HEX = [
    "00000000005200000000000000000000000200000000000000000000000000000000000000000000000000000040420f"
    "0040420f0040000000000200000800000021000000400000000000000100020000000010000000000000000000000000"
    "000000",
    "00000000006a000000000000000000000002000100030000000000010006000008000000004000000000000000e80300"
    "00d007000003000000000100000400000005000000060000000700000008000000090000000000000400000000040000"
    "00010000000200000003000000330000000800736d6172746e6963",
    "000000000004000000000000000000000005000000",
    "0116000000000000000c0000000c000000626164206b65792073697a65",
    "0000000000000000000000000000000000",
    "0110000000000000000000000000000000",
    "00000000000c0000000000000000000000080000000102030405060708",
    "0102000000000000000000000000000000",
    "0000000000000000000000000000000000",
    "0102000000000000000b0000000b0000006e6f2073756368206b6579",
    "0000000000060000000000000000000000020000000002",
    "00000000001b0000000000000000000000010000000100000063020000000100000002000000616231323334",
    "00000000001400000000000000000000000000000000000000000000000000000000000000",
    "000000000004000000000000000000000003000000",
    "0107000000040000000500000005000000010000004532424947",
    "0000000000080000001100000011000000090000000400000070726f636573736564203420696e736e73",
    "010d000000000000000b000000a00f000052302021726561645f6f6b",
    "0000000000000000000000000000000000",
    "0111000000000000000000000000000000",
    "0000000000000000000000000000000000",
]
#: SHA-256 of every refusal (see _refusals), and of the unencodable messages' errors.
REFUSALS_DIGEST = "95541f9b70c344671940b5d230393086ec0f4576ef99e17b28980b70609e99fa"
UNENCODABLE_DIGEST = "3abca92d49d6559a40319bf331126bd772e84838dc080442e0bc1056d562e83b"


def _outcome(decode, data: bytes) -> str:
    try:
        return f"ok {decode(data)!r}"
    except CtrlDecodeError as err:
        return f"{type(err).__name__} {err.field} {err}"


def _variants(data: bytes):
    for cut in range(len(data)):
        yield data[:cut]
    for pos in range(len(data)):
        for byte in (0x00, 0xFF):
            yield data[:pos] + bytes([byte]) + data[pos + 1:]
    yield data + b"\0"


def _refusals() -> str:
    lines = []
    for message in REQUESTS:
        lines += [_outcome(decode_request, v) for v in _variants(message.encode())]
    for message in RESPONSES:
        lines += [_outcome(lambda d, c=message.COMMAND: decode_response(c, d), v)
                  for v in _variants(message.encode())]
    return "\n".join(lines)


def _encode_errors() -> str:
    lines = []
    for message in UNENCODABLE:
        try:
            message.encode()
            lines.append(f"ok {message!r}")
        except CtrlEncodeError as err:
            lines.append(f"{type(err).__name__} {err.field} {err}")
    return "\n".join(lines)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("index", range(len(REQUESTS)))
def test_request_bytes_are_pinned(index):
    message = REQUESTS[index]
    assert message.encode().hex() == REQUEST_HEX[index]
    assert decode_request(bytes.fromhex(REQUEST_HEX[index])) == message


@pytest.mark.parametrize("index", range(len(RESPONSES)))
def test_response_bytes_are_pinned(index):
    message = RESPONSES[index]
    assert message.encode().hex() == RESPONSE_HEX[index]
    assert decode_response(message.COMMAND, bytes.fromhex(RESPONSE_HEX[index])) == message


def test_hostile_bytes_get_the_pinned_refusals():
    text = _refusals()
    assert text.count("CtrlDecodeError") > 1500  # the variants are refused, not accepted
    assert _digest(text) == REFUSALS_DIGEST


def test_unencodable_messages_get_the_pinned_errors():
    text = _encode_errors()
    assert "ok " not in text
    assert _digest(text) == UNENCODABLE_DIGEST
