"""The device's map memory: what MAP_CREATE charges, ENOMEM past the capacity, the profiles'
capacities and the CAPS field that tells the guest."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest

from offload.caps import load_profile
from offload.caps.profiles import (
    PROFILE_DIR,
    ProfileError,
    list_profiles,
    profile_from_toml,
    profile_to_toml,
)
from offload.device import build_device
from offload.errors import ErrnoError
from offload.maps.memory import (
    HASH_ENTRY_OVERHEAD,
    LPM_NODE_OVERHEAD,
    MAP_OVERHEAD,
    PAGE_SIZE,
    RINGBUF_META_PAGES,
    map_memory,
)
from offload.maps.perf_event_array import PERF_STREAM_BYTES
from offload.maps.spec import MapSpec
from offload.uapi import MapType
from offload.virtio.bpf_progs import CapsResponse


def test_charges_follow_the_kernels_accounting():
    # arrays: no key, values rounded to 8; per-CPU arrays a pointer and a value per CPU
    assert map_memory(MapSpec("a", MapType.ARRAY, 4, 60, 1000)) == MAP_OVERHEAD + 1000 * 64
    assert map_memory(MapSpec("p", MapType.PERCPU_ARRAY, 4, 8, 10), 4) == \
        MAP_OVERHEAD + 10 * (8 + 8 * 4)
    # hashes: element overhead, key and value; per-CPU hashes a pointer and ncpus values
    assert map_memory(MapSpec("h", MapType.HASH, 5, 9, 100)) == \
        MAP_OVERHEAD + 100 * (HASH_ENTRY_OVERHEAD + 8 + 16)
    assert map_memory(MapSpec("ph", MapType.PERCPU_HASH, 8, 8, 100), 2) == \
        MAP_OVERHEAD + 100 * (HASH_ENTRY_OVERHEAD + 8 + 8 + 16)
    assert map_memory(MapSpec("l", MapType.LPM_TRIE, 8, 4, 10)) == \
        MAP_OVERHEAD + 10 * (LPM_NODE_OVERHEAD + 16)
    assert map_memory(MapSpec("r", MapType.RINGBUF, 0, 0, 1 << 16)) == \
        MAP_OVERHEAD + (1 << 16) + RINGBUF_META_PAGES * PAGE_SIZE
    assert map_memory(MapSpec("e", MapType.PERF_EVENT_ARRAY, 4, 4, 8), 2) == \
        MAP_OVERHEAD + 8 * 8 + 2 * PERF_STREAM_BYTES
    # what the map may hold, not what it holds: the 2^24 x 64 KiB array is 1 TiB
    assert map_memory(MapSpec("big", MapType.ARRAY, 4, 64 << 10, 1 << 24)) > 1 << 40


def _pair(memory: int, ncpus: int = 1):
    caps = replace(load_profile("full"), memory=memory)
    return build_device("budget", caps, ncpus=ncpus)


def test_map_create_is_refused_past_the_capacity_and_nothing_is_created():
    spec = MapSpec("table", MapType.ARRAY, 4, 64, 1000)
    charge = map_memory(spec)
    pair = _pair(2 * charge)
    first = pair.driver.map_create(spec)
    second = pair.driver.map_create(replace(spec, name="table2"))  # exactly at the capacity
    assert pair.device.memory_used == 2 * charge
    before = dict(pair.device.objects.maps), dict(pair.device.backend.maps)
    with pytest.raises(ErrnoError) as refused:
        pair.driver.map_create(MapSpec("one_more", MapType.ARRAY, 4, 8, 1))
    assert refused.value.errno == errno.ENOMEM
    assert "one_more" in refused.value.detail and f"{2 * charge:,} bytes" in refused.value.detail
    assert (dict(pair.device.objects.maps), dict(pair.device.backend.maps)) == before
    pair.driver.map_free(second)  # freeing gives the charge back
    assert pair.device.memory_used == charge
    pair.driver.map_create(MapSpec("fits_now", MapType.ARRAY, 4, 8, 1))
    assert first in pair.device.objects.maps


def test_per_cpu_maps_are_charged_per_cpu():
    spec = MapSpec("pc", MapType.PERCPU_ARRAY, 4, 64, 1000)
    pair = _pair(map_memory(spec, 2) + map_memory(spec, 1) // 2, ncpus=4)
    with pytest.raises(ErrnoError) as refused:  # fits 2 CPUs' worth, not the device's 4
        pair.driver.map_create(spec)
    assert refused.value.errno == errno.ENOMEM
    pair = _pair(map_memory(spec, 4), ncpus=4)
    pair.driver.map_create(spec)
    assert pair.device.memory_used == map_memory(spec, 4)


def test_bad_attributes_are_refused_before_the_charge():
    pair = _pair(1 << 20)
    with pytest.raises(ErrnoError) as refused:  # a hash with no key: EINVAL, not ENOMEM
        pair.driver.map_create(MapSpec("bad", MapType.HASH, 0, 8, 1 << 24))
    assert refused.value.errno == errno.EINVAL
    with pytest.raises(ErrnoError) as refused:  # over the profile's entries limit: E2BIG
        pair.driver.map_create(MapSpec("huge", MapType.ARRAY, 4, 8, (1 << 24) + 1))
    assert refused.value.errno == errno.E2BIG


def test_every_profile_has_a_capacity_that_round_trips():
    for name in list_profiles():
        if name == "host-kernel":
            continue
        text = (PROFILE_DIR / f"{name}.toml").read_text()
        assert "\nmemory = " in text  # stated in the file, not the default
        caps = load_profile(name)
        assert profile_from_toml(profile_to_toml(caps)) == caps
    assert load_profile("smartnic").memory == 256 << 20
    assert load_profile("legacy-nic").memory < load_profile("smartnic").memory \
        < load_profile("full").memory
    with pytest.raises(ProfileError, match="memory"):
        profile_from_toml('name = "x"\nmemory = 12\n')
    with pytest.raises(ProfileError, match="memory"):
        profile_from_toml('name = "x"\nmemory = "lots"\n')


def test_caps_tells_the_guest_the_capacity():
    caps = replace(load_profile("smartnic"), memory=(5 << 32) + 7)  # more than a u32
    wire = CapsResponse.from_capabilities(caps, 1 << 20).encode(1 << 16)
    assert CapsResponse.decode(wire).to_capabilities().memory == (5 << 32) + 7
    assert build_device("told", caps).driver.capabilities().memory == (5 << 32) + 7


def test_a_freed_inner_map_stays_charged_while_a_map_of_maps_holds_it():
    """The guest freeing an inner map it put into a map of maps does not free the map (the
    entry holds it, as the kernel's map_in_map holds a reference): it stays listed and charged
    until the entry goes. Before, the device dropped it from its books while the outer map
    kept it alive, so a guest could fill any amount of memory past the budget."""
    inner_spec = MapSpec("inner", MapType.HASH, 4, 4, 64)
    pair = _pair(1 << 20)
    device, driver = pair.device, pair.driver
    template = driver.map_create(inner_spec)
    outer = driver.map_create(MapSpec("outer", MapType.ARRAY_OF_MAPS, 4, 4, 64,
                                      inner=inner_spec), inner_map=template)
    charged = device.memory_used
    inners = []
    for slot in range(8):
        inner = driver.map_create(inner_spec)
        driver.map_update_elem(inner, b"\x01\x00\x00\x00", b"\x07\x00\x00\x00")
        driver.map_update_elem(outer, slot.to_bytes(4, "little"), inner.to_bytes(4, "little"))
        driver.map_free(inner)  # the outer's entry holds it now
        inners.append(inner)
    each = map_memory(inner_spec)
    assert device.memory_used == charged + 8 * each
    assert all(h in device.objects.maps for h in inners)
    with pytest.raises(ErrnoError) as gone:  # the guest's handle is gone all the same
        driver.map_lookup_elem(inners[0], b"\x01\x00\x00\x00")
    assert gone.value.errno == errno.EBADF
    with pytest.raises(ErrnoError) as closed:  # nor does a map of maps take it again
        driver.map_update_elem(outer, (9).to_bytes(4, "little"), inners[0].to_bytes(4, "little"))
    assert closed.value.errno == errno.EBADF
    # replacing an entry and deleting one release the maps they held
    driver.map_update_elem(outer, (1).to_bytes(4, "little"), template.to_bytes(4, "little"))
    driver.map_delete_elem(outer, (2).to_bytes(4, "little"))
    assert inners[1] not in device.objects.maps and inners[2] not in device.objects.maps
    assert device.memory_used == charged + 6 * each
    # freeing the outer map releases the rest
    driver.map_free(outer)
    assert [h for h in inners if h in device.objects.maps] == []
    assert device.memory_used == map_memory(inner_spec)  # the template, still the guest's
