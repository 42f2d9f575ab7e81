"""Two real QEMU guests, each behind a device daemon (``device serve --vhost-user ...
--wire udp:...``), the devices joined by a UDP tunnel; the offload goes through the daemons'
control sockets. Guest B's device runs an offloaded port filter: pings cross, UDP to an
open port reaches B (which answers port unreachable), UDP to a blocked port never reaches B,
and B's map counters equal what A sent."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest

from service.client import DeviceClient
from service.guest import Guest, guest_image
from tests.service.conftest import DaemonProcess

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xdp"
IMAGE = guest_image()
pytestmark = pytest.mark.skipif(isinstance(IMAGE, str), reason=str(IMAGE))
OPEN_PORT, BLOCKED_PORT = 5000, 6000
ICMP, UDP = 1, 17


def snmp(guest: Guest) -> dict[str, dict[str, int]]:
    """The guest's /proc/net/snmp counters by protocol and name."""
    lines = [line.split() for line in guest.run("cat /proc/net/snmp").splitlines()
             if ":" in line]
    out: dict[str, dict[str, int]] = {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names[0] == values[0] and values[1].lstrip("-").isdigit():
            out[names[0].rstrip(":")] = dict(zip(names[1:], map(int, values[1:])))
    return out


def free_udp_port() -> int:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class Side:
    """A device daemon (``device serve``) with its guest over vhost-user and its wire a UDP
    tunnel, and a control connection to it."""

    def __init__(self, name: str, workdir: Path, local: int, remote: int) -> None:
        self.vhost = workdir / f"{name}.vhost"
        self.daemon = DaemonProcess(
            workdir / f"{name}.sock", name, "full", "--state-dir", str(workdir / f"{name}.st"),
            "--vhost-user", str(self.vhost), "--wire",
            f"udp:127.0.0.1:{local}=127.0.0.1:{remote}")
        self.client = DeviceClient(str(self.daemon.path))

    def close(self) -> None:
        self.client.close()
        self.daemon.stop()


@pytest.fixture
def network(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))
    port_a, port_b = free_udp_port(), free_udp_port()
    a = Side("a", tmp_path, port_a, port_b)
    b = Side("b", tmp_path, port_b, port_a)
    b.client.call("load", object=(FIXTURES / "xdp_port_filter.o").read_bytes(),
                  name="xdp_port_filter", program="xdp_port_filter", attach=True)
    b.client.call("map.update", map="blocked_ports", key=struct.pack("<H", BLOCKED_PORT),
                  value=bytes(8))
    guests = [Guest("a", IMAGE, str(a.vhost), mac="52:54:00:00:00:0a", ip="10.0.0.1/24",
                    workdir=tmp_path),
              Guest("b", IMAGE, str(b.vhost), mac="52:54:00:00:00:0b", ip="10.0.0.2/24",
                    workdir=tmp_path)]
    try:
        boots = [threading.Thread(target=g.boot) for g in guests]
        for t in boots:
            t.start()
        for t in boots:
            t.join()
        for g in guests:  # a boot that failed raises here with the console's tail
            g.wait_for("GUEST-READY", 1)
        yield a, b, guests[0], guests[1]
    finally:
        for g in guests:
            g.close()
        a.close()
        b.close()


def udp_probe(port: int) -> str:
    """One UDP datagram to B's ``port`` (traceroute's probe goes to its base port plus one),
    waiting a second for B's port-unreachable answer."""
    return f"traceroute -n -q 1 -w 1 -m 1 -p {port - 1} 10.0.0.2 2>&1; true"


def entry(side: Side, map_name: str, key: bytes) -> int:
    items = side.client.call("map.items", map=map_name)["items"]
    return next(struct.unpack("<Q", v)[0] for k, v in items if k == key)


def counter(side: Side, proto: int) -> int:
    return entry(side, "frames_by_proto", struct.pack("<I", proto))


def test_guests_talk_through_the_offloaded_filter(network):
    a, b, guest_a, guest_b = network
    a_before, b_before = snmp(guest_a), snmp(guest_b)
    out = guest_a.run("ping -c 3 -W 3 10.0.0.2")
    assert "3 packets transmitted, 3 packets received" in out

    assert "1  10.0.0.2" in guest_a.run(udp_probe(OPEN_PORT))  # B answered
    b_open = snmp(guest_b)
    assert b_open["Udp"]["NoPorts"] > b_before["Udp"]["NoPorts"]  # the datagram reached B
    assert "1  *" in guest_a.run(udp_probe(BLOCKED_PORT))  # dropped before B saw it
    a_after, b_after = snmp(guest_a), snmp(guest_b)

    # B never saw a datagram to the blocked port: nothing new since the open-port attempt
    assert b_after["Udp"]["NoPorts"] == b_open["Udp"]["NoPorts"]
    assert b_after["Udp"]["InDatagrams"] == b_before["Udp"]["InDatagrams"]
    sent_udp = a_after["Udp"]["OutDatagrams"] - a_before["Udp"]["OutDatagrams"]
    to_blocked = sent_udp - (b_open["Udp"]["NoPorts"] - b_before["Udp"]["NoPorts"])
    assert sent_udp == 2 and to_blocked == 1
    assert entry(b, "blocked_ports", struct.pack("<H", BLOCKED_PORT)) == to_blocked
    assert counter(b, UDP) == sent_udp
    assert counter(b, ICMP) == a_after["Icmp"]["OutMsgs"] - a_before["Icmp"]["OutMsgs"]
    status = b.client.call("status")
    (program,) = status["programs"]
    assert program["counters"]["drop"] == to_blocked
    assert status["ports"]["rx_to_guest"] >= 3 and status["ports"]["tx_from_guest"] >= 3
