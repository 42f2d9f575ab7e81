"""``MapShape``: a map's type and sizes, read from its ``MapSpec``.

Every object that stands for one map (a live map on the device, a map in the host kernel and
its backend wrapper) mixes it in instead of repeating the properties.
"""

from __future__ import annotations

from ..uapi import MapType
from .spec import MapSpec
from .values import round8


class MapShape:
    """Type and sizes of the map described by ``self.spec``."""

    __slots__ = ()
    spec: MapSpec

    @property
    def type(self) -> MapType:
        return self.spec.type

    @property
    def key_size(self) -> int:
        return self.spec.key_size

    @property
    def value_size(self) -> int:
        return self.spec.value_size

    @property
    def max_entries(self) -> int:
        """Entries the spec asks for (a live map may hold more: LRU maps round per CPU)."""
        return self.spec.max_entries

    @property
    def percpu_stride(self) -> int:
        """Bytes per CPU in a per-CPU value array (value_size rounded up to 8)."""
        return round8(self.spec.value_size)
