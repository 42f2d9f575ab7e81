"""Feature bits (virtio 1.2 sections 2.2, 5.1.3 and 6) and the rules between them.

Bits are numbers; a feature *set* is an int with bit ``n`` set for feature ``n``. The offload
bit is this project's own: :data:`Feature.VIRTIO_NET_F_BPF_OFFLOAD` (58; ``Feature`` is
:class:`offload.uapi.VirtioFeature`, named here as the virtio layer calls it), chosen in the
device-specific range "0 to 23, and 50 to 127" of 2.2 where neither virtio 1.2/1.3 nor Linux's
``include/uapi/linux/virtio_net.h`` assigns anything, and below 64 so that it fits the 64-bit
feature words QEMU, older Linux drivers and our snapshots (msgpack u64) use. docs/
virtio-offload.md gives the full reasoning.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

from ..caps.capabilities import Capabilities
from ..errors import ErrnoError
from ..uapi import ProgType
from ..uapi import VirtioFeature as Feature

# A feature that needs others (5.1.3.1 for the net bits; the offload class is a control class).
DEPENDS: dict[Feature, tuple[Feature, ...]] = {
    Feature.VIRTIO_NET_F_BPF_OFFLOAD: (Feature.VIRTIO_NET_F_CTRL_VQ, Feature.VIRTIO_F_VERSION_1),
}


def bit(feature: int) -> int:
    """The feature set holding only ``feature``."""
    return 1 << int(feature)


def feature_set(features: Iterable[int]) -> int:
    """The feature set holding ``features``."""
    out = 0
    for f in features:
        out |= bit(f)
    return out


def has(features: int, feature: int) -> bool:
    return bool(features >> int(feature) & 1)


def names(features: int) -> list[str]:
    """Spec names of the bits in ``features`` (unknown bits as ``bit N``), lowest first."""
    out = []
    n = 0
    while features >> n:
        if features >> n & 1:
            out.append(Feature(n).name if n in Feature._value2member_map_ else f"bit {n}")
        n += 1
    return out


def missing_dependencies(features: int) -> list[tuple[Feature, Feature]]:
    """(feature, the feature it needs) pairs that ``features`` leaves unsatisfied."""
    return [(f, need) for f, needs in DEPENDS.items() if has(features, f)
            for need in needs if not has(features, need)]


def negotiate(offered: int, wanted: int) -> int:
    """What a driver accepts: the intersection, minus features whose dependencies are absent.

    2.2.1: the driver never accepts a feature the device did not offer, nor one that needs a
    feature it did not accept; dropping a dependent feature can make another unsatisfied, so
    repeat until stable.
    """
    accepted = offered & wanted
    while broken := missing_dependencies(accepted):
        for feature, _ in broken:
            accepted &= ~bit(feature)
    return accepted


def require_offload(negotiated: int) -> None:
    """Refuse BPF offload unless the device and driver negotiated it (raises EOPNOTSUPP)."""
    for feature in (Feature.VIRTIO_NET_F_BPF_OFFLOAD, Feature.VIRTIO_NET_F_CTRL_VQ,
                    Feature.VIRTIO_F_VERSION_1):
        if not has(negotiated, feature):
            raise ErrnoError(errno.EOPNOTSUPP, f"the device cannot offload BPF: "
                             f"{feature.name} was not negotiated")


DEFAULT_DEVICE_FEATURES = feature_set((
    Feature.VIRTIO_F_VERSION_1, Feature.VIRTIO_F_INDIRECT_DESC, Feature.VIRTIO_F_EVENT_IDX,
    Feature.VIRTIO_NET_F_CTRL_VQ, Feature.VIRTIO_NET_F_MAC, Feature.VIRTIO_NET_F_BPF_OFFLOAD))


def device_offer(caps: Capabilities) -> int:
    """The feature set a device with ``caps`` offers.

    ``caps.features`` (0 means :data:`DEFAULT_DEVICE_FEATURES`) plus VIRTIO_F_VERSION_1, which
    every 1.x device offers (6.2); the offload bit only when the device runs XDP programs; and
    never a feature whose dependency is not offered (2.2.2).
    """
    offer = (caps.features or DEFAULT_DEVICE_FEATURES) | bit(Feature.VIRTIO_F_VERSION_1)
    if ProgType.XDP not in caps.prog_types:
        offer &= ~bit(Feature.VIRTIO_NET_F_BPF_OFFLOAD)
    return negotiate(offer, offer)
