"""CO-RE resolution on handmade BTF: every relocation kind, the matching rules, patching, the
refusals that name type and field, and a binding resolved again for another device."""

from __future__ import annotations

import pytest

from offload.isa import assemble
from offload.loader.btf import Btf, parse_btf
from offload.loader.btf_decl import (
    Array,
    Decl,
    Enum,
    Field,
    Int,
    Pointer,
    Typedef,
    bitfields,
    emit_btf,
    fields,
    struct,
    union,
)
from offload.loader.btf_encode import encode_btf
from offload.loader.btf_ext import CoreRecord
from offload.loader.core import (
    CoreError,
    describe_relocation,
    essential_name,
    local_btf,
    rebind,
    relocate,
    resolve,
    types_compatible,
    types_match,
)
from offload.loader.device_btf import DeviceBtf
from offload.uapi import CoreReloKind as K

U8 = Int("unsigned char", 1)
U16 = Int("short unsigned int", 2)
U32 = Int("unsigned int", 4)
S32 = Int("int", 4, signed=True)
U64 = Int("long long unsigned int", 8)


def btf(*decls: Decl) -> Btf:
    return parse_btf(encode_btf(emit_btf(decls)))


def device(*decls: Decl, name: str = "test") -> DeviceBtf:
    data = encode_btf(emit_btf(decls))
    return DeviceBtf(name, data, parse_btf(data))


def tid(b: Btf, name: str) -> int:
    found = b.find(name)
    assert found is not None, name
    return found.id


def answer(local: Btf, root: str, access: str, kind: K, target: DeviceBtf) -> int | None:
    found = resolve(local, tid(local, root), access, kind, target).target
    return None if found is None else found.value


LOCAL_PAIR = struct("pair", *fields(U32, "a", "b"))
LOCAL = btf(LOCAL_PAIR)


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("name, essential", [
    ("bpf_ct_opts___local", "bpf_ct_opts"), ("task_struct___v1_2", "task_struct"),
    ("a___b___c", "a___b"), ("plain", "plain"), ("x____y", "x____y"), ("___x", "___x"),
    ("x___", "x___"), ("x___y", "x")])
def test_a_flavor_is_the_suffix_after_the_last_triple_underscore(name, essential):
    assert essential_name(name) == essential


# ------------------------------------------------------------------ fields
def test_field_offsets_follow_the_device_layout_through_anonymous_members():
    target = device(struct("pair", Field("pad", U64), Field("", union(
        "", Field("", struct("", *fields(U32, "b", "a"))), Field("raw", U64)))))
    assert answer(LOCAL, "pair", "0:0", K.FIELD_BYTE_OFFSET, target) == 12
    assert answer(LOCAL, "pair", "0:1", K.FIELD_BYTE_OFFSET, target) == 8
    # the root index steps over whole structs of the device's size (16 bytes)
    assert answer(LOCAL, "pair", "1:1", K.FIELD_BYTE_OFFSET, target) == 24
    assert answer(LOCAL, "pair", "0:1", K.FIELD_BYTE_SIZE, target) == 4
    assert answer(LOCAL, "pair", "0:1", K.FIELD_EXISTS, target) == 1


def test_a_missing_field_exists_as_0_and_its_offset_is_refused_naming_type_and_field():
    target = device(struct("pair", Field("a", U32)))
    assert answer(LOCAL, "pair", "0:1", K.FIELD_EXISTS, target) == 0
    resolution = resolve(LOCAL, tid(LOCAL, "pair"), "0:1", K.FIELD_BYTE_OFFSET, target)
    assert resolution.target is None and resolution.why == "struct pair has no field 'b'"
    with pytest.raises(CoreError, match=r"field_byte_offset of struct pair\.b cannot be "
                                        r"resolved: struct pair has no field 'b'"):
        relocate(assemble("ldxw %r0, [%r1+4]\nexit"),
                 [(0, CoreRecord(0, tid(LOCAL, "pair"), "0:1", K.FIELD_BYTE_OFFSET))],
                 LOCAL, target)


def test_a_missing_type_is_refused_by_name_and_exists_as_0():
    target = device(struct("other", Field("a", U32)))
    assert answer(LOCAL, "pair", "0:1", K.FIELD_EXISTS, target) == 0
    assert answer(LOCAL, "pair", "0", K.TYPE_EXISTS, target) == 0
    assert answer(LOCAL, "pair", "0", K.TYPE_SIZE, target) == 0
    assert answer(LOCAL, "pair", "0", K.TYPE_ID_TARGET, target) == 0
    assert resolve(LOCAL, tid(LOCAL, "pair"), "0:0", K.FIELD_BYTE_SIZE, target).why == \
        "the device's BTF has no struct pair"


def test_fields_of_incompatible_types_do_not_match():
    target = device(struct("pair", Field("a", U32), Field("b", struct("inner", Field("x", U8)))))
    resolution = resolve(LOCAL, tid(LOCAL, "pair"), "0:1", K.FIELD_BYTE_OFFSET, target)
    assert resolution.target is None
    assert resolution.why == "struct pair has field 'b' of an incompatible type (struct inner, " \
        "locally unsigned int)"
    assert answer(LOCAL, "pair", "0:1", K.FIELD_EXISTS, target) == 0


def test_arrays_are_indexed_within_the_device_bounds_and_flexible_ones_beyond():
    local = btf(struct("ring", Field("head", U32), Field("slots", Array(U16, 8))))
    fixed = device(struct("ring", Field("slots", Array(U16, 4)), Field("head", U32)))
    assert answer(local, "ring", "0:1:3", K.FIELD_BYTE_OFFSET, fixed) == 6
    assert answer(local, "ring", "0:1:3", K.FIELD_BYTE_SIZE, fixed) == 2
    assert answer(local, "ring", "0:1:5", K.FIELD_EXISTS, fixed) == 0  # 4 elements there
    flexible = device(struct("ring", Field("head", U64), Field("slots", Array(U16, 0))))
    assert answer(local, "ring", "0:1:5", K.FIELD_BYTE_OFFSET, flexible) == 18
    not_array = device(struct("ring", Field("head", U32), Field("slots", U64)))
    assert answer(local, "ring", "0:1:1", K.FIELD_EXISTS, not_array) == 0


def test_signedness_of_integers_and_enums():
    local = btf(struct("s", Field("n", S32), Field("e", Enum("e", (("A", 0),)))))
    target = device(struct("s", Field("n", U32),
                           Field("e", Enum("e", (("A", -1),), signed=True))))
    assert answer(local, "s", "0:0", K.FIELD_SIGNED, target) == 0
    assert answer(local, "s", "0:1", K.FIELD_SIGNED, target) == 1
    assert answer(local, "s", "0:0", K.FIELD_SIGNED, device(struct("s", Field("n", S32)))) == 1


def test_bitfield_loads_widen_until_the_field_fits_and_shifts_extract_it():
    local = btf(struct("flags", *bitfields(U32, ("low", 4), ("wide", 6))))
    # on the device (a packed struct), the u8 bitfield 'wide' sits at bits 30..35: no 1, 2
    # or 4-byte load holds it, an 8-byte one from 0 does; shifted left 64-36, right 64-6
    target = device(struct("flags", *bitfields(U32, ("low", 30)), *bitfields(U8, ("wide", 6)),
                           packed=True))
    values = {kind: answer(local, "flags", "0:1", kind, target) for kind in (
        K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64,
        K.FIELD_SIGNED)}
    assert values == {K.FIELD_BYTE_OFFSET: 0, K.FIELD_BYTE_SIZE: 8, K.FIELD_LSHIFT_U64: 28,
                      K.FIELD_RSHIFT_U64: 58, K.FIELD_SIGNED: 0}
    plain = device(struct("flags", Field("pad", U32), *bitfields(U32, ("low", 4),
                                                                    ("wide", 6))))
    assert [answer(local, "flags", "0:1", kind, plain) for kind in (
        K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64)] == \
        [4, 4, 64 - 10, 64 - 6]
    # a whole field: the shifts keep its bytes
    assert answer(LOCAL, "pair", "0:1", K.FIELD_LSHIFT_U64, device(LOCAL_PAIR)) == 32
    assert answer(LOCAL, "pair", "0:1", K.FIELD_RSHIFT_U64, device(LOCAL_PAIR)) == 32


def test_shifts_of_an_array_element_are_refused():
    local = btf(struct("ring", Field("slots", Array(U16, 8))))
    with pytest.raises(CoreError, match="field_lshift_u64 cannot be asked of an array element"):
        resolve(local, tid(local, "ring"), "0:0:1", K.FIELD_LSHIFT_U64, device(
            struct("ring", Field("slots", Array(U16, 8)))))


# ------------------------------------------------------------------ candidates
def test_flavored_local_types_find_the_device_type_and_candidates_must_agree():
    local = btf(struct("pair___mine", Field("b", U32)))
    assert answer(local, "pair___mine", "0:0", K.FIELD_BYTE_OFFSET, device(LOCAL_PAIR)) == 4
    twins = device(LOCAL_PAIR, struct("pair___old", *fields(U32, "b", "a")))
    with pytest.raises(CoreError, match="has several struct pair___mine that answer "
                                        "differently"):
        resolve(local, tid(local, "pair___mine"), "0:0", K.FIELD_BYTE_OFFSET, twins)
    agreeing = device(LOCAL_PAIR, struct("pair___copy", *fields(U32, "a", "b")))
    assert answer(local, "pair___mine", "0:0", K.FIELD_BYTE_OFFSET, agreeing) == 4


def test_anonymous_local_types_cannot_be_looked_up():
    local = btf(Typedef("pair_t", struct("", Field("a", U32))))
    anon = local.resolve(tid(local, "pair_t")).id
    with pytest.raises(CoreError, match="the type is anonymous"):
        resolve(local, anon, "0:0", K.FIELD_BYTE_OFFSET, device(LOCAL_PAIR))


@pytest.mark.parametrize("access, kind, message", [
    ("0:x", K.FIELD_BYTE_OFFSET, "is not a list of indices"),
    ("0:7", K.FIELD_BYTE_OFFSET, "names member 7 of struct pair, which has 2"),
    ("0:0:1", K.FIELD_BYTE_OFFSET, "goes into unsigned int, which has no members"),
    ("1", K.TYPE_SIZE, "type relocations have '0'"),
    ("0", K.ENUMVAL_VALUE, "must name a value of an enum"),
])
def test_malformed_access_strings_are_refused(access, kind, message):
    with pytest.raises(CoreError, match=message):
        resolve(LOCAL, tid(LOCAL, "pair"), access, kind, device(LOCAL_PAIR))


def test_a_kind_newer_than_type_matches_is_refused():
    with pytest.raises(CoreError, match="kind 13 is unknown"):
        resolve(LOCAL, tid(LOCAL, "pair"), "0", 13, device(LOCAL_PAIR))


# ------------------------------------------------------------------ types and enums
def test_type_relocations():
    target = device(Int("x", 1), LOCAL_PAIR)
    pair_id = tid(target.btf, "pair")
    assert answer(LOCAL, "pair", "0", K.TYPE_ID_TARGET, target) == pair_id
    assert answer(LOCAL, "pair", "0", K.TYPE_EXISTS, target) == 1
    assert answer(LOCAL, "pair", "0", K.TYPE_SIZE, target) == 8
    assert answer(LOCAL, "pair", "0", K.TYPE_MATCHES, target) == 1
    local_id = tid(LOCAL, "pair")
    assert resolve(LOCAL, local_id, "0", K.TYPE_ID_LOCAL, device()).target.value == local_id


def test_compatibility_is_loose_and_matching_strict():
    local = btf(struct("s", Field("n", U32), Field("p", Pointer(U8))))
    looser = btf(struct("s", Field("n", U64)))
    assert types_compatible(local, tid(local, "s"), looser, tid(looser, "s"))
    assert not types_match(local, tid(local, "s"), looser, tid(looser, "s"))  # no 'p'
    wide = btf(struct("s", Field("n", U64), Field("p", Pointer(U8))))
    assert not types_match(local, tid(local, "s"), wide, tid(wide, "s"))  # n: 8 bytes
    renamed = btf(struct("s", Field("n", Int("unsigned", 4)), Field("p", Pointer(U8))))
    assert not types_match(local, tid(local, "s"), renamed, tid(renamed, "s"))  # int name
    same = btf(struct("s", Field("x", U8), Field("p", Pointer(U8)), Field("n", U32)))
    assert types_match(local, tid(local, "s"), same, tid(same, "s"))
    # a struct behind a pointer may meet a forward declaration of a struct
    a = btf(struct("holder", Field("next", Pointer(struct("node", Field("v", U32))))))
    fwd = parse_btf(encode_btf([*_fwd_holder()]))
    assert types_match(a, tid(a, "holder"), fwd, tid(fwd, "holder"))
    arrays = btf(struct("s", Field("a", Array(U8, 4))))
    longer = btf(struct("s", Field("a", Array(U8, 5))))
    assert not types_match(arrays, tid(arrays, "s"), longer, tid(longer, "s"))
    assert types_compatible(arrays, tid(arrays, "s"), longer, tid(longer, "s"))


def _fwd_holder():
    from offload.loader.btf import BtfMember, BtfType
    from offload.loader.btf_layout import BtfKind
    return [BtfType(1, BtfKind.FWD, "node"), BtfType(2, BtfKind.PTR, type_id=1),
            BtfType(3, BtfKind.STRUCT, "holder", vlen=1, size=8,
                    members=(BtfMember("next", 2, 0),))]


def test_enum_values_by_name_flavors_ignored_and_enum64_into_lddw():
    local = btf(Enum("action", (("PASS", 2), ("GONE___v1", 9), ("MISSING", 7))))
    target = device(Enum("action___dev", (("GONE___v2", 5), ("PASS", 3))))
    assert answer(local, "action", "0", K.ENUMVAL_VALUE, target) == 3
    assert answer(local, "action", "1", K.ENUMVAL_VALUE, target) == 5
    assert answer(local, "action", "2", K.ENUMVAL_EXISTS, target) == 0
    assert answer(local, "action", "0", K.ENUMVAL_EXISTS, target) == 1
    resolution = resolve(local, tid(local, "action"), "2", K.ENUMVAL_VALUE, target)
    assert resolution.target is None
    assert resolution.what == "enumval_value of enum action::MISSING"
    assert resolution.why == "enum action___dev has no value MISSING"
    big = device(Enum("action", (("PASS", 1 << 40),), size=8))
    insns, _ = relocate(assemble("lddw %r0, 2\nexit"),
                        [(0, CoreRecord(0, tid(local, "action"), "0", K.ENUMVAL_VALUE))],
                        local, big)
    assert insns[0].imm64 == 1 << 40


# ------------------------------------------------------------------ patching
RECORD_B = CoreRecord(0, LOCAL.find("pair").id, "0:1", K.FIELD_BYTE_OFFSET)


def patched(text: str, target: DeviceBtf, record: CoreRecord = RECORD_B, local: Btf = LOCAL):
    return relocate(assemble(text), [(0, record)], local, target)[0][0]


def test_alu_immediates_and_load_store_offsets_are_patched():
    target = device(struct("pair", Field("pad", U64), Field("b", U32)))
    assert patched("add %r1, 4\nexit", target).imm == 8
    assert patched("ldxw %r0, [%r1+4]\nexit", target).off == 8
    assert patched("stxw [%r1+4], %r2\nexit", target).off == 8
    assert patched("stw [%r1+4], 7\nexit", target).off == 8


def test_load_sizes_follow_unsigned_fields_and_refuse_signed_ones():
    narrow = device(struct("pair", Field("a", U32), Field("b", U16)))
    insn = patched("ldxw %r0, [%r1+4]\nexit", narrow)
    assert (insn.off, insn.size.nbytes) == (4, 2)
    local = btf(struct("pair", Field("a", U32), Field("b", S32)))
    record = CoreRecord(0, tid(local, "pair"), "0:1", K.FIELD_BYTE_OFFSET)
    with pytest.raises(CoreError, match="only pointers and unsigned integers may be read at "
                                        "another size"):
        patched("ldxw %r0, [%r1+4]\nexit", narrow, record, local)
    with pytest.raises(CoreError, match="the access is 2 bytes wide, not the field's 4"):
        patched("ldxh %r0, [%r1+4]\nexit", narrow)


def test_instructions_that_do_not_hold_the_local_answer_are_refused():
    with pytest.raises(CoreError, match="the instruction holds 8, not 4 as the relocation "
                                        "says"):
        patched("ldxw %r0, [%r1+8]\nexit", device(LOCAL_PAIR))


@pytest.mark.parametrize("text, message", [
    ("add %r1, %r2\nexit", "ALU instruction with a register operand"),
    ("ja +0\nexit", "CO-RE does not relocate"),
])
def test_instructions_co_re_cannot_patch_are_refused(text, message):
    with pytest.raises(CoreError, match=message):
        patched(text, device(LOCAL_PAIR))


def test_offsets_past_16_bits_and_values_past_32_bits_are_refused():
    far = device(struct("pair", Field("pad", Array(U8, 40000)), Field("b", U32)))
    with pytest.raises(CoreError, match="offset 40000 does not fit"):
        patched("ldxw %r0, [%r1+4]\nexit", far)
    local = btf(Enum("big", (("V", 1),), size=8))
    record = CoreRecord(0, tid(local, "big"), "0", K.ENUMVAL_VALUE)
    with pytest.raises(CoreError, match="does not fit the instruction's 32-bit immediate"):
        patched("mov %r0, 1\nexit", device(Enum("big", (("V", 1 << 33),), size=8)), record,
                local)
    # negative values fit as sign-extended immediates
    negative = device(Enum("big", (("V", -5),), size=8, signed=True))
    assert patched("mov %r0, 1\nexit", negative, record, local).imm == -5


def test_relocations_not_on_an_instruction_and_twice_on_one_are_refused():
    insns = assemble("lddw %r0, 4\nexit")
    with pytest.raises(CoreError, match="not on the first slot of an instruction"):
        relocate(insns, [(1, RECORD_B)], LOCAL, device(LOCAL_PAIR))
    with pytest.raises(CoreError, match="needs 2 CO-RE relocations .* first, at insn 0: "
                                        ".*a second CO-RE relocation patches"):
        relocate(assemble("add %r1, 4\nexit"), [(0, RECORD_B), (0, RECORD_B), (1, RECORD_B)],
                 LOCAL, device(LOCAL_PAIR))


# ------------------------------------------------------------------ bindings
def test_a_binding_resolves_again_for_another_device():
    program = assemble("ldxw %r0, [%r1+4]\nmov %r2, 1\nmov %r3, 0\nexit")
    records = [(0, RECORD_B), (1, CoreRecord(0, tid(LOCAL, "pair"), "0:1", K.FIELD_EXISTS)),
               (2, CoreRecord(0, tid(LOCAL, "pair"), "0", K.TYPE_ID_LOCAL))]
    first = device(LOCAL_PAIR, name="first")
    insns, binding = relocate(program, records, LOCAL, first)
    assert (binding.target, binding.digest) == ("first", first.digest)
    assert [(r.slot, r.value, r.size) for r in binding.relocations] == \
        [(0, 4, 4), (1, 1, 0), (2, tid(LOCAL, "pair"), 0)]
    assert [describe_relocation(binding, r) for r in binding.relocations] == [
        "field_byte_offset of struct pair.b", "field_exists of struct pair.b",
        "type_id_local of struct pair"]
    assert insns[2].imm == tid(LOCAL, "pair")

    same, again, changes = rebind(insns, binding, device(LOCAL_PAIR, name="twin"))
    assert same == insns and not changes and again.target == "twin"

    moved = device(struct("pair", Field("pad", U64), Field("b", U16)), name="moved")
    re_patched, rebound, changes = rebind(insns, binding, moved)
    assert [str(c) for c in changes] == ["field_byte_offset of struct pair.b 4 -> 8 (insn 0)"]
    assert (re_patched[0].off, re_patched[0].size.nbytes) == (8, 2)
    assert rebound.relocations[0].size == 2 and rebound.target == "moved"
    back, _, changes = rebind(re_patched, rebound, first)
    assert back == insns and len(changes) == 1

    with pytest.raises(CoreError, match=r"insn 0 .*field_byte_offset of struct pair\.b cannot "
                                        r"be resolved: struct pair has no field 'b'"):
        rebind(insns, binding, device(struct("pair", Field("a", U32)), name="lean"))
    with pytest.raises(CoreError, match="the instruction holds 12, not 4"):
        rebind((insns[0].with_fields(off=12), *insns[1:]), binding, moved)


def test_a_binding_keeps_only_the_types_its_relocations_reach():
    local = btf(LOCAL_PAIR, struct("unrelated", Field("x", U64)))
    record = CoreRecord(0, tid(local, "pair"), "0:1", K.FIELD_BYTE_OFFSET)
    _, binding = relocate(assemble("add %r1, 4\nexit"), [(0, record)], local,
                          device(LOCAL_PAIR))
    kept = local_btf(binding)
    assert [t.name for t in kept.types[1:]] == ["unsigned int", "pair"]
    assert binding.relocations[0].type_id == tid(kept, "pair")
