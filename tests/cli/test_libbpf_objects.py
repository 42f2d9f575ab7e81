"""verify and load on objects built like libbpf users build them (fixtures/xdp/libbpf):
programs refused one by one, --type and --map-size, exit codes decided by chosen programs."""

from __future__ import annotations

import json

import pytest

from cli.exits import UsageError
from offload.driver import ObjectLoadError
from service.device_service import DeviceService, error_data
from service.errors import InvalidRequest
from service.methods import call

from .conftest import FIXTURES, cli, run_main

LIBBPF = FIXTURES / "libbpf"


def verdicts(capsys, *args: str) -> tuple[int, dict[str, dict], str]:
    code, out, err = run_main(capsys, "verify", *args, "--json")
    return code, {v["program"]: v for v in json.loads(out)["programs"]}, err


def test_verify_shows_loader_refusals_as_rejected_rows(capsys):
    code, rows, err = verdicts(capsys, str(LIBBPF / "xdp_traced.o"))
    assert code == 1 and list(rows) == ["xdp_count_ipv4", "trace_nanosleep", "trace_getpid"]
    assert rows["xdp_count_ipv4"]["accepted"]
    core = rows["trace_nanosleep"]
    assert (core["accepted"], core["stage"], core["kind"], core["insns"]) == \
        (False, "loader", "co-re", None)
    assert "struct task_struct.tgid" in core["reason"]
    assert (rows["trace_getpid"]["stage"], rows["trace_getpid"]["accepted"]) == \
        ("verifier", False)
    assert "rejected: trace_nanosleep (section kprobe/do_nanosleep): needs 1 CO-RE" in err


def test_only_chosen_programs_decide_the_exit_code(capsys):
    traced = str(LIBBPF / "xdp_traced.o")
    code, out, err = run_main(capsys, "verify", traced, "--program", "xdp_count_ipv4")
    assert code == 0 and "accepted" in out and "trace_nanosleep" not in out + err
    assert run_main(capsys, "verify", traced, "--section", "xdp")[0] == 0
    code, out, _ = run_main(capsys, "verify", traced, "--program", "trace_nanosleep")
    assert code == 1 and "CO-RE relocations" in out  # the row's short reason
    code, rows, _ = verdicts(capsys, traced, "--program", "xdp_count_ipv4", "--program",
                             "trace_getpid")
    assert code == 1 and list(rows) == ["xdp_count_ipv4", "trace_getpid"]
    code, _, err = run_main(capsys, "verify", traced, "--program", "nope")
    assert code == 2 and "trace_nanosleep (kprobe/do_nanosleep)" in err
    code, rows, _ = verdicts(capsys, str(LIBBPF / "xdp_current_isa.o"))
    assert code == 1 and [r["kind"] for r in rows.values() if not r["accepted"]] == \
        ["extern"] and rows["xdp_scan_ff"]["accepted"]  # bounded by may_goto
    assert run_main(capsys, "verify", str(LIBBPF / "xdp_current_isa.o"), "--program",
                    "xdp_ttl_guard")[0] == 0


def test_verify_takes_program_types(capsys):
    custom = str(LIBBPF / "xdp_custom_sections.o")
    code, rows, err = verdicts(capsys, custom)
    assert code == 1 and {n: r["kind"] for n, r in rows.items() if not r["accepted"]} == \
        {"xdp_custom": "section", "xdp_old_style": "section"}
    assert "--type xdp_custom=xdp" in err
    code, rows, _ = verdicts(capsys, custom, "--type", "xdp")
    assert code == 0 and all(r["accepted"] for r in rows.values()) and len(rows) == 3
    code, rows, _ = verdicts(capsys, custom, "--type", "xdp_custom=xdp", "--type",
                             "xdp_old_style=xdp.frags")
    assert code == 0 and len(rows) == 3
    assert run_main(capsys, "verify", custom, "--type", "xdp_custom=xdp", "--program",
                    "xdp_custom")[0] == 0


@pytest.mark.parametrize("args", [
    ("--type", "xdpp"), ("--type", "nope=xdp"), ("--type", "=xdp"), ("--type", "xdp_custom="),
    ("--type", "xdp", "--type", "tc"), ("--type", "xdp_custom=xdp", "--type", "xdp_custom=tc"),
    ("--map-size", "port_hits"), ("--map-size", "port_hits=many"), ("--map-size", "nope=4"),
    ("--map-size", "port_hits=0"),
])
def test_bad_types_and_sizes_are_usage_errors(capsys, args):
    obj = "xdp_sized_maps.o" if args[0] == "--map-size" else "xdp_custom_sections.o"
    code, _, err = run_main(capsys, "verify", str(LIBBPF / obj), *args)
    assert code == 2, err


def test_raw_programs_take_one_plain_type(capsys, tmp_path):
    raw = tmp_path / "p.hex"
    raw.write_text("b7 00 00 00 02 00 00 00\n95 00 00 00 00 00 00 00\n")
    assert run_main(capsys, "verify", "--raw", str(raw), "--type", "xdp")[0] == 0
    assert run_main(capsys, "verify", "--raw", str(raw), "--type", "p=xdp")[0] == 2
    assert run_main(capsys, "verify", "--raw", str(raw), "--map-size", "m=1")[0] == 2


def test_verify_takes_map_sizes(capsys):
    sized = str(LIBBPF / "xdp_sized_maps.o")
    code, rows, err = verdicts(capsys, sized)
    assert code == 1 and rows["xdp_port_filter"]["kind"] == "map"
    assert "--map-size allowed_ports=N" in err and rows["xdp_port_hits"]["accepted"]
    code, rows, _ = verdicts(capsys, sized, "--map-size", "allowed_ports=1024")
    assert code == 0 and all(r["accepted"] for r in rows.values())


def test_map_in_map_with_a_value_type_verifies(capsys):
    code, rows, _ = verdicts(capsys, str(LIBBPF / "xdp_flow_cache.o"))
    assert code == 0 and rows["xdp_flow_cache"]["insns_processed"] > 0


def test_check_frames_runs_on_chosen_programs_of_mixed_objects(capsys, tmp_path):
    from service.frames import IPPROTO_TCP, frame
    from service.pcap import encode_pcap

    capture = tmp_path / "frames.pcap"
    capture.write_bytes(encode_pcap([frame("10.0.0.1", "10.0.0.2", IPPROTO_TCP), bytes(20)]))
    code, out, _ = run_main(capsys, "verify", str(LIBBPF / "xdp_traced.o"), "--program",
                            "xdp_count_ipv4", "--check-frames", str(capture))
    assert code == 0 and "xdp_count_ipv4: soundness oracle: 2 frame(s)" in out


def service_load(service: DeviceService, name: str, **params):
    return call(service, "load", {"object": (LIBBPF / f"{name}.o").read_bytes(), "name": name,
                                  **params})


def test_device_load_refuses_chosen_programs_and_reports_the_rest():
    service = DeviceService("A", "full", seed=7)
    with pytest.raises(ObjectLoadError) as info:
        service_load(service, "xdp_traced")
    assert "--program xdp_count_ipv4 --program trace_getpid" in str(info.value)
    data = error_data(info.value)
    assert data["refused"]["trace_nanosleep"]["kind"] == "co-re"
    assert call(service, "status")["programs"] == [] and call(service, "status")["maps"] == []
    result = service_load(service, "xdp_traced", program=["xdp_count_ipv4"], attach=True)
    assert result["attached"] == "xdp_count_ipv4" and list(result["maps"]) == ["frame_counts"]
    assert result["refused"]["trace_nanosleep"]["section"] == "kprobe/do_nanosleep"


def test_device_load_takes_types_and_sizes():
    service = DeviceService("A", "full", seed=7)
    result = service_load(service, "xdp_custom_sections", type="xdp")
    assert len(result["programs"]) == 3 and not result["refused"]
    result = service_load(service, "xdp_custom_sections", types={"xdp_custom": "xdp"},
                          program="xdp_custom")
    assert list(result["programs"]) == ["xdp_custom"]
    result = service_load(service, "xdp_sized_maps", map_sizes={"allowed_ports": 16})
    assert set(result["programs"]) == {"xdp_port_filter", "xdp_port_hits"}
    maps = {m["name"]: m for m in call(service, "status")["maps"]}
    assert maps["allowed_ports"]["max_entries"] == 16
    with pytest.raises(UsageError, match="no map named 'nope'"):
        service_load(service, "xdp_sized_maps", map_sizes={"nope": 16})
    with pytest.raises(InvalidRequest, match="'map_sizes.allowed_ports' of 'load' must be int"):
        service_load(service, "xdp_sized_maps", map_sizes={"allowed_ports": "16"})


def test_load_command_takes_types_and_sizes(daemons):
    d = daemons("L")
    custom = str(LIBBPF / "xdp_custom_sections.o")
    refused = cli("load", custom, "--device", str(d.path))
    assert refused.returncode == 1 and "missing program type" in refused.stderr
    loaded = cli("load", custom, "--device", str(d.path), "--type", "xdp_custom=xdp",
                 "--program", "xdp_custom", "--attach")
    assert loaded.returncode == 0, loaded.stderr
    assert "program xdp_custom (attached)" in loaded.stdout
    assert "not chosen, refused by the loader: xdp_old_style" in loaded.stdout
    bad = cli("load", str(LIBBPF / "xdp_sized_maps.o"), "--device", str(d.path),
              "--map-size", "nope=1")
    assert bad.returncode == 2 and "no map named 'nope'" in bad.stderr
