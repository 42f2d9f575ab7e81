"""The trust policy and freshness checks as an operator meets them: a stripped signature and a
re-sealed downgrade refused under --trust (exit 3), stale snapshots refused under --max-age,
--min-generation and --no-rollback (exit 1), the target unchanged by every refusal, and the
generation and rollback record surviving daemon restarts."""

from __future__ import annotations

import json
import time

from tests.migrate.forge import as_format_1, build, split

from .conftest import FIXTURES, DaemonProcess, cli
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


def test_policy_and_freshness_refusals(daemons, tmp_path):
    a = daemons("A", "full")
    b = daemons("B", "full")
    assert cli("load", FIREWALL, "--device", str(a.path), "--attach").returncode == 0
    key = tmp_path / "ops.key"
    assert cli("keygen", "--type", "ed25519", "-o", str(key)).returncode == 0
    trust = ["--trust", f"{key}.pub"]
    old, new = tmp_path / "old.snap", tmp_path / "new.snap"
    for path in (old, new):
        saved = cli("save", "--device", str(a.path), "-o", str(path), "--sign", str(key))
        assert saved.returncode == 0, saved.stderr

    shown = cli("inspect", str(new), *trust, "--json", "--no-disasm")
    assert shown.returncode == 0, shown.stderr
    source = json.loads(shown.stdout)["seal"]["source"]
    first = json.loads(cli("inspect", str(old), "--json", "--no-disasm").stdout)
    assert source["name"] == "A" and len(source["device_id"]) == 32
    assert source["generation"] == first["seal"]["source"]["generation"] + 1
    text = cli("inspect", str(new), *trust, "--no-disasm")
    assert f"generation {source['generation']}" in text.stdout

    attacks = {"stripped": stripped(new.read_bytes()), "downgraded": downgraded(new.read_bytes())}
    for name, data in attacks.items():
        path = tmp_path / f"{name}.snap"
        path.write_bytes(data)
        plain = cli("restore", str(path), "--device", str(b.path), "--dry-run")
        assert plain.returncode == 0, (name, plain.stderr)  # no policy: readable, unverified
        result = cli("restore", str(path), "--device", str(b.path), *trust)
        assert result.returncode == 3, (name, result.stdout, result.stderr)
        assert "not signed" in result.stderr
        assert empty(b.path)

    time.sleep(0.05)
    stale = cli("restore", str(old), "--device", str(b.path), *trust, "--max-age", "20ms")
    assert stale.returncode == 1 and "older than --max-age" in stale.stderr, stale.stderr
    low = cli("restore", str(old), "--device", str(b.path), *trust, "--min-generation",
              str(source["generation"]))
    assert low.returncode == 1, low.stderr
    assert f"generation {source['generation'] - 1}" in low.stderr and \
        f"--min-generation {source['generation']}" in low.stderr
    assert empty(b.path)

    done = cli("restore", str(new), "--device", str(b.path), *trust, "--no-rollback",
               "--max-age", "1h", "--min-generation", str(source["generation"]))
    assert done.returncode == 0, done.stderr
    replay = cli("restore", str(old), "--device", str(b.path), *trust, "--no-rollback",
                 "--dry-run")
    assert replay.returncode == 1, replay.stderr
    assert f"generation {source['generation'] - 1}" in replay.stderr and \
        f"generation {source['generation']}" in replay.stderr
    assert cli("restore", str(old), "--device", str(b.path), *trust,
               "--dry-run").returncode == 0  # without the guard, an older one may be planned

    # both survive a restart: the target's record and the source's generation
    b.stop()
    b2 = DaemonProcess(b.path, "B", "full", "--state-dir", str(tmp_path / "B.state"))
    a.stop()
    a2 = DaemonProcess(a.path, "A", "full", "--state-dir", str(tmp_path / "A.state"))
    try:
        replay = cli("restore", str(old), "--device", str(b2.path), *trust, "--no-rollback")
        assert replay.returncode == 1 and empty(b2.path), replay.stderr
        assert cli("restore", str(new), "--device", str(b2.path), *trust,
                   "--no-rollback").returncode == 0
        assert call(b2.path, "status")["programs"]
        later = tmp_path / "later.snap"
        assert cli("save", "--device", str(a2.path), "-o", str(later)).returncode == 0
        again = json.loads(cli("inspect", str(later), "--json", "--no-disasm").stdout)
        assert again["seal"]["source"]["generation"] == source["generation"] + 1
        assert again["seal"]["source"]["device_id"] == source["device_id"]
    finally:
        a2.stop()
        b2.stop()


def test_unsigned_and_unknown_snapshots_under_freshness_options(daemons, tmp_path):
    """A snapshot that carries no generation cannot show it is fresh."""
    b = daemons("C", "full")
    parts = split((FIXTURES.parent / "snapshots" / "v2" / "config.omsnap").read_bytes())
    legacy = tmp_path / "legacy.snap"
    legacy.write_bytes(build(parts.version, parts.header, parts.payload))
    for option in (["--min-generation", "1"], ["--no-rollback"]):
        result = cli("restore", str(legacy), "--device", str(b.path), *option)
        assert result.returncode == 1 and "no generation" in result.stderr, result.stderr
        assert empty(b.path)
    assert cli("restore", str(legacy), "--device", str(b.path), "--dry-run").returncode == 0
