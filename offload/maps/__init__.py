"""BPF maps: specs (what to create) and the live map types a device holds."""

from .spec import MapFlags, MapSpec, MapType, Pinning, UpdateFlags

__all__ = ["MapFlags", "MapSpec", "MapType", "Pinning", "UpdateFlags"]
