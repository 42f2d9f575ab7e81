"""BPF maps: specs (what to create) and the live map types a device holds."""

from .array import ArrayMap, PercpuArrayMap
from .base import ENOTSUPP, BatchError, LookupBatch, Map, MapError
from .cpumap import CpuMap, CpumapTarget
from .create import SUPPORTED_MAP_TYPES, check_spec, create_map
from .devmap import DevMap, DevMapHash, DevmapTarget
from .events import Event, EventBuffer
from .hash import HashMap, PercpuHashMap
from .lpm import LpmTrieMap
from .lru import LruHashMap, LruPercpuHashMap
from .map_in_map import ArrayOfMaps, HashOfMaps
from .perf_event_array import PerfEventArrayMap
from .prog_array import ProgArrayMap
from .resolver import NO_OBJECTS, MapHandle, NoObjects, ProgramHandle, Resolver
from .ringbuf import RingBufMap
from .spec import MapSpec, Pinning
from .values import join_percpu, round8, split_percpu
from .xskmap import XskMap

__all__ = [
    "ENOTSUPP", "NO_OBJECTS", "SUPPORTED_MAP_TYPES",
    "ArrayMap", "ArrayOfMaps", "BatchError", "CpuMap", "CpumapTarget", "DevMap", "DevMapHash",
    "DevmapTarget", "Event", "EventBuffer", "HashMap", "HashOfMaps", "LookupBatch",
    "LpmTrieMap", "LruHashMap", "LruPercpuHashMap", "Map", "MapError", "MapHandle",
    "MapSpec", "NoObjects", "Pinning", "PercpuArrayMap", "PercpuHashMap",
    "PerfEventArrayMap", "ProgArrayMap", "ProgramHandle", "Resolver", "RingBufMap",
    "XskMap", "check_spec", "create_map", "join_percpu", "round8",
    "split_percpu",
]
