"""bench/corpus.py on the project's own XDP fixtures, so the corpus harness cannot rot.

The device side always runs; the host kernel side only as root with libbpf installed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bench import corpus
from offload.loader import LoaderError, load_object

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures" / "xdp"


def _libbpf_present() -> bool:
    try:
        corpus.Libbpf()
    except OSError:
        return False
    return True


needs_kernel = pytest.mark.skipif(
    os.geteuid() != 0 or not corpus.kernel_usable()[0] or not _libbpf_present(),
    reason="the kernel side needs root, bpf() and libbpf")


def _renamed(tmp_path: Path, fixture: str, section: bytes) -> Path:
    """A copy of a fixture whose ``xdp`` section is called ``section`` (same length)."""
    data = (FIXTURES / fixture).read_bytes()
    data = data.replace(b"\0xdp\0", b"\0" + section + b"\0")
    data = data.replace(b".relxdp\0", b".rel" + section + b"\0")
    path = tmp_path / fixture
    path.write_bytes(data)
    return path


def test_programs_of_every_fixture_are_the_loaders() -> None:
    for path in sorted(FIXTURES.glob("*.o")):
        found = corpus.elf_programs(path)
        assert {p.name for p in found} == set(load_object(path).programs), path.name
        assert found and not any(p.forced for p in found), path.name


@pytest.mark.parametrize(("section", "expected"), [
    ("xdp", (True, False)), ("xdp.frags", (True, False)), ("xdp/devmap", (True, False)),
    ("xdp_sock", (True, True)), ("prog", (True, True)), ("tc", (False, False)),
    ("tracepoint/syscalls/sys_enter_open", (False, False)), ("tp_btf/xdp_exception",
                                                             (False, False)),
    (".text", (False, False)), ("license", (False, False)),
])
def test_which_sections_hold_xdp_programs(section: str, expected: tuple[bool, bool]) -> None:
    assert corpus.is_xdp_section(section) == expected


@pytest.mark.parametrize(("stage", "reason", "kind", "group", "cause"), [
    ("loader", "section '.BTF.ext': the object needs 12 CO-RE relocations, which are not "
               "supported", "", "CO-RE", "CO-RE relocations"),
    ("loader", "CO-RE relocation of field 'x'", "co-re", "CO-RE", "CO-RE relocations"),
    ("loader", "section 'xdp_sock': the section holds code but its name does not name a "
               "program type (e.g. 'xdp').", "", "program type (section name)",
     "section name"),
    ("loader", "missing program type: section 'prog' names none", "section",
     "program type (section name)", "section name"),
    ("loader", "uses map 'rx_cnt', which cannot be created: it is declared with max_entries "
               "0, to be sized before load", "map", "max_entries 0", "max_entries 0"),
    ("loader", "cannot decode the function: opcode 0xe5 at 12", "instruction",
     "may_goto / new helpers", "may_goto"),
    ("loader", "a map with 'values' must have 4-byte values (map or program ids).", "",
     "map-in-map form", "map-in-map declaration"),
    ("loader", "calls the kernel function (kfunc) 'bpf_xdp_ct_lookup'", "extern",
     "extern (kfunc/ksym/kconfig)", "extern symbols"),
    ("verifier", "map type XSKMAP of map 'xsks' is not supported by device full", "",
     "map type", "map type XSKMAP"),
    ("verifier", "BPF program is too large. Processed 1000001 insn", "",
     "processed-insn limit (pruning)", "processed-insn limit"),
    ("verifier", "unknown func bpf_unknown#99", "", "may_goto / new helpers",
     "helper skc_lookup_tcp#99"),
    ("verifier", "attempt to corrupt spilled pointer on stack", "", "unprivileged policy",
     "unprivileged: attempt to corrupt spilled pointer on stack"),
    ("verifier", "R2 partial copy of pointer", "", "unprivileged policy",
     "unprivileged: RN partial copy of pointer"),
    ("verifier", "unsupported bpf_ld_imm64 source FUNC: the device has no callbacks", "",
     "may_goto / new helpers", "callback (ld_imm64 FUNC)"),
    ("limit", "no verdict within 30 s", "", "time limit", "time limit"),
    ("crash", "worker died", "", "other", "worker died"),
    ("verifier", "R3 invalid mem access 'scalar'", "", "other",
     "verifier: RN invalid mem access 'X'"),
])
def test_refusals_are_classed_by_cause(stage: str, reason: str, kind: str, group: str,
                                       cause: str) -> None:
    assert corpus.classify(stage, reason, kind) == (group, cause)
    assert group in corpus.GROUPS


def test_an_uninitialised_helper_argument_names_the_helper() -> None:
    assert corpus.classify("verifier", "R4 !read_ok", "", "trace_printk#6") == (
        "other", "argument register not initialised at trace_printk#6")


def test_device_side_of_every_fixture() -> None:
    report = corpus.run(FIXTURES, kernel=False, jobs=2)
    summary = report.summary()
    names = {(p.obj, p.name) for path in FIXTURES.glob("*.o") for p in corpus.elf_programs(path)}
    assert {(r.program.obj, r.program.name) for r in report.rows} == names
    assert summary["judged"] == summary["programs"] == len(names)
    assert summary["device_accepted"] == len(names), summary["refused_by_cause"]
    assert all(r.device["processed"] > 0 and r.device["insns"] > 0 for r in report.rows)
    assert summary["ratio"] is None  # no kernel, no ratio
    text = json.dumps(report.to_json())
    assert json.loads(text)["summary"]["device_accepted_pct"] == 100.0


def test_a_section_naming_no_type_refuses_each_of_its_programs(tmp_path: Path) -> None:
    path = _renamed(tmp_path, "xdp_tailcall.o", b"xqp")
    programs = corpus.elf_programs(path)
    assert len(programs) == 4 and all(p.forced and p.section == "xqp" for p in programs)
    corpus._load.cache_clear()
    plain = [corpus.device_check(str(path), p.name) for p in programs]
    assert all(not r["accepted"] and r["stage"] == "loader" for r in plain)
    assert {corpus.classify(r["stage"], r["reason"], r["kind"])[0] for r in plain} == {
        "program type (section name)"}
    setup = [corpus.device_check(str(path), p.name, setup=True, sections=("xqp",))
             for p in programs]
    assert all(r["accepted"] and r["processed"] > 0 for r in setup), setup


def test_an_object_refused_whole_refuses_each_program(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "xdp_pass.o"
    shutil.copy(FIXTURES / "xdp_pass.o", path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise LoaderError("the object needs 3 CO-RE relocations, which are not supported.",
                          section=".BTF.ext")

    monkeypatch.setattr(corpus, "load_object", refuse)
    corpus._load.cache_clear()
    try:
        results = [corpus.device_check(str(path), p.name) for p in corpus.elf_programs(path)]
    finally:
        corpus._load.cache_clear()
    assert len(results) == 2
    for r in results:
        assert not r["accepted"] and r["kind"] == "object"
        assert corpus.classify(r["stage"], r["reason"], r["kind"]) == ("CO-RE",
                                                                       "CO-RE relocations")


def test_the_time_limit_is_a_refusal_of_its_own() -> None:
    result = corpus.device_check(str(FIXTURES / "xdp_ipv6_ext.o"), "xdp_ipv6_exthdrs",
                                 timeout=0.001)
    assert not result["accepted"] and result["stage"] == "limit"
    assert corpus.classify(result["stage"], result["reason"])[0] == "time limit"


def test_command_line_writes_json_and_a_table(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    objs = tmp_path / "objs"
    objs.mkdir()
    for name in ("xdp_pass.o", "xdp_redirect.o"):
        shutil.copy(FIXTURES / name, objs / name)
    out = tmp_path / "report.json"
    assert corpus.main([str(objs), "--no-kernel", "--jobs", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "xdp_redirect_by_mac" in printed and "device accepts 4/4" in printed
    report = json.loads(out.read_text())
    assert {p["program"] for p in report["programs"]} == {
        "xdp_pass_all", "xdp_drop_all", "xdp_redirect_by_mac", "xdp_redirect_uplink"}
    assert report["machine"]["nproc"] == os.cpu_count()


@needs_kernel
def test_kernel_side_on_fixtures() -> None:
    objects = [FIXTURES / n for n in ("xdp_firewall.o", "xdp_lb.o", "xdp_subprog.o")]
    report = corpus.run(FIXTURES, objects=objects, jobs=2)
    assert report.kernel.startswith("libbpf")
    for row in report.rows:
        assert row.kernel["status"] == "accepted", row.kernel
        assert row.kernel["verified_insns"] > 0
        assert row.ratio is not None and row.ratio > 0
    summary = report.summary()
    assert summary["judged"] == len(report.rows) == 4
    assert len(summary["worst_ratios"]) == 4


@needs_kernel
def test_kernel_loaders_agree_on_a_program_without_subprograms() -> None:
    """libbpf and the project's loader give the kernel the same program (subprograms differ:
    libbpf passes BTF func_info, so the kernel verifies global functions apart)."""
    lib = corpus.Libbpf()
    for name in ("xdp_firewall.o", "xdp_lb.o"):
        path = FIXTURES / name
        for program in corpus.elf_programs(path):
            a = corpus.kernel_check_libbpf(lib, path, program)
            b = corpus.kernel_check_backend(path, program)
            assert a["status"] == b["status"] == "accepted"
            assert a["verified_insns"] == b["verified_insns"] > 0


@needs_kernel
def test_a_kernel_refusal_gives_the_reason_and_leaves_the_program_out(tmp_path: Path) -> None:
    """``r0 = 2`` of xdp_pass_all made ``r0 = *(u32 *)(r1 + 100)``: past struct xdp_md."""
    data = (FIXTURES / "xdp_pass.o").read_bytes()
    mov_r0_2 = bytes.fromhex("b400000002000000")
    assert data.count(mov_r0_2) == 1
    path = tmp_path / "xdp_pass.o"
    path.write_bytes(data.replace(mov_r0_2, bytes.fromhex("6110640000000000")))
    report = corpus.run(tmp_path, jobs=1)
    rows = {r.program.name: r for r in report.rows}
    bad = rows["xdp_pass_all"]
    assert bad.kernel["status"] == "refused"
    assert "invalid bpf_context access" in bad.kernel["reason"]
    assert not bad.device["accepted"]
    assert rows["xdp_drop_all"].kernel["status"] == "accepted"
    summary = report.summary()
    assert summary["kernel"] == {"refused": 1, "accepted": 1}
    assert summary["judged"] == 1 and summary["device_accepts_kernel_refuses"] == []


def test_a_saved_report_reads_back_with_the_same_summary(tmp_path: Path) -> None:
    _renamed(tmp_path, "xdp_tailcall.o", b"xqp")
    shutil.copy(FIXTURES / "xdp_pass.o", tmp_path / "xdp_pass.o")
    corpus._load.cache_clear()
    report = corpus.run(tmp_path, kernel=False, jobs=1)
    saved = json.loads(json.dumps(report.to_json()))
    again = corpus.from_json(saved)
    assert again.summary() == report.summary()
    assert again.summary()["refused_by_group"] == {"program type (section name)": 4}


@needs_kernel
def test_processed_instructions_stay_near_the_kernels() -> None:
    """Pruning keeps pace with the kernel's on every fixture both accept: the device never
    processes more than 1.5 times the instructions the kernel reports (``verified_insns``)."""
    report = corpus.run(FIXTURES, jobs=2)
    judged = [row for row in report.rows
              if row.kernel["status"] == "accepted" and row.device["accepted"]]
    assert len(judged) >= 20
    worst = max(judged, key=lambda row: row.ratio)
    assert worst.ratio <= 1.5, (worst.program, worst.device["processed"],
                                worst.kernel["verified_insns"])
