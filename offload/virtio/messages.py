"""Which request and response class belongs to each BPF command, and decoding by command.

The device decodes whatever the driver placed in the readable part of a chain with
:func:`decode_request`; the driver decodes the device's reply with :func:`decode_response`,
knowing which command it sent.
"""

from __future__ import annotations

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
from .ctrl import BpfCommand, CtrlClass, Request, Response, parse_header
from .wire import CtrlDecodeError

REQUESTS: dict[BpfCommand, type[Request]] = {cls.COMMAND: cls for cls in (
    CapsRequest, MapCreateRequest, MapFreeRequest, MapLookupRequest, MapUpdateRequest,
    MapDeleteRequest, MapGetNextKeyRequest, MapLookupBatchRequest, MapUpdateBatchRequest,
    ProgLoadRequest, ProgUnloadRequest, XdpAttachRequest, XdpDetachRequest, MapFreezeRequest,
    ProgTestRunRequest)}

RESPONSES: dict[BpfCommand, type[Response]] = {cls.COMMAND: cls for cls in (
    CapsResponse, MapCreateResponse, MapFreeResponse, MapLookupResponse, MapUpdateResponse,
    MapDeleteResponse, MapGetNextKeyResponse, MapLookupBatchResponse, MapUpdateBatchResponse,
    ProgLoadResponse, ProgUnloadResponse, XdpAttachResponse, XdpDetachResponse,
    MapFreezeResponse, ProgTestRunResponse)}


def decode_request(data: bytes | bytearray | memoryview) -> Request:
    """Decode a driver-readable control message of the BPF class."""
    klass, command = parse_header(bytes(data[:2]))
    if klass != CtrlClass.BPF:
        raise CtrlDecodeError("control command", "class", f"class {klass} is not "
                              f"VIRTIO_NET_CTRL_BPF ({int(CtrlClass.BPF)})")
    if command not in BpfCommand._value2member_map_:
        raise CtrlDecodeError("control command", "command", f"{command} is not a "
                              "VIRTIO_NET_CTRL_BPF command")
    return REQUESTS[BpfCommand(command)].decode(data)


def decode_response(command: BpfCommand, data: bytes | bytearray | memoryview) -> Response:
    """Decode the device-writable bytes the device returned for ``command``."""
    return RESPONSES[command].decode(data)


def response_type(request: Request) -> type[Response]:
    return RESPONSES[request.COMMAND]
