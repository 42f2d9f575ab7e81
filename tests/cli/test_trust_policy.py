"""The trust policy and freshness checks as an operator meets them: a stripped signature and a
re-sealed downgrade refused under --trust (exit 3), stale snapshots refused under --max-age,
--min-generation and --no-rollback (exit 1), the target unchanged by every refusal. (That the
generation and the rollback record survive a restart: tests/cli/test_device_state.py.)"""

from __future__ import annotations

import json
import time

from tests.migrate.forge import as_format_1, build, split

from .conftest import FIXTURES, run_main
from .test_daemon import call, status

FIREWALL = str(FIXTURES / "xdp_firewall.o")


def empty(path) -> bool:
    state = status(path)
    return state["programs"] == [] and state["maps"] == []


def stripped(data: bytes) -> bytes:
    parts = split(data)
    return build(parts.version, {**parts.header, "auth": "none", "auth_key_id": None},
                 parts.payload)


def downgraded(data: bytes) -> bytes:
    parts = split(data)
    header = {key: parts.header[key] for key in ("auth", "cipher", "cipher_key_id", "nonce",
                                                 "created_ns")}
    return build(1, {**header, "format": 1, "auth": "none", "auth_key_id": None},
                 as_format_1(parts.payload))


def command(capsys, *args: str) -> tuple[int, str, str]:
    return run_main(capsys, *map(str, args))


def test_policy_and_freshness_refusals(daemons, tmp_path, capsys):
    a = daemons("A", "full")
    b = daemons("B", "full")
    assert command(capsys, "load", FIREWALL, "--device", a.path, "--attach")[0] == 0
    key = tmp_path / "ops.key"
    assert command(capsys, "keygen", "--type", "ed25519", "-o", key)[0] == 0
    trust = ["--trust", f"{key}.pub"]
    old, new = tmp_path / "old.snap", tmp_path / "new.snap"
    for path in (old, new):
        code, out, err = command(capsys, "save", "--device", a.path, "-o", path, "--sign", key)
        assert code == 0, err

    code, out, err = command(capsys, "inspect", new, *trust, "--json", "--no-disasm")
    assert code == 0, err
    source = json.loads(out)["seal"]["source"]
    first = json.loads(command(capsys, "inspect", old, "--json", "--no-disasm")[1])
    assert source["name"] == "A" and len(source["device_id"]) == 32
    assert source["generation"] == first["seal"]["source"]["generation"] + 1
    assert f"generation {source['generation']}" in command(capsys, "inspect", new, *trust,
                                                           "--no-disasm")[1]
    generation = source["generation"]

    attacks = {"stripped": stripped(new.read_bytes()), "downgraded": downgraded(new.read_bytes())}
    for name, data in attacks.items():
        path = tmp_path / f"{name}.snap"
        path.write_bytes(data)
        code, _, err = command(capsys, "restore", path, "--device", b.path, "--dry-run")
        assert code == 0, (name, err)  # no policy: readable, unverified
        code, out, err = command(capsys, "restore", path, "--device", b.path, *trust)
        assert code == 3 and "not signed" in err, (name, out, err)
        assert empty(b.path)

    time.sleep(0.05)
    code, _, err = command(capsys, "restore", old, "--device", b.path, *trust, "--max-age",
                           "20ms")
    assert code == 1 and "older than --max-age" in err, err
    code, _, err = command(capsys, "restore", old, "--device", b.path, *trust,
                           "--min-generation", generation)
    assert code == 1, err
    assert f"generation {generation - 1}" in err and f"--min-generation {generation}" in err
    assert empty(b.path)

    code, _, err = command(capsys, "restore", new, "--device", b.path, *trust, "--no-rollback",
                           "--max-age", "1h", "--min-generation", generation)
    assert code == 0, err
    code, _, err = command(capsys, "restore", old, "--device", b.path, *trust, "--no-rollback",
                           "--dry-run")
    assert code == 1, err
    assert f"generation {generation - 1}" in err and f"generation {generation}" in err
    assert command(capsys, "restore", old, "--device", b.path, *trust,
                   "--dry-run")[0] == 0  # without the guard, an older one may be planned
    assert call(b.path, "status")["identity"]["restored_sources"] == 1
    assert command(capsys, "restore", old, "--device", b.path, "--max-age", "soon")[0] == 2


def test_snapshots_without_a_stamp_under_freshness_options(daemons, tmp_path, capsys):
    """A snapshot that carries no generation cannot show it is fresh."""
    b = daemons("C", "full")
    legacy = FIXTURES.parent / "snapshots" / "v2" / "config.omsnap"  # container version 1
    for option in (["--min-generation", "1"], ["--no-rollback"]):
        code, _, err = command(capsys, "restore", legacy, "--device", b.path, *option)
        assert code == 1 and "no generation" in err, err
        assert empty(b.path)
    assert command(capsys, "restore", legacy, "--device", b.path, "--dry-run")[0] == 0
