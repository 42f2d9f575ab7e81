"""Errors the guest driver raises: errno-named, carrying the device's message."""

from __future__ import annotations

from typing import Any

from ..errors import ErrnoError


class DriverError(ErrnoError):
    """A bpf()-style failure: ``EACCES: <verifier log>``, ``ENOENT: key not found``, ...

    ``response`` is the device's full response when there was one.
    """

    def __init__(self, code: int, message: str, *, response: Any = None) -> None:
        super().__init__(code, message)
        self.response = response


class ObjectLoadError(DriverError):
    """Programs chosen from an object that cannot be loaded, as one refusal (EINVAL).

    ``refused`` holds the loader's refusals (:class:`~offload.loader.ProgramRefusal`) by
    program name; nothing was created on the device.
    """

    def __init__(self, code: int, message: str, *, refused: dict[str, Any]) -> None:
        super().__init__(code, message)
        self.refused = refused
