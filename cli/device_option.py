"""``--device SOCKET`` with ``OFFLOAD_MIGRATE_DEVICE`` as its default, for every command
that talks to a daemon."""

from __future__ import annotations

import argparse
import os
from typing import Any

from service.errors import UsageError

ENV = "OFFLOAD_MIGRATE_DEVICE"


def add(parser: argparse.ArgumentParser, *, several: bool = False) -> None:
    """The option; ``several``: repeatable (status, device list)."""
    parser.add_argument("--device", metavar="SOCKET", action="append" if several else "store",
                        help=f"control socket of the device daemon (default: ${ENV})"
                             + ("; repeat for several devices" if several else ""))
    if several:
        parser.set_defaults(device_several=True)


def resolve(args: argparse.Namespace) -> None:
    """Fill ``args.device`` from the environment where the command line left it out; a
    command that needs a device and has neither gets a usage error."""
    if not hasattr(args, "device") or args.device:
        return
    value: Any = os.environ.get(ENV, "").strip()
    if not value:
        raise UsageError(f"no device: give --device SOCKET or set {ENV}=SOCKET.")
    args.device = [value] if getattr(args, "device_several", False) else value
