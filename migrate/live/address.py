"""Addresses of migration endpoints: ``tcp:HOST:PORT`` and ``unix:PATH``."""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass

from .errors import ConnectionLost, MigrationError


class AddressError(MigrationError):
    """An address that is neither ``tcp:HOST:PORT`` nor ``unix:PATH``."""


@dataclass(frozen=True, slots=True)
class Address:
    family: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.family == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp:{host}:{self.port}"


def parse_address(text: str) -> Address:
    kind, _, rest = text.partition(":")
    if kind == "unix" and rest:
        return Address("unix", path=rest)
    if kind == "tcp" and rest:
        host, sep, port = rest.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if sep and host and port.isdigit() and int(port) < 65536:
            return Address("tcp", host=host, port=int(port))
    raise AddressError(f"{text!r} is not a migration address: use tcp:HOST:PORT (for example "
                       f"tcp:127.0.0.1:7400) or unix:PATH.")


def connect(address: str, timeout: float = 10.0) -> socket.socket:
    """A stream socket connected to ``address``."""
    where = parse_address(address)
    try:
        if where.family == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(where.path)
        else:
            sock = socket.create_connection((where.host, where.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {where}: {exc.strerror or exc}.") from None
    return sock


def listen(address: str, backlog: int = 4) -> socket.socket:
    """A listening socket bound to ``address`` (port 0: any free port, see getsockname())."""
    where = parse_address(address)
    try:
        if where.family == "unix":
            try:
                if stat.S_ISSOCK(os.stat(where.path).st_mode):
                    os.unlink(where.path)  # a stale socket of an earlier daemon
            except FileNotFoundError:
                pass
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            info = socket.getaddrinfo(where.host, where.port, type=socket.SOCK_STREAM)[0]
            sock = socket.socket(info[0], socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where.path if where.family == "unix" else (where.host, where.port))
        sock.listen(backlog)
    except OSError as exc:
        raise ConnectionLost(f"cannot listen on {where}: {exc.strerror or exc}.") from None
    return sock
