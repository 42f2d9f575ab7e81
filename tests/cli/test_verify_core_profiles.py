"""``verify --profile P`` resolves CO-RE relocations against P's BTF: a profile whose BTF
lacks a field refuses the program that reads it, naming type and field."""

from __future__ import annotations

import json

from .conftest import FIXTURES, run_main

CORE = str(FIXTURES / "libbpf" / "xdp_core.o")


def _row(capsys, profile: str, program: str) -> tuple[int, dict]:
    code, out, _ = run_main(capsys, "verify", CORE, "--profile", profile, "--program", program,
                            "--json")
    (row,) = json.loads(out)["programs"]
    return code, row


def test_a_field_the_profile_btf_lacks_refuses_the_program_naming_it(capsys):
    code, row = _row(capsys, "full", "xdp_core_egress")
    assert code == 0 and row["accepted"]
    # legacy-nic describes Linux 4.19's xdp_md, which has no egress_ifindex
    code, row = _row(capsys, "legacy-nic", "xdp_core_egress")
    assert code == 1 and (row["stage"], row["kind"]) == ("loader", "co-re")
    assert "device BTF uapi-4.19" in row["reason"]
    assert "struct xdp_md has no field 'egress_ifindex'" in row["reason"]


def test_every_program_is_resolved_for_the_profile_not_the_default(capsys):
    code, out, err = run_main(capsys, "verify", CORE, "--profile", "legacy-nic", "--json")
    rows = {row["program"]: row for row in json.loads(out)["programs"]}
    assert code == 1
    refused = {name for name, row in rows.items() if row.get("kind") == "co-re"}
    assert refused == {"xdp_core_egress", "xdp_core_vxlan"}
    assert all("uapi-4.19" in rows[name]["reason"] for name in refused)
