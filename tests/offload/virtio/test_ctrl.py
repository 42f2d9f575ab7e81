"""Control messages: round trips of every request and response, bounds, hostile bytes."""

from __future__ import annotations

import errno
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.caps.capabilities import Limits
from offload.isa.opcodes import PseudoSrc
from offload.virtio import (
    REQUESTS,
    RESPONSES,
    RESULT_HEADER_SIZE,
    BpfCommand,
    CtrlAck,
    CtrlDecodeError,
    CtrlEncodeError,
    decode_request,
    decode_response,
    encode_status,
)
from offload.virtio import bpf_maps as m
from offload.virtio import bpf_progs as p

u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, (1 << 64) - 1)
handle = st.integers(1, 0xFFFFFFFF)
key = st.binary(min_size=1, max_size=64)
names = st.text("abcXYZ019_.", max_size=15)
status = st.integers(1, 4095)
log = st.text(max_size=200)


@st.composite
def batches(draw):
    count = draw(st.integers(0, 8))
    ks, vs = draw(st.integers(1, 16)), draw(st.integers(0, 16))
    keys = draw(st.binary(min_size=ks * count, max_size=ks * count))
    values = draw(st.binary(min_size=vs * count, max_size=vs * count))
    return count, ks, vs, keys, values


@st.composite
def prog_loads(draw):
    n = draw(st.integers(1, 40))
    slots = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=4))
    refs = tuple(p.MapRef(slot, draw(handle),
                          draw(st.sampled_from([PseudoSrc.MAP_FD, PseudoSrc.MAP_VALUE])),
                          draw(u32)) for slot in slots)
    btf, func_info = None, ()
    if draw(st.booleans()):
        starts = sorted({0, *draw(st.lists(st.integers(1, n - 1), max_size=4))}) if n > 1 \
            else [0]
        btf = draw(st.binary(min_size=1, max_size=64))
        func_info = tuple(p.FuncInfoRec(start, draw(st.integers(1, (1 << 32) - 1)))
                          for start in starts)
    return p.ProgLoadRequest(draw(u32), draw(st.binary(min_size=8 * n, max_size=8 * n)),
                             draw(st.text("GPL v2/MIT-dual", max_size=40)), refs, draw(names),
                             draw(u32), draw(u32), draw(u32), draw(u32), btf, func_info)


REQUEST_STRATEGIES = {
    BpfCommand.CAPS: st.just(p.CapsRequest()),
    BpfCommand.MAP_CREATE: st.builds(m.MapCreateRequest, u32, u32, u32, u32, u32, u32, names),
    BpfCommand.MAP_FREE: st.builds(m.MapFreeRequest, handle),
    BpfCommand.MAP_LOOKUP: st.builds(m.MapLookupRequest, handle, key, u64),
    BpfCommand.MAP_UPDATE: st.builds(m.MapUpdateRequest, handle, key, st.binary(max_size=64), u64),
    BpfCommand.MAP_DELETE: st.builds(m.MapDeleteRequest, handle, key),
    BpfCommand.MAP_GET_NEXT_KEY: st.builds(m.MapGetNextKeyRequest, handle, st.none() | key),
    BpfCommand.MAP_LOOKUP_BATCH: st.builds(m.MapLookupBatchRequest, handle,
                                           st.integers(1, 1 << 16), st.binary(max_size=16), u64),
    BpfCommand.MAP_UPDATE_BATCH: batches().flatmap(lambda kv: st.builds(
        m.MapUpdateBatchRequest, handle, *map(st.just, kv), u64)),
    BpfCommand.PROG_LOAD: prog_loads(),
    BpfCommand.PROG_UNLOAD: st.builds(p.ProgUnloadRequest, handle),
    BpfCommand.XDP_ATTACH: st.builds(p.XdpAttachRequest, handle, u32, u32),
    BpfCommand.XDP_DETACH: st.builds(p.XdpDetachRequest, u32, u32),
    BpfCommand.MAP_FREEZE: st.builds(m.MapFreezeRequest, handle),
    BpfCommand.PROG_TEST_RUN: st.builds(p.ProgTestRunRequest, handle, st.binary(max_size=64),
                                        u32, u32, u32),
}

limits = st.builds(Limits, *[u32] * 10)
bitmaps = st.frozensets(st.integers(0, 63), max_size=8)
ok = st.just(0)
common = dict(status=ok, log=log)
RESPONSE_STRATEGIES = {
    BpfCommand.CAPS: st.builds(p.CapsResponse, **common, name=st.text(max_size=20),
                               isa_version=u32, map_types=bitmaps, prog_types=bitmaps,
                               helpers=st.frozensets(u32, max_size=30), limits=limits,
                               check_xdp_action=st.booleans(), max_request=u32),
    BpfCommand.MAP_CREATE: st.builds(m.MapCreateResponse, **common, handle=handle),
    BpfCommand.MAP_FREE: st.builds(m.MapFreeResponse, **common),
    BpfCommand.MAP_LOOKUP: st.builds(m.MapLookupResponse, **common, value=st.binary(max_size=64)),
    BpfCommand.MAP_UPDATE: st.builds(m.MapUpdateResponse, **common),
    BpfCommand.MAP_DELETE: st.builds(m.MapDeleteResponse, **common),
    BpfCommand.MAP_GET_NEXT_KEY: st.builds(m.MapGetNextKeyResponse, **common, key=key),
    BpfCommand.MAP_LOOKUP_BATCH: batches().flatmap(lambda kv: st.builds(
        m.MapLookupBatchResponse, **common, count=st.just(kv[0]), key_size=st.just(kv[1]),
        value_size=st.just(kv[2]), keys=st.just(kv[3]), values=st.just(kv[4]),
        cursor=st.binary(max_size=8), done=st.booleans())),
    BpfCommand.MAP_UPDATE_BATCH: st.builds(m.MapUpdateBatchResponse, status=ok | status,
                                           log=log, count=u32),
    BpfCommand.PROG_LOAD: st.builds(p.ProgLoadResponse, **common, handle=handle,
                                    verified_insns=u32),
    BpfCommand.PROG_UNLOAD: st.builds(p.ProgUnloadResponse, **common),
    BpfCommand.XDP_ATTACH: st.builds(p.XdpAttachResponse, **common),
    BpfCommand.XDP_DETACH: st.builds(p.XdpDetachResponse, **common),
    BpfCommand.MAP_FREEZE: st.builds(m.MapFreezeResponse, **common),
    BpfCommand.PROG_TEST_RUN: st.builds(p.ProgTestRunResponse, **common, retval=u32,
                                        duration=u32, data_size_out=u32,
                                        data_out=st.binary(max_size=64)),
}

any_request = st.one_of(*REQUEST_STRATEGIES.values())
any_response = st.one_of(*RESPONSE_STRATEGIES.values())


def test_every_command_has_a_request_and_a_response_class():
    assert set(REQUESTS) == set(RESPONSES) == set(BpfCommand) == set(REQUEST_STRATEGIES) \
        == set(RESPONSE_STRATEGIES)


@settings(max_examples=300, deadline=None)
@given(any_request)
def test_requests_round_trip(request):
    data = request.encode()
    assert data[:2] == bytes([64, request.COMMAND])
    assert decode_request(data) == request
    assert type(request).decode(data) == request


@settings(max_examples=300, deadline=None)
@given(any_response)
def test_responses_round_trip(response):
    data = response.encode()
    assert data[0] == (CtrlAck.OK if response.status == 0 else CtrlAck.ERR)
    assert decode_response(response.COMMAND, data) == response


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(RESPONSE_STRATEGIES)), status, log)
def test_failures_carry_errno_and_log_without_a_body(command, code, text):
    response = RESPONSES[command](status=code, log=text)
    back = decode_response(command, response.encode())
    assert back.status == code and back.log == text and back.ack == CtrlAck.ERR


@settings(max_examples=200, deadline=None)
@given(any_response, st.integers(0, 400))
def test_responses_never_exceed_the_device_writable_buffer(response, limit):
    data = response.encode(limit)
    assert len(data) <= limit
    if limit == 0:
        return
    back = decode_response(response.COMMAND, data)
    if len(data) == 1:
        assert back.status == errno.EIO
    elif back.status == errno.ENOSPC and response.status != errno.ENOSPC:
        assert "buffer holds" in back.log or back.log_true_size
    else:
        assert back.status == response.status
        full = response.log.encode()
        assert full.endswith(back.log.encode())  # the tail of the log survives
        assert back.log_true_size in (0, len(full), response.log_true_size)


def test_verifier_log_keeps_its_tail_and_true_size():
    text = "".join(f"{i}: (b7) r0 = 0\n" for i in range(100)) + "R0 !read_ok\n"
    response = p.ProgLoadResponse(errno.EACCES, text, handle=0)
    back = decode_response(BpfCommand.PROG_LOAD, response.encode(RESULT_HEADER_SIZE + 40))
    assert back.log.endswith("R0 !read_ok\n") and len(back.log) <= 40
    assert back.log_true_size == len(text)


def test_status_only_result_for_undecodable_commands():
    data = encode_status(errno.EINVAL, "unknown command 99")
    assert data[0] == CtrlAck.ERR
    back = decode_response(BpfCommand.MAP_LOOKUP, data)
    assert back.status == errno.EINVAL and back.value == b""


@pytest.mark.parametrize("message, field", [
    (m.MapLookupBatchRequest(1, 0), "count"),
    (m.MapUpdateBatchRequest(1, 2, 1, 1, b"abb", b"xy"), "count"),
    (m.MapUpdateBatchRequest(1, 1, 1, 1, b"a", b""), "count"),
    (m.MapUpdateBatchRequest(1, 1, 0, 1, b"", b"x"), "key_size"),
    (m.MapUpdateBatchRequest(1, (1 << 16) + 1, 0, 0, b"", b""), "count"),
    (m.MapCreateRequest(1, 4, 4, 1, name="no spaces"), "name"),
    (m.MapCreateRequest(1 << 32, 4, 4, 1), "map_type"),
    (m.MapLookupRequest(1, b"k" * (1 << 16 + 1)), "key"),
    (p.ProgLoadRequest(6, b"\0" * 7, "GPL"), "insn_cnt"),
    (p.ProgLoadRequest(6, b"\0" * 8, "GPL\0"), "license"),
    (p.ProgLoadRequest(6, b"\0" * 8, "GPL", (p.MapRef(1, 1),)), "map_refs[0].slot"),
    (p.ProgLoadRequest(6, b"\0" * 8, "GPL", (p.MapRef(0, 1, 3),)), "map_refs[0].kind"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", (p.MapRef(0, 1), p.MapRef(0, 2))), "map_refs"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", func_info=(p.FuncInfoRec(0, 1),)), "func_info"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", btf=b"x"), "func_info_cnt"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", btf=b""), "btf_len"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", btf=b"x", func_info=(p.FuncInfoRec(0, 1),),
                       func_info_rec_size=12), "func_info_rec_size"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", btf=b"x", func_info=(p.FuncInfoRec(1, 1),)),
     "func_info[0].insn_off"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", btf=b"x",
                       func_info=(p.FuncInfoRec(0, 1), p.FuncInfoRec(0, 2))),
     "func_info[1].insn_off"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", btf=b"x",
                       func_info=(p.FuncInfoRec(0, 1), p.FuncInfoRec(2, 2))),
     "func_info[1].insn_off"),
    (p.ProgLoadRequest(6, b"\0" * 16, "GPL", btf=b"x", func_info=(p.FuncInfoRec(0, 0),)),
     "func_info[0].type_id"),
])
def test_unencodable_messages_name_the_field(message, field):
    with pytest.raises(CtrlEncodeError) as info:
        message.encode()
    assert info.value.field == field


def test_response_status_must_be_an_errno():
    with pytest.raises(CtrlEncodeError, match="status"):
        m.MapFreeResponse(status=5000).encode()


@pytest.mark.parametrize("data, field", [
    (b"", "class"),
    (b"\x05\x00", "class"),
    (b"\x40\x63", "command"),
    (b"\x40\x03\x01\x00\x00\x00", "flags"),  # truncated
    (b"\x40\x03" + bytes(12) + b"\xff\xff\xff\xff", "key_len"),  # over the limit
    (b"\x40\x03" + bytes(12) + b"\x08\x00\x00\x00abc", "key"),  # announced, missing
    (b"\x40\x02\x01\x00\x00\x00\x00", "length"),  # trailing byte
    (b"\x40\x06" + bytes(4) + b"\x00\x00\x00\x00\x01\x00\x00\x00k", "key_len"),
    (b"\x40\x01" + bytes(24) + b"a b" + bytes(13), "name"),
    (b"\x40\x01" + bytes(24) + b"abc" + b"\0x" + bytes(11), "name"),
])
def test_malformed_requests_name_the_field(data, field):
    with pytest.raises(CtrlDecodeError) as info:
        decode_request(data)
    assert info.value.field == field


#: PROG_LOAD of four slots with function records at 0, 2 and 3: the records are its last
#: 24 bytes, each (insn_off, type_id)
_WITH_FUNCS = p.ProgLoadRequest(6, bytes.fromhex("850000000100000095000000000000000500ffff00000000"
                                                 "9500000000000000"), "GPL", btf=b"\x9f\xeb",
                                func_info=(p.FuncInfoRec(0, 3), p.FuncInfoRec(2, 4),
                                           p.FuncInfoRec(3, 5))).encode()


def _func_record(index: int, insn_off: int, type_id: int) -> bytes:
    at = len(_WITH_FUNCS) - 8 * (3 - index)
    return _WITH_FUNCS[:at] + struct.pack("<II", insn_off, type_id) + _WITH_FUNCS[at + 8:]


def _trailer_word(offset: int, value: int) -> bytes:
    """The trailer's u32 at ``offset``: 0 btf_len, 4 func_info_rec_size, 8 func_info_cnt."""
    at = len(_WITH_FUNCS) - 24 - 2 - 12 + offset
    return _WITH_FUNCS[:at] + struct.pack("<I", value) + _WITH_FUNCS[at + 4:]


@pytest.mark.parametrize("data, field, words", [
    (_func_record(0, 1, 3), "func_info[0].insn_off", "nonzero insn_off 1 for the first"),
    (_func_record(2, 2, 5), "func_info[2].insn_off", "same or smaller insn offset (2)"),
    (_func_record(1, 0, 4), "func_info[1].insn_off", "same or smaller insn offset (0)"),
    (_func_record(2, 4, 5), "func_info[2].insn_off", "past the last instruction (3)"),
    (_func_record(1, 2, 0), "func_info[1].type_id", "invalid type id 0 in func info"),
    (_trailer_word(4, 12), "func_info_rec_size", "exceeds the limit of 8"),
    (_trailer_word(4, 0), "func_info_rec_size", "invalid func info rec size"),
    (_trailer_word(8, 5), "func_info_cnt", "exceeds the limit of 4"),
    (_trailer_word(8, 0), "func_info_cnt", "a func_info record for each function"),
    (_trailer_word(0, (1 << 20) + 1), "btf_len", "exceeds the limit"),
    (_trailer_word(0, 0), "btf_len", "at least its header"),
    (_WITH_FUNCS[:-25], "btf", ""),
    (_WITH_FUNCS + b"\0", "length", "unexpected bytes"),
])
def test_hostile_function_records_name_the_field(data, field, words):
    with pytest.raises(CtrlDecodeError) as info:
        decode_request(data)
    assert info.value.field == field
    assert words in str(info.value)


def test_the_function_trailer_is_there_only_when_ext_flags_say_so():
    plain = p.ProgLoadRequest(6, b"\x95" + bytes(7), "GPL")
    data = bytearray(plain.encode())
    data[32] = 1  # ext_flags BTF without the trailer
    with pytest.raises(CtrlDecodeError) as info:
        decode_request(bytes(data))
    assert info.value.field == "btf_len"
    data = bytearray(_WITH_FUNCS)
    data[32] = 0  # the trailer without its flag is trailing garbage
    with pytest.raises(CtrlDecodeError) as info:
        decode_request(bytes(data))
    assert info.value.field == "length"
    data[32] = 2
    with pytest.raises(CtrlDecodeError, match="unknown flags 0x2"):
        decode_request(bytes(data))


@pytest.mark.parametrize("data, field", [
    (b"\x02" + bytes(16), "ack"),
    (b"\x00\x05\x00\x00\x00" + bytes(12), "ack"),  # OK with an errno
    (b"\x01\x00\x10\x00\x00" + bytes(12), "status"),  # 4096 is no errno
    (b"\x00" + bytes(8) + b"\x05\x00\x00\x00" + bytes(4) + b"hello", "log_true_size"),
    (b"\x00" + bytes(8) + b"\x02\x00\x00\x00\x02\x00\x00\x00\xc3\x28", "log"),  # bad UTF-8
    (b"\x00" + bytes(16), "handle"),  # MAP_CREATE success without its body
])
def test_malformed_responses_name_the_field(data, field):
    with pytest.raises(CtrlDecodeError) as info:
        decode_response(BpfCommand.MAP_CREATE, data)
    assert info.value.field == field


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_hostile_request_bytes_give_only_decode_errors(data):
    try:
        decode_request(b"\x40" + data)
    except CtrlDecodeError as err:
        assert err.field
    try:
        decode_request(data)
    except CtrlDecodeError:
        pass


@settings(max_examples=400, deadline=None)
@given(any_request, st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)),
                             min_size=1, max_size=4), st.integers(0, 1 << 16))
def test_mutated_requests_give_only_decode_errors(request, flips, cut):
    data = bytearray(request.encode())
    for pos, byte in flips:
        data[pos % len(data)] = byte
    for candidate in (bytes(data), bytes(data[:cut % (len(data) + 1)])):
        try:
            decode_request(candidate)
        except CtrlDecodeError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(RESPONSES)), any_response,
       st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4),
       st.integers(0, 1 << 16))
def test_mutated_responses_give_only_decode_errors(command, response, flips, cut):
    data = bytearray(response.encode())
    for pos, byte in flips:
        data[pos % len(data)] = byte
    for candidate in (bytes(data), bytes(data[:cut % (len(data) + 1)])):
        try:
            decode_response(command, candidate)
        except CtrlDecodeError:
            pass


def test_huge_batches_are_refused_before_allocation():
    data = (b"\x40\x08" + bytes(12) + (1 << 16).to_bytes(4, "little")
            + (1 << 16).to_bytes(4, "little") + (1 << 10).to_bytes(4, "little"))
    with pytest.raises(CtrlDecodeError, match="message limit"):
        decode_request(data)
