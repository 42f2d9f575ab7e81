"""Two real sides over real sockets, each on its own thread, with traffic on the source."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from fixtures.snapshots.generate import TRAFFIC, device_for
from offload.device import DevicePair
from offload.maps.values import split_percpu


@dataclass
class Traffic:
    """Frames injected into the source while it has a program attached and is not paused,
    on its own thread, under the migration's lock."""

    pair: DevicePair
    lock: threading.Lock
    injected: int = 0
    passed_unprocessed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            with self.lock:
                device = self.pair.device
                if device.paused or device.attached is None:
                    self.passed_unprocessed += 1
                else:
                    device.receive(TRAFFIC[n % len(TRAFFIC)], rx_queue_index=n % 2)
                    self.injected += 1
                    n += 1
            time.sleep(0.0002)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def wait_for(self, frames: int) -> None:
        deadline = time.monotonic() + 10
        while self.injected < frames and time.monotonic() < deadline:
            time.sleep(0.001)


class Side(threading.Thread):
    """Runs ``fn(sock)`` on a thread and keeps its result or exception."""

    def __init__(self, fn: Callable[[socket.socket], object], sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.fn, self.sock = fn, sock
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn(self.sock)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def outcome(self) -> object:
        self.join(30)
        assert not self.is_alive(), "the side did not finish"
        return self.result


def proto_packets(pair: DevicePair, handle: int, ncpus: int) -> int:
    """Sum over keys and CPUs of xdp_counters' {packets, bytes} records."""
    total = 0
    for _, value in pair.driver.map_items(handle):
        for part in split_percpu(value, 16, ncpus):
            total += struct.unpack_from("<Q", part)[0]
    return total


def handle_of(pair: DevicePair, name: str) -> int:
    return next(h for h, m in pair.device.objects.maps.items() if m.spec.name == name)


def map_contents(pair: DevicePair) -> dict[str, list]:
    return {m.spec.name: sorted(pair.driver.map_items(h))
            for h, m in pair.device.objects.maps.items() if not m.released}


@pytest.fixture
def source_pair():
    return device_for
