#!/usr/bin/env python3
"""Compatibility matrix: every golden snapshot against every target profile.

For each golden file (fixtures/snapshots/v<N>/*.omsnap) and each profile (full, legacy-nic,
smartnic, and host-kernel where bpf() works), compute the compatibility plan - the outcome of
every object and the overall one (COMPATIBLE, REWRITABLE, FALLBACK, INCOMPATIBLE; fallback
allowed) - and restore the snapshot onto a real device built with that profile (the kernel
backend for host-kernel), recording whether it succeeds. Compare everything with the checked-in
table .ci/matrix-expected.toml; any difference fails.

    .venv/bin/python .ci/matrix.py            # check (exit 1 on any difference)
    .venv/bin/python .ci/matrix.py --write    # rewrite the table (review the diff!)
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from migrate.compat import plan  # noqa: E402
from migrate.restore import IncompatibleTarget, RestoreError, restore  # noqa: E402
from migrate.store import load  # noqa: E402
from offload.caps import load_profile  # noqa: E402
from offload.caps.profiles import ProfileError  # noqa: E402
from offload.device import build_device  # noqa: E402
from offload.virtio.features import device_offer  # noqa: E402

GOLDENS = ROOT / "fixtures" / "snapshots"
EXPECTED = ROOT / ".ci" / "matrix-expected.toml"
PROFILES = ("full", "legacy-nic", "smartnic", "host-kernel")
Row = dict[str, object]


def goldens() -> list[Path]:
    return sorted(GOLDENS.glob("v*/*.omsnap"))


def target(profile: str, cpus: int):  # noqa: ANN201 - a DevicePair
    caps = load_profile(profile)
    if profile == "host-kernel":
        from offload.backends.kernel import KernelBackend

        return build_device("matrix", caps, backend=KernelBackend(caps))
    return build_device("matrix", caps, ncpus=cpus, seed=7)


def evaluate(path: Path, profile: str) -> Row:
    """One cell: the plan's outcomes and what a real restore does."""
    snapshot, _ = load(path)
    pair = target(profile, snapshot.cpus)
    caps = pair.driver.capabilities()
    the_plan = plan(snapshot, caps, offered_features=device_offer(caps), allow_fallback=True)
    try:
        restore(snapshot, pair.driver, allow_fallback=True)
        restored = "restored"
    except IncompatibleTarget:
        restored = "refused"
    except RestoreError as exc:
        restored = f"failed: {exc.cause or exc}"
    return {"overall": the_plan.outcome.name, "restore": restored,
            "objects": {f"{r.kind} {r.name}": r.outcome.name for r in the_plan.reports}}


def available(profile: str) -> str | None:
    """None if the profile can be used here, else why not."""
    try:
        load_profile(profile)
    except ProfileError as exc:
        return str(exc)
    return None


def run_matrix(profiles: tuple[str, ...] = PROFILES) -> tuple[dict[str, dict[str, Row]],
                                                               dict[str, str]]:
    results: dict[str, dict[str, Row]] = {}
    skipped = {p: why for p in profiles if (why := available(p)) is not None}
    for path in goldens():
        cell = f"{path.parent.name}/{path.stem}"
        results[cell] = {p: evaluate(path, p) for p in profiles if p not in skipped}
    return results, skipped


def compare(results: dict[str, dict[str, Row]], expected: dict[str, dict[str, Row]],
            skipped: dict[str, str]) -> list[str]:
    """Every difference, as a line a reader can act on."""
    problems = []
    for cell in sorted(set(results) | set(expected)):
        if cell not in expected:
            problems.append(f"{cell}: a golden without rows in {EXPECTED.name}")
            continue
        if cell not in results:
            problems.append(f"{cell}: rows in {EXPECTED.name} but no golden file")
            continue
        for profile in sorted(set(results[cell]) | set(expected[cell])):
            if profile in skipped:
                continue
            got, want = results[cell].get(profile), expected[cell].get(profile)
            if want is None or got is None:
                problems.append(f"{cell} on {profile}: "
                                f"{'not in the table' if want is None else 'not evaluated'}")
            elif got != want:
                for key in ("overall", "restore"):
                    if got[key] != want[key]:
                        problems.append(f"{cell} on {profile}: {key} is {got[key]}, expected "
                                        f"{want[key]}")
                g, w = got["objects"], want["objects"]
                assert isinstance(g, dict) and isinstance(w, dict)
                for obj in sorted(set(g) | set(w)):
                    if g.get(obj) != w.get(obj):
                        problems.append(f"{cell} on {profile}: {obj} is {g.get(obj)}, "
                                        f"expected {w.get(obj)}")
    return problems


def to_toml(results: dict[str, dict[str, Row]]) -> str:
    lines = ["# Expected outcomes of .ci/matrix.py: golden snapshot x target profile.",
             "# overall/objects: the compatibility plan with fallback allowed; restore: what a",
             "# real restore onto a device of that profile did. Regenerate with --write and",
             "# review every changed line.", ""]
    for cell, row in results.items():
        for profile, out in row.items():
            lines.append(f'["{cell}".{profile}]')
            lines.append(f'overall = "{out["overall"]}"')
            lines.append(f'restore = "{out["restore"]}"')
            objects = out["objects"]
            assert isinstance(objects, dict)
            lines.append(f'["{cell}".{profile}.objects]')
            lines += [f'"{obj}" = "{outcome}"' for obj, outcome in objects.items()]
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the golden snapshot x profile matrix.")
    parser.add_argument("--write", action="store_true", help="rewrite the expected table")
    args = parser.parse_args(argv)
    results, skipped = run_matrix()
    for profile, why in skipped.items():
        print(f"matrix: profile {profile} skipped: {why}")
    if args.write:
        if skipped:
            print("matrix: refusing to write a table with skipped profiles.", file=sys.stderr)
            return 1
        EXPECTED.write_text(to_toml(results), encoding="utf-8")
        print(f"matrix: wrote {EXPECTED}")
        return 0
    expected = tomllib.loads(EXPECTED.read_text(encoding="utf-8"))
    problems = compare(results, expected, skipped)
    cells = sum(len(row) for row in results.values())
    for problem in problems:
        print(f"matrix: {problem}")
    summary = {}
    for row in results.values():
        for out in row.values():
            key = f"{out['overall']}/{str(out['restore']).split(':')[0]}"
            summary[key] = summary.get(key, 0) + 1
    print(f"matrix: {cells} cells ({len(results)} goldens x "
          f"{len(PROFILES) - len(skipped)} profiles): "
          + ", ".join(f"{k} {v}" for k, v in sorted(summary.items()))
          + (f"; {len(problems)} differences" if problems else "; all as expected"))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
