"""Objects onto a device through the driver's load_object, as libbpf's bpf_object__load puts
them into a kernel: types and sizes set first, all or none by default, refused programs
never reaching the device, map-in-map templates made and let go."""

from __future__ import annotations

import errno
import struct

import pytest

from offload.caps import load_profile
from offload.device import build_device
from offload.driver import DriverError, ObjectLoadError
from offload.loader import RefusalKind, load_object
from offload.uapi import MapType, XdpAction
from service.frames import tcp, v4_frame

from .fixtures import fixture, libbpf_fixture


@pytest.fixture
def pair():
    return build_device("dut", load_profile("full"), seed=1)


def live_maps(pair) -> dict[str, int]:
    return {entry.spec.name: handle for handle, entry in pair.device.objects.maps.items()
            if not entry.released}


def test_a_chosen_refused_program_loads_nothing(pair):
    with pytest.raises(ObjectLoadError) as info:
        pair.driver.load_object(libbpf_fixture("xdp_traced"))
    assert info.value.errno == errno.EINVAL and set(info.value.refused) == {"trace_nanosleep"}
    assert info.value.refused["trace_nanosleep"].kind == RefusalKind.CO_RE
    assert "1 of the 3 chosen programs cannot be loaded: program 'trace_nanosleep'" in \
        str(info.value)
    assert not pair.device.objects.maps and not pair.device.objects.programs


def test_choosing_the_xdp_program_loads_it_and_only_its_maps(pair):
    loaded = pair.driver.load_object(libbpf_fixture("xdp_traced"), programs=["xdp_count_ipv4"])
    assert list(loaded.programs) == ["xdp_count_ipv4"] and list(loaded.maps) == ["frame_counts"]
    assert live_maps(pair) == {"frame_counts": loaded.maps["frame_counts"]}  # no 'sleepers'
    pair.driver.xdp_attach(loaded.programs["xdp_count_ipv4"])
    assert pair.device.receive(v4_frame("10.0.0.1", "10.0.0.2", tcp(1, 2))) == XdpAction.PASS
    count = pair.driver.map_lookup_elem(loaded.maps["frame_counts"], struct.pack("<I", 6))
    assert struct.unpack("<Q", count) == (1,)
    pair.driver.xdp_detach()
    pair.driver.unload_object(loaded)
    assert not live_maps(pair)


def test_partial_load_reports_loader_and_device_refusals(pair):
    loaded = pair.driver.load_object(libbpf_fixture("xdp_traced"), all_or_none=False)
    assert list(loaded.programs) == ["xdp_count_ipv4"]
    assert loaded.refused["trace_nanosleep"].kind == RefusalKind.CO_RE
    assert "TRACEPOINT is not supported" in str(loaded.rejected["trace_getpid"])
    assert set(loaded.maps) == {"frame_counts"}


def test_a_device_refusal_undoes_everything_and_names_the_program(pair):
    smartnic = build_device("nic", load_profile("smartnic"), seed=1)
    with pytest.raises(DriverError, match="map 'jump_table'.*PROG_ARRAY") as info:
        smartnic.driver.load_object(fixture("xdp_tailcall.o"))
    assert not isinstance(info.value, ObjectLoadError)
    assert not smartnic.device.objects.maps and not smartnic.device.objects.programs
    # the handlers use no PROG_ARRAY: chosen alone, they load
    loaded = smartnic.driver.load_object(fixture("xdp_tailcall.o"),
                                         programs=["xdp_handle_udp", "xdp_handle_tcp"])
    assert list(loaded.programs) == ["xdp_handle_tcp", "xdp_handle_udp"]
    assert set(loaded.maps) == {"handled", "udp_blocked"}


def test_types_and_sizes_are_set_before_load(pair):
    loaded = pair.driver.load_object(libbpf_fixture("xdp_custom_sections"), prog_type="xdp")
    assert len(loaded.programs) == 3
    sized = pair.driver.load_object(libbpf_fixture("xdp_sized_maps"),
                                    map_sizes={"allowed_ports": 64})
    handle = sized.maps["allowed_ports"]
    assert pair.device.objects.maps[handle].spec.max_entries == 64
    # an ObjectSpec already opened takes them too (set on top of its own)
    obj = load_object(libbpf_fixture("xdp_sized_maps"))
    again = pair.driver.load_object(obj, map_sizes={"allowed_ports": 8},
                                    programs=["xdp_port_filter"])
    assert pair.device.objects.maps[again.maps["allowed_ports"]].spec.max_entries == 8
    with pytest.raises(DriverError, match="no map named 'nope'") as info:
        pair.driver.load_object(obj, map_sizes={"nope": 8})
    assert info.value.errno == errno.EINVAL
    with pytest.raises(DriverError, match="no program 'nope'") as info:
        pair.driver.load_object(obj, programs=["nope"])
    assert info.value.errno == errno.ENOENT


def test_flow_caches_declared_with_a_value_type_work_end_to_end(pair):
    """The katran-style map of maps: per-CPU LRU tables in an ARRAY_OF_MAPS, session tables
    in a HASH_OF_MAPS, each declared with __type(value, __u32) beside __array(values)."""
    driver, device = pair.driver, pair.device
    loaded = driver.load_object(libbpf_fixture("xdp_flow_cache"))
    maps, obj = loaded.maps, loaded.object
    assert {device.objects.maps[h].spec.type for h in maps.values()} == \
        {MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.LRU_HASH}
    assert set(live_maps(pair)) == {"flow_caches", "vip_sessions", "fallback_cache"}
    driver.xdp_attach(loaded.programs["xdp_flow_cache"])
    cache = driver.map_create(obj.maps["flow_caches"].inner)
    driver.map_update_elem(maps["flow_caches"], struct.pack("<I", 0), struct.pack("<I", cache))
    sessions = driver.map_create(obj.maps["vip_sessions"].inner)
    driver.map_update_elem(sessions, struct.pack(">H", 443), b"\1")
    driver.map_update_elem(maps["vip_sessions"], bytes([10, 0, 0, 9]),
                           struct.pack("<I", sessions))
    web = v4_frame("10.0.0.1", "10.0.0.9", tcp(4000, 80))
    assert device.receive(web) == XdpAction.PASS
    assert device.receive(web) == XdpAction.PASS
    assert device.receive(v4_frame("10.0.0.1", "10.0.0.9", tcp(4000, 443))) == XdpAction.DROP
    (key, value), = driver.map_items(cache)
    assert key[:4] == bytes([10, 0, 0, 1]) and struct.unpack("<QQ", value)[1] == 2
    assert not list(driver.map_items(maps["fallback_cache"]))
