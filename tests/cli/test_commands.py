"""Commands without a daemon: verify, profiles, keygen and the demo, run as a person runs them."""

from __future__ import annotations

import io
import json
import os

from rich.console import Console

from cli.main import main

from .conftest import FIXTURES, cli, run_main

PASS_HEX = "b7 00 00 00 02 00 00 00\n95 00 00 00 00 00 00 00\n"
UNINIT_HEX = "bf 20 00 00 00 00 00 00\n95 00 00 00 00 00 00 00\n"


def test_verify_objects_and_profiles(capsys):
    accepted = cli("verify", str(FIXTURES / "xdp_firewall.o"), "--json")
    assert accepted.returncode == 0, accepted.stderr
    (verdict,) = json.loads(accepted.stdout)["programs"]
    assert verdict["accepted"] and verdict["insns_processed"] > 0 and verdict["peak_states"] > 0
    refused = cli("verify", str(FIXTURES / "xdp_firewall_v4.o"), "--profile", "smartnic")
    assert refused.returncode == 1
    assert "needs ISA v4" in refused.stderr and "rejected" in refused.stdout
    code, out, _ = run_main(capsys, "verify", str(FIXTURES / "xdp_pass.o"), "--program",
                            "xdp_drop_all")
    assert code == 0 and "xdp_drop_all" in out and "xdp_pass_all" not in out
    assert run_main(capsys, "verify", str(FIXTURES / "xdp_pass.o"), "--section",
                    "nope")[0] == 2
    assert run_main(capsys, "verify")[0] == 2


def test_verify_raw_reports_the_failing_instruction(tmp_path):
    good, bad = tmp_path / "good.hex", tmp_path / "bad.hex"
    good.write_text(PASS_HEX)
    bad.write_text(UNINIT_HEX)
    result = cli("verify", "--raw", str(good), "--type", "xdp")
    assert result.returncode == 0 and "accepted" in result.stdout
    result = cli("verify", "--raw", str(bad), "--type", "xdp")
    assert result.returncode == 1
    assert "insn 0: R2 !read_ok" in result.stderr
    assert "0: (bf) r0 = r2" in result.stderr
    err = Console(record=True, color_system="standard", force_terminal=True, width=120,
                  file=io.StringIO())
    out = Console(record=True, width=120, file=io.StringIO())
    assert main(["verify", "--raw", str(bad)], out, err) == 1
    assert "\x1b[1;37;41m0: (bf) r0 = r2" in err.export_text(styles=True)  # highlighted


def test_profiles_list_and_show(capsys):
    code, out, _ = run_main(capsys, "profiles", "--json")
    assert code == 0
    names = {p["name"] for p in json.loads(out)}
    assert {"full", "smartnic", "legacy-nic", "host-kernel"} <= names
    code, out, _ = run_main(capsys, "profiles", "show", "smartnic", "--json")
    data = json.loads(out)
    assert data["isa_version"] == 3 and "PROG_ARRAY" not in data["map_types"]
    assert data["helper_names"]["1"] == "bpf_map_lookup_elem"
    code, out, _ = run_main(capsys, "profiles", "show", "legacy-nic")
    assert code == 0 and "max_map_entries" in out
    code, out, _ = run_main(capsys, "profiles")
    assert code == 0 and "smartnic" in out and "v3" in out
    assert cli("profiles", "show", "nope").returncode == 1


def test_keygen_writes_key_files(tmp_path, capsys):
    for kind in ("ed25519", "hmac", "aes"):
        path = tmp_path / f"{kind}.key"
        code, out, _ = run_main(capsys, "keygen", "--type", kind, "-o", str(path))
        assert code == 0 and "key id" in out
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "ed25519.key.pub").st_mode & 0o777 == 0o644
    assert cli("keygen", "--type", "rsa", "-o", str(tmp_path / "x")).returncode == 2


def test_help_everywhere_has_examples():
    for command in (["demo"], ["device", "serve"], ["load"], ["save"], ["restore"],
                    ["inspect"], ["diff"], ["verify"], ["keygen"], ["profiles"], ["status"]):
        stream = io.StringIO()
        from contextlib import redirect_stdout

        with redirect_stdout(stream):
            assert main([*command, "--help"]) == 0
        assert "example" in stream.getvalue(), command


def test_demo_runs_end_to_end():
    result = cli("demo", timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Compatibility with smartnic: rewritable" in out
    assert "program xdp_firewall" in out and "rewritable" in out
    assert "device A" in out and "device B" in out
    assert "same verdicts on A (full) and B (smartnic)" in out


def test_verify_check_frames_runs_the_soundness_oracle(capsys, tmp_path, monkeypatch):
    from service.frames import IPPROTO_TCP, frame
    from service.pcap import encode_pcap

    capture = tmp_path / "frames.pcap"
    capture.write_bytes(encode_pcap([frame("10.0.0.1", "10.0.0.2", IPPROTO_TCP), bytes(20)]))
    code, out, _ = run_main(capsys, "verify", str(FIXTURES / "xdp_firewall.o"),
                            "--check-frames", str(capture))
    assert code == 0
    assert "soundness oracle: 2 frame(s)" in out
    # a verifier that believes every packet byte is zero is caught on the first real frame
    from offload.verifier import memory
    from offload.verifier.state import Reg

    monkeypatch.setattr(memory, "loaded", lambda size, sign_extend=False: Reg.const(0))
    code, out, err = run_main(capsys, "verify", str(FIXTURES / "xdp_firewall.o"),
                              "--check-frames", str(capture), "--json")
    assert code == 1
    assert "verifier bug: at insn" in err
    assert json.loads(out)["programs"][0]["oracle"]["escape"]
    code, _, err = run_main(capsys, "verify", str(FIXTURES / "xdp_firewall.o"),
                            "--check-frames", str(tmp_path / "missing.pcap"))
    assert code == 2 and "cannot read" in err
