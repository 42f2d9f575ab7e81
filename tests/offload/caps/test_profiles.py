from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offload.caps.capabilities import Capabilities, Limits
from offload.caps.profiles import (
    HOST_KERNEL,
    ProfileError,
    capabilities_from_mapping,
    capabilities_to_mapping,
    list_profiles,
    load_profile,
    profile_from_toml,
    profile_to_toml,
)
from offload.uapi import MapType, ProgType
from offload.virtio.features import Feature, bit

FILES = ["full", "legacy-nic", "smartnic"]


def test_listed_profiles() -> None:
    assert list_profiles() == FILES + [HOST_KERNEL]


@pytest.mark.parametrize("name", FILES)
def test_profile_files_round_trip(name: str) -> None:
    caps = load_profile(name)
    assert caps.name == name and caps.description
    assert profile_from_toml(profile_to_toml(caps)) == caps
    assert capabilities_from_mapping(capabilities_to_mapping(caps)) == caps


def test_full_profile() -> None:
    caps = load_profile("full")
    assert caps.isa_version == 4 and caps.prog_types == {ProgType.XDP}
    assert {1, 2, 3, 5, 6, 7, 8, 12, 23, 28, 44, 51, 54, 65, 69, 125} <= caps.helpers
    assert caps.map_types == {
        MapType.ARRAY, MapType.PERCPU_ARRAY, MapType.HASH, MapType.PERCPU_HASH,
        MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE, MapType.DEVMAP,
        MapType.DEVMAP_HASH, MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS,
        MapType.CPUMAP, MapType.XSKMAP, MapType.PERF_EVENT_ARRAY, MapType.RINGBUF}
    assert {25, 130, 134} <= caps.helpers  # perf event and ring buffer output, ring query
    assert caps.limits == Limits()
    for feature in Feature:
        assert caps.features & bit(feature)


def test_legacy_nic_profile() -> None:
    caps = load_profile("legacy-nic")
    assert caps.isa_version == 2
    assert caps.map_types == {MapType.ARRAY, MapType.HASH}
    assert caps.limits.max_insns == 4096 and caps.limits.max_map_entries == 4096
    assert 12 not in caps.helpers
    assert not caps.features & bit(Feature.VIRTIO_F_EVENT_IDX)


def test_smartnic_profile() -> None:
    caps = load_profile("smartnic")
    assert caps.limits.max_map_entries == 65536
    assert MapType.PROG_ARRAY not in caps.map_types and 12 not in caps.helpers
    assert {1, 2, 3, 44, 65, 23, 25, 51, 28, 5} == caps.helpers
    # a NIC's queues and perf output, not the host's CPU workers or a shared ring buffer
    assert {MapType.XSKMAP, MapType.PERF_EVENT_ARRAY} <= caps.map_types
    assert not {MapType.CPUMAP, MapType.RINGBUF} & caps.map_types


@settings(max_examples=80, deadline=None)
@given(st.builds(
    Capabilities,
    name=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    isa_version=st.integers(1, 4),
    helpers=st.frozensets(st.integers(1, 300)),
    map_types=st.frozensets(st.sampled_from(list(MapType))),
    prog_types=st.frozensets(st.sampled_from(list(ProgType))),
    limits=st.builds(Limits, *[st.integers(0, 2**40)] * 10),
    features=st.integers(0, 2**64 - 1),
    check_xdp_action=st.booleans(),
    description=st.text(max_size=40),
))
def test_any_capabilities_round_trip(caps: Capabilities) -> None:
    assert profile_from_toml(profile_to_toml(caps)) == caps


@pytest.mark.parametrize(("text", "message"), [
    ('name = "x"\nbogus = 1', "unknown keys bogus"),
    ('name = "x"\nmap_types = ["NOPE"]', "unknown MapType 'NOPE'"),
    ('name = "x"\nisa_version = 9', "'isa_version' must be an integer in 1..4"),
    ('name = "x"\nfeatures = ["VIRTIO_F_NOPE"]', "unknown feature 'VIRTIO_F_NOPE'"),
    ('name = "x"\n[limits]\nmax_insns = -1', "limit 'max_insns' must be an integer"),
    ('name = "x"\n[limits]\nmax_insn = 1', "unknown limits max_insn"),
    ('name = "x"\nhelpers = ["one"]', "a helper id must be an integer"),
    ("name = ", "not valid TOML"),
    ("isa_version = 2", "'name' must be a non-empty string"),
])
def test_malformed_profiles(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        profile_from_toml(text)


def test_unknown_profile() -> None:
    with pytest.raises(ProfileError, match="there is no profile 'nope'; known profiles: full"):
        load_profile("nope")
    with pytest.raises(ProfileError, match="is not a profile name"):
        load_profile("../etc/passwd")


def test_host_kernel_profile() -> None:
    from offload.backends.kernel import kernel_available

    usable, reason = kernel_available()
    if not usable:
        with pytest.raises(ProfileError, match="cannot be probed here"):
            load_profile(HOST_KERNEL)
        pytest.skip(f"bpf() is not usable here: {reason}")
    caps = load_profile(HOST_KERNEL)
    assert caps.name == HOST_KERNEL and ProgType.XDP in caps.prog_types
    assert {1, 2, 3} <= caps.helpers and MapType.HASH in caps.map_types
    assert profile_from_toml(profile_to_toml(caps)) == caps
    assert 1 <= caps.isa_version <= 4


def test_caps_lists_host_kernel_without_importing_the_backend() -> None:
    """The probed profile comes from the provider's entry point, which the lookup calls."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    code = ("import sys; from offload.caps import list_profiles; "
            "assert not any(m.startswith('offload.backends') for m in sys.modules); "
            "print(list_profiles()[-1]); "
            "assert 'offload.backends.kernel.profile' in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(root)),
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == HOST_KERNEL


def test_registered_probes_are_listed_and_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    from offload.caps import profiles

    monkeypatch.setattr(profiles, "_probes", dict(profiles.probes()))
    caps = Capabilities(name="probed-nic", map_types=frozenset({MapType.ARRAY}))
    profiles.register_probe("probed-nic", lambda: caps)
    assert list_profiles() == FILES + sorted([HOST_KERNEL, "probed-nic"])
    assert load_profile("probed-nic") is caps
    with pytest.raises(ProfileError, match="is a profile on file"):
        profiles.register_probe("smartnic", lambda: caps)
    with pytest.raises(ProfileError, match="is not a profile name"):
        profiles.register_probe("Bad Name", lambda: caps)
