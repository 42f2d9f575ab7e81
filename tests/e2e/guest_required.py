"""Whether the end-to-end tests may skip: where QEMU or the guest is missing they skip with the
reason, unless ``OFFLOAD_REQUIRE_GUEST=1`` (CI sets it), which turns the missing guest into a
failure - a CI run must never pass these tests by skipping them."""

from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("OFFLOAD_REQUIRE_GUEST") == "1"


def guest_marks(image: object, group: str) -> list[pytest.MarkDecorator]:
    """The module's marks: one xdist group, and a skip when there is no guest and none is
    required."""
    return [pytest.mark.skipif(isinstance(image, str) and not REQUIRED, reason=str(image)),
            pytest.mark.xdist_group(group)]


def require(image: object) -> None:
    """Fail the module's fixture when the guest is required and missing."""
    if isinstance(image, str):
        pytest.fail(f"OFFLOAD_REQUIRE_GUEST=1 but there is no guest: {image}")
