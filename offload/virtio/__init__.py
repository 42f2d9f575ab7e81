"""Virtio transport for BPF offload (virtio 1.2; wire formats in docs/virtio-offload.md).

Guest memory both sides share, split virtqueues seen from the driver (:class:`DriverQueue`)
and from the device (:class:`DeviceQueue`), device status and feature negotiation
(:class:`Transport`), and the VIRTIO_NET_CTRL_BPF control messages. Everything is a pure state
machine over :class:`GuestMemory`: no threads, sockets or timers.
"""

from .allocator import GuestAllocator
from .bpf_maps import (
    MapCreateRequest,
    MapCreateResponse,
    MapDeleteRequest,
    MapDeleteResponse,
    MapFreeRequest,
    MapFreeResponse,
    MapFreezeRequest,
    MapFreezeResponse,
    MapGetNextKeyRequest,
    MapGetNextKeyResponse,
    MapLookupBatchRequest,
    MapLookupBatchResponse,
    MapLookupRequest,
    MapLookupResponse,
    MapUpdateBatchRequest,
    MapUpdateBatchResponse,
    MapUpdateRequest,
    MapUpdateResponse,
)
from .bpf_progs import (
    CapsRequest,
    CapsResponse,
    FuncInfoRec,
    MapRef,
    ProgLoadRequest,
    ProgLoadResponse,
    ProgTestRunRequest,
    ProgTestRunResponse,
    ProgUnloadRequest,
    ProgUnloadResponse,
    XdpAttachRequest,
    XdpAttachResponse,
    XdpDetachRequest,
    XdpDetachResponse,
)
from .chain import Chain, Segment
from .ctrl import (
    RESULT_HEADER_SIZE,
    BpfCommand,
    CtrlAck,
    CtrlClass,
    Request,
    Response,
    encode_status,
    parse_header,
)
from .device_queue import DeviceQueue
from .driver_queue import DriverQueue, QueueFullError, UsedBuffer
from .errors import VirtioError
from .features import Feature, bit, device_offer, feature_set, has, negotiate, require_offload
from .memory import GuestMemory, GuestMemoryError
from .messages import REQUESTS, RESPONSES, decode_request, decode_response, response_type
from .netdev import CONTROLQ, RECEIVEQ, TRANSMITQ, NetConfig, NetHdr
from .ring import DescFlags, Descriptor, VirtqueueError, VringLayout, vring_need_event
from .transport import (
    DeviceStatus,
    FeatureNegotiationError,
    StatusError,
    Transport,
    driver_negotiate,
    setup_queue,
)
from .wire import CtrlDecodeError, CtrlEncodeError

__all__ = [
    "GuestAllocator", "GuestMemory", "GuestMemoryError", "VirtioError",
    "Chain", "DeviceQueue", "Segment", "DriverQueue", "QueueFullError", "UsedBuffer",
    "DescFlags", "Descriptor", "VirtqueueError", "VringLayout", "vring_need_event",
    "DeviceStatus", "FeatureNegotiationError", "StatusError", "Transport", "driver_negotiate",
    "setup_queue", "Feature", "bit", "device_offer", "feature_set", "has", "negotiate",
    "require_offload", "CONTROLQ", "RECEIVEQ", "TRANSMITQ", "NetConfig", "NetHdr",
    "BpfCommand", "CtrlAck", "CtrlClass", "Request", "Response", "RESULT_HEADER_SIZE",
    "encode_status", "parse_header", "CtrlDecodeError", "CtrlEncodeError",
    "REQUESTS", "RESPONSES", "decode_request", "decode_response", "response_type",
    "CapsRequest", "CapsResponse", "FuncInfoRec", "MapRef", "ProgLoadRequest", "ProgLoadResponse",
    "ProgTestRunRequest", "ProgTestRunResponse",
    "ProgUnloadRequest", "ProgUnloadResponse", "XdpAttachRequest", "XdpAttachResponse",
    "XdpDetachRequest", "XdpDetachResponse",
    "MapCreateRequest", "MapCreateResponse", "MapDeleteRequest", "MapDeleteResponse",
    "MapFreeRequest", "MapFreeResponse", "MapFreezeRequest", "MapFreezeResponse",
    "MapGetNextKeyRequest", "MapGetNextKeyResponse",
    "MapLookupBatchRequest", "MapLookupBatchResponse", "MapLookupRequest", "MapLookupResponse",
    "MapUpdateBatchRequest", "MapUpdateBatchResponse", "MapUpdateRequest", "MapUpdateResponse",
]
