"""The loader's error: an object file that cannot be turned into specs."""

from __future__ import annotations

from ..errors import OffloadError


class LoaderError(OffloadError):
    """An ELF object, its BTF or its relocations cannot be loaded.

    ``section`` and ``symbol`` name where the problem is, when known, so the message points
    at the part of the object to look at.
    """

    def __init__(self, message: str, *, section: str | None = None,
                 symbol: str | None = None) -> None:
        where = []
        if section is not None:
            where.append(f"section '{section}'")
        if symbol is not None:
            where.append(f"symbol '{symbol}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.section = section
        self.symbol = symbol
        self.detail = message
