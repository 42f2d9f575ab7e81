"""A daemon's device on real ports: QEMU guests over vhost-user, wires as UDP tunnels or taps.

``device serve --vhost-user SOCKET`` serves one guest-facing port to a QEMU front-end
(docs/vhost-user.md), ``--port NAME:vhost-user=SOCKET[,ifindex=N][,wire=...]`` one more
with a name, an ifindex and optionally its own wire; each port is an interface the device's
program can redirect to (offload/device/interfaces.py). ``--wire udp:LOCAL=REMOTE`` joins the
device's wire to another device's (or anything speaking one Ethernet frame per datagram, as
QEMU's ``-netdev dgram``), ``--wire tap:NAME`` to a tap interface on the host. All take the
device service's lock around the device, as its traffic loop and migrations do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from offload.device.interfaces import MAX_IFINDEX, MIN_IFINDEX
from offload.device.tap_wire import TapWire, check_name
from offload.device.udp_wire import UdpWire, parse_endpoint
from offload.vhost_user.port import VhostUserPort

from .device_service import DeviceService
from .errors import UsageError

PORT_FORM = "NAME:vhost-user=SOCKET[,ifindex=N][,wire=udp:LOCAL=REMOTE[,learn]|tap:NAME]"
Wire = UdpWire | TapWire


def parse_tap(text: str, option: str = "--wire") -> str:
    """``tap:NAME``: the tap interface's name."""
    name = text.removeprefix("tap:")
    try:
        return check_name(name)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}.") from None


def parse_wire(text: str, option: str = "--wire") -> tuple[tuple[str, int], tuple[str, int],
                                                           bool]:
    """``udp:LOCAL_HOST:PORT=REMOTE_HOST:PORT[,learn]`` as two socket addresses and whether
    the far end follows the peer last heard from (offload/device/udp_wire.py)."""
    body, comma, learn = text.partition(",")
    kind, _, rest = body.partition(":")
    local, sep, remote = rest.partition("=")
    if kind != "udp" or not sep or (comma and learn != "learn"):
        raise UsageError(f"{option} {text!r}: expected udp:LOCAL_HOST:PORT=REMOTE_HOST:PORT "
                         f"with an optional ,learn (udp:127.0.0.1:5001=127.0.0.1:5002).")
    try:
        return parse_endpoint(local), parse_endpoint(remote), bool(comma)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}.") from None


@dataclass(frozen=True, slots=True)
class PortSpec:
    """One guest-facing port as the command line gave it; ``ifindex`` None takes the next
    free one."""

    name: str
    socket: str
    ifindex: int | None = None
    wire: str | None = None
    option: str = "--vhost-user"  # where it came from, for messages


def parse_port(text: str) -> PortSpec:
    """``--port NAME:vhost-user=SOCKET[,ifindex=N][,wire=SPEC]``; ``wire=`` comes last, as
    its spec may hold a comma (``,learn``)."""
    problem = f"--port {text!r}: expected {PORT_FORM}"
    name, colon, rest = text.partition(":")
    head, _, wire = rest.partition(",wire=")
    fields = head.split(",")
    if not colon or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise UsageError(f"{problem} (a name of letters, digits, - and _).")
    kind, eq, socket = fields[0].partition("=")
    if kind != "vhost-user" or not eq or not socket:
        raise UsageError(f"{problem}.")
    ifindex: int | None = None
    for extra in fields[1:]:
        key, _, value = extra.partition("=")
        if key != "ifindex" or not value.isdigit() or ifindex is not None:
            raise UsageError(f"{problem}; {extra!r} is not ifindex=N.")
        ifindex = int(value)
        if not MIN_IFINDEX <= ifindex <= MAX_IFINDEX:
            raise UsageError(f"--port {text!r}: ifindex {ifindex} is outside "
                             f"{MIN_IFINDEX}..{MAX_IFINDEX}, the interfaces a devmap names.")
    if wire.startswith("tap:"):
        parse_tap(wire, f"--port {name}: wire")
    elif wire:
        parse_wire(wire, f"--port {name}: wire")
    elif ",wire=" in rest:
        raise UsageError(f"{problem}; wire= is empty.")
    return PortSpec(name, socket, ifindex, wire or None, f"--port {name}")


def plan_ports(vhost_user: list[str], ports: list[str]) -> list[PortSpec]:
    """Every port with its ifindex: ``--vhost-user`` sockets are 1, 2, ... in order, then
    ``--port``s, whose ifindex when not given is the lowest free one. Names, sockets and
    ifindexes must be distinct."""
    specs = [PortSpec("", path, n) for n, path in enumerate(vhost_user, start=MIN_IFINDEX)]
    specs += [parse_port(t) for t in ports]
    taken = {s.ifindex for s in specs if s.ifindex is not None}
    planned: list[PortSpec] = []
    for spec in specs:
        ifindex = spec.ifindex
        if ifindex is None:
            ifindex = next((i for i in range(MIN_IFINDEX, MAX_IFINDEX + 1) if i not in taken),
                           None)
            if ifindex is None:
                raise UsageError(f"more than {MAX_IFINDEX} ports.")
            taken.add(ifindex)
        planned.append(PortSpec(spec.name or f"port{ifindex}", spec.socket, ifindex, spec.wire,
                                spec.option))
    for what, values in (("ifindex", [str(p.ifindex) for p in planned]),
                         ("name", [p.name for p in planned]),
                         ("socket", [str(Path(p.socket).absolute()) for p in planned])):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise UsageError(f"two ports have the same {what}: {', '.join(repeated)}.")
    return planned


@dataclass
class Ports:
    """The ports a daemon opened for its device; closed together."""

    vhost_user: list[VhostUserPort] = field(default_factory=list)
    wire: Wire | None = None  # the device's wire
    port_wires: list[Wire] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, service: DeviceService, *, vhost_user: str | list[str] | None,
             wire: str | None, ports: list[str] | None = None) -> Ports:
        sockets = [vhost_user] if isinstance(vhost_user, str) else list(vhost_user or [])
        planned = plan_ports(sockets, list(ports or []))
        opened = cls()
        try:
            if wire is not None:
                opened.wire = opened._open_wire(service, wire, "--wire", None)
                opened.notes.append(f"wire {opened._describe(opened.wire)}")
            for spec in planned:
                try:
                    port = VhostUserPort(service.device, Path(spec.socket), service.lock,
                                         ifindex=spec.ifindex, name=spec.name)
                except OSError as exc:
                    raise UsageError(f"{spec.option}: cannot listen on {spec.socket}: "
                                     f"{exc.strerror or exc}.") from None
                opened.vhost_user.append(port.start())
                note = f"port {spec.name} (ifindex {port.ifindex}) over vhost-user on " \
                       f"{spec.socket}"
                if spec.wire is not None:
                    own = opened._open_wire(service, spec.wire, f"--port {spec.name}: wire",
                                            port)
                    opened.port_wires.append(own)
                    port.interface.wire_label = opened._describe(own)
                    note += f", its own wire {opened._describe(own)}"
                opened.notes.append(note)
        except BaseException:
            opened.close()
            raise
        return opened

    @staticmethod
    def _open_wire(service: DeviceService, text: str, option: str,
                   port: VhostUserPort | None) -> Wire:
        interface = None if port is None else port.interface
        if text.startswith("tap:"):
            name = parse_tap(text, option)
            try:
                return TapWire(service.device, name, service.lock, interface).start()
            except OSError as exc:
                raise UsageError(f"{option}: cannot open tap {name}: {exc.strerror or exc} "
                                 f"(a tap needs /dev/net/tun and CAP_NET_ADMIN).") from None
        local, remote, learn = parse_wire(text, option)
        try:
            return UdpWire(service.device, local, remote, service.lock, learn,
                           port=interface).start()
        except OSError as exc:
            raise UsageError(f"{option}: cannot bind {local[0]}:{local[1]}: "
                             f"{exc.strerror or exc}.") from None

    @staticmethod
    def _describe(wire: Wire) -> str:
        if isinstance(wire, TapWire):
            return f"tap {wire.name}"
        local, remote = wire.local, wire.remote
        return f"udp {local[0]}:{local[1]} -> {remote[0]}:{remote[1]}" + (
            " (learning)" if wire.learn else "")

    def close(self) -> None:
        for wire in self.port_wires:
            wire.close()
        self.port_wires = []
        for port in self.vhost_user:
            port.close()
        self.vhost_user = []
        if self.wire is not None:
            self.wire.close()
            self.wire = None
