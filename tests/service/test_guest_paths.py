"""The guest launcher finds the guest builder and its cache in the source tree it runs from
(a wrong root made every end-to-end test skip on a fresh clone)."""

from __future__ import annotations

from pathlib import Path

from service import guest

ROOT = Path(__file__).resolve().parents[2]


def test_the_builder_and_the_cache_are_the_source_trees():
    assert guest.REPO == ROOT
    assert (guest.REPO / "tools" / "guest" / "build.sh").is_file()
