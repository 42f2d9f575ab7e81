"""Global data map names, as libbpf gives them to the kernel."""

from __future__ import annotations

import pytest

from offload.loader import global_data_map_name


@pytest.mark.parametrize(("obj", "section", "expected"), [
    ("xdp_config", ".rodata", "xdp_conf.rodata"),
    ("xdp_config", ".bss", "xdp_conf.bss"),
    ("xdp_config", ".data", "xdp_conf.data"),
    ("lb", ".rodata", "lb.rodata"),
    ("xdp_config", ".rodata.str1.1", ".rodata.str1.1"),
    ("xdp_config", ".data.custom_section", ".data.custom_se"),
    ("", ".bss", ".bss"),
    ("my-prog", ".data", "my_prog.data"),
    ("abc", ".rodata12", "abc.rodata12"),
    ("xdp_config", ".rodata12", "xdp_co.rodata12"),
])
def test_names(obj: str, section: str, expected: str) -> None:
    name = global_data_map_name(obj, section)
    assert name == expected
    assert len(name) <= 15
