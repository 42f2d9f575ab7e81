"""Objects the guest let go of but another object still holds live on, as in the kernel: a
program a prog array holds after its unload, a map a map of maps holds after its free. The
device lists them until the last holder lets go, and a checkpoint carries them, so a restore
runs what the source ran (before, the tail call target vanished from the snapshot while the
source kept tail-calling into it)."""

from __future__ import annotations

import struct
from pathlib import Path

from migrate.checkpoint import checkpoint
from migrate.restore import restore
from offload.caps import load_profile
from offload.device import build_device
from offload.uapi import XdpAction
from service.frames import ether, ipv4, tcp

TAILCALL = Path(__file__).resolve().parents[2] / "fixtures" / "xdp" / "xdp_tailcall.o"
HANDLERS = ("xdp_handle_tcp", "xdp_handle_udp", "xdp_handle_icmp")  # jump_table slots 0-2
TCP = ether(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1000, 80)))


def tail_calling():
    pair = build_device("src", load_profile("full"))
    loaded = pair.driver.load_object(TAILCALL)
    for slot, name in enumerate(HANDLERS):
        pair.driver.map_update_elem(loaded.maps["jump_table"], struct.pack("<I", slot),
                                    struct.pack("<I", loaded.programs[name]))
    pair.driver.xdp_attach(loaded.programs["xdp_dispatch"])
    return pair, loaded


def handled(pair, loaded) -> tuple[int, ...]:
    values = pair.driver.map_lookup_elem(loaded.maps["handled"], struct.pack("<I", 0))
    return struct.unpack(f"<{len(values) // 8}Q", values)


def test_a_program_a_prog_array_holds_outlives_its_unload_and_is_checkpointed():
    pair, loaded = tail_calling()
    tcp_handler = loaded.programs["xdp_handle_tcp"]
    pair.driver.prog_unload(tcp_handler)
    assert tcp_handler in pair.device.objects.programs  # the jump table holds it
    before = handled(pair, loaded)
    assert pair.device.receive(TCP) == XdpAction.PASS
    assert sum(handled(pair, loaded)) == sum(before) + 1  # still tail-called into
    snapshot = checkpoint(pair.device)
    assert {p.name for p in snapshot.programs} == {"xdp_dispatch", *HANDLERS}
    target = build_device("dst", load_profile("full"))
    result = restore(snapshot, target.driver)
    assert set(result.programs) == {"xdp_dispatch", *HANDLERS}
    restored = type(loaded)(loaded.object, dict(result.maps), dict(result.programs))
    counted = sum(handled(target, restored))
    assert target.device.receive(TCP) == XdpAction.PASS
    assert sum(handled(target, restored)) == counted + 1  # the TCP handler ran there too
    # the entry that held it goes: so does the program
    pair.driver.map_delete_elem(loaded.maps["jump_table"], struct.pack("<I", 0))
    assert tcp_handler not in pair.device.objects.programs
    assert {p.name for p in checkpoint(pair.device).programs} == {"xdp_dispatch",
                                                                  *HANDLERS[1:]}


def test_a_prog_array_the_guest_frees_lets_go_of_its_programs_and_no_cycle_lingers():
    """The dispatcher tail-calls through the jump table and the table holds the dispatcher
    too: a cycle. As the kernel clears a prog array when its last user reference goes, the
    guest freeing everything leaves the device empty; nothing lingers, uncounted."""
    pair, loaded = tail_calling()
    table = loaded.maps["jump_table"]
    pair.driver.map_update_elem(table, struct.pack("<I", 0),
                                struct.pack("<I", loaded.programs["xdp_dispatch"]))
    pair.driver.xdp_detach()
    for handle in loaded.programs.values():
        pair.driver.prog_unload(handle)
    assert loaded.programs["xdp_dispatch"] in pair.device.objects.programs  # the table holds it
    for handle in loaded.maps.values():
        pair.driver.map_free(handle)
    assert pair.device.objects.programs == {} and pair.device.objects.maps == {}
    assert pair.device.memory_used == 0
