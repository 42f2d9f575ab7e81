"""The linked programs hold the instructions llvm-objdump reads from the same object.

llvm-objdump prints the raw bytes of each instruction per section and function; every slot
of every linked function must match them in opcode, registers and offset. Only what the
loader patches may differ: the ``src`` and immediates of relocated ``lddw`` (map, global
data, function address) and the immediate of bpf-to-bpf calls.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from offload.isa.codec import encode_words
from offload.isa.disasm import slot_positions
from offload.isa.opcodes import PseudoSrc
from offload.loader import load_object

from .fixtures import OBJECT_IDS, OBJECTS

OBJDUMP = shutil.which("llvm-objdump")
pytestmark = pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump is not installed")

SECTION_LINE = re.compile(r"^Disassembly of section (\S+):$")
FUNCTION_LINE = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
INSN_LINE = re.compile(r"^\s*(\d+):\s+((?:[0-9a-f]{2} ){7}[0-9a-f]{2}(?: (?:[0-9a-f]{2} ){7}[0-9a-f]{2})?)")
SLOT = struct.Struct("<BBhi")


def objdump_functions(path: Path) -> dict[str, list[bytes]]:
    """Each function's 8-byte slots, as llvm-objdump prints their raw bytes."""
    assert OBJDUMP is not None
    text = subprocess.run([OBJDUMP, "-d", str(path)], check=True, capture_output=True,
                          text=True).stdout
    functions: dict[str, list[bytes]] = {}
    current: list[bytes] | None = None
    for line in text.splitlines():
        if SECTION_LINE.match(line):
            current = None
        elif match := FUNCTION_LINE.match(line):
            current = functions.setdefault(match.group(1), [])
        elif (match := INSN_LINE.match(line)) and current is not None:
            raw = bytes.fromhex(match.group(2).replace(" ", ""))
            current.extend(raw[i:i + 8] for i in range(0, len(raw), 8))
    return functions


@pytest.mark.parametrize("path", OBJECTS, ids=OBJECT_IDS)
def test_instructions_match_llvm_objdump(path: Path) -> None:
    reference = objdump_functions(path)
    obj = load_object(path)
    compared = 0
    for prog in obj.programs.values():
        ours = [word.to_bytes(8, "little") for word in encode_words(prog.instructions)]
        patched_lddw = {ref.slot for ref in prog.map_refs}
        kinds = {}
        for slot, insn in zip(slot_positions(prog.instructions), prog.instructions):
            kinds[slot] = insn
            if insn.is_lddw and insn.src == PseudoSrc.FUNC:
                patched_lddw.add(slot)
        ends = [f.slot for f in prog.functions[1:]] + [len(ours)]
        for function, end in zip(prog.functions, ends):
            theirs = reference[function.name]
            assert end - function.slot == len(theirs), function.name
            for rel in range(len(theirs)):
                slot = function.slot + rel
                ours_op, ours_regs, ours_off, ours_imm = SLOT.unpack(ours[slot])
                op, regs, off, imm = SLOT.unpack(theirs[rel])
                where = f"{prog.name}: {function.name}+{rel} (slot {slot})"
                assert (ours_op, ours_regs & 0x0F, ours_off) == (op, regs & 0x0F, off), where
                insn = kinds.get(slot)
                second_half = kinds.get(slot - 1)
                if insn is not None and slot in patched_lddw:
                    assert regs >> 4 == 0 and ours_regs >> 4 == insn.src, where
                elif second_half is not None and second_half.is_lddw and slot - 1 in patched_lddw:
                    pass  # next_imm: the value offset, or 0
                elif insn is not None and insn.is_local_call:
                    assert regs == ours_regs, where
                else:
                    assert (regs, imm) == (ours_regs, ours_imm), where
                compared += 1
    assert compared == sum(len(encode_words(p.instructions)) for p in obj.programs.values())
