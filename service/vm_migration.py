"""A QEMU guest's live migration together with its device's offloaded state.

QEMU moves the guest (RAM, devices; its vhost-user NIC hands its rings over through the
back-ends), the device daemons move the offloaded programs and maps (service/migration.py).
The two are tied at QEMU's ``pause-before-switchover`` point:

1. The source device's migration starts *held* (``migrate.start hold``): the destination
   device plans and restores the full copy - refusing if it cannot take the state, lowering
   programs where it can - before QEMU moves any RAM.
2. QEMU's ``migrate`` runs; meanwhile the device migration keeps sending rounds of the map
   entries the guest's traffic changes.
3. At ``pre-switchover`` the source VM is stopped; the device migration's final round runs
   (``migrate.cut``: pause, last delta, counters, attach on the destination), then
   ``migrate-continue`` lets QEMU finish. The offload's share of the downtime is that round.

Any failure before the device's commit - QEMU's, either daemon's, a timeout, an interrupt -
rolls both back: ``migrate_cancel`` (the source VM runs on), ``migrate.cancel`` (the source
device runs on, the destination device removes what it restored). After the commit the source
device keeps its state, paused, until QEMU has completed (then ``migrate.release`` lets it
go). Should QEMU's switchover fail in that window - a destination QEMU that died after the
device's final round - QEMU resumes the source VM, so its device resumes too
(``migrate.cancel``: the state as it was at the cut, the original program rather than a
lowered copy) and ``migrate.undo`` removes the committed copy from the destination device.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from .client import DeviceClient
from .errors import ServiceError
from .migration import FINISHED
from .qmp import QmpClient, QmpError

POLL = 0.005  # seconds between looks at the device migration around the cut
WATCH = 0.05  # seconds between looks at QEMU's migration while RAM moves
CAPABILITIES = ("pause-before-switchover", "events")
#: query-migrate states of a migration still under way (QEMU's qapi/migration.json)
QEMU_MIGRATING = frozenset({"setup", "active", "pre-switchover", "device", "wait-unplug",
                            "cancelling", "postcopy-active", "postcopy-paused",
                            "postcopy-recover"})


class VmMigrationRefused(ServiceError):
    """The migration did not start: the VMs or devices are not in a state to migrate, or the
    destination device cannot take the offloaded state. Nothing moved."""

    errno = errno.EOPNOTSUPP


class VmMigrationFailed(ServiceError):
    """The migration failed and was rolled back: the source VM and device run on; ``rolled``
    says what the rollback did."""

    errno = errno.ECANCELED

    def __init__(self, message: str, rolled: list[str]) -> None:
        super().__init__(message + (" Rolled back: " + "; ".join(rolled) + "." if rolled
                                    else ""))
        self.rolled = rolled


@dataclass
class VmMigrationReport:
    """Figures of one VM migration; times in seconds."""

    qemu_total: float
    qemu_downtime: float
    qemu_setup: float
    ram_transferred: int
    offload_downtime: float
    offload_total: float
    plan: str
    device: dict[str, Any] = field(default_factory=dict)

    @property
    def proof(self) -> dict[str, Any] | None:
        """The device migration's proofs (``vm-migrate --prove``), else None."""
        proof = self.device.get("proof")
        return proof if isinstance(proof, dict) else None

    @property
    def offload_share(self) -> float:
        """The device's final round as a share of the guest's downtime."""
        return self.offload_downtime / self.qemu_downtime if self.qemu_downtime else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"qemu_total": self.qemu_total, "qemu_downtime": self.qemu_downtime,
                "qemu_setup": self.qemu_setup, "ram_transferred": self.ram_transferred,
                "offload_downtime": self.offload_downtime, "offload_total": self.offload_total,
                "offload_share": round(self.offload_share, 4), "plan": self.plan,
                "proof": self.proof, "device": self.device}


class VmMigration:
    """One run of ``vm-migrate``; ``progress`` hears each step's name. ``prove``: the
    destination device proves the offloaded state with up to ``samples`` sampled frames (0:
    all the source's ring holds) on the full copy, before QEMU moves RAM, and on the final
    state inside the switchover (docs/restore-proof.md)."""

    def __init__(self, qmp_from: str, qmp_to: str | None, device_from: str, device_to: str,
                 uri: str | None, *, timeout: float = 600.0,
                 progress: Callable[[str], None] | None = None, prove: bool = False,
                 samples: int = 0) -> None:
        self.qmp_from, self.qmp_to = qmp_from, qmp_to
        self.device_from, self.device_to = device_from, os.path.abspath(device_to)
        self.uri = uri
        self.timeout = timeout
        self.progress = progress or (lambda step: None)
        self.prove = {"prove": True, "samples": samples} if prove else {}
        self.deadline = 0.0
        self.src_qemu: QmpClient | None = None
        self.dst_qemu: QmpClient | None = None
        self.src_dev: DeviceClient | None = None
        self.dst_dev: DeviceClient | None = None
        self.device_started = False
        self.qemu_started = False
        self.committed = False
        self.switched = False  # QEMU completed: the guest runs on the destination
        self.problems: list[str] = []  # rollback steps that did not succeed

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> VmMigrationReport:
        """The migration (``qmp_to`` and ``uri`` are needed here; ``recover`` needs neither)."""
        if self.qmp_to is None or self.uri is None:
            raise VmMigrationRefused("a VM migration needs the destination QEMU's QMP socket "
                                     "and the URI QEMU migrates to.")
        self.deadline = time.monotonic() + self.timeout
        try:
            self._connect(self.qmp_to)
            return self._migrate()
        except BaseException as exc:
            if not (self.device_started or self.qemu_started):
                raise
            with _uninterrupted():
                rolled = self._roll_back()
            if isinstance(exc, KeyboardInterrupt):
                raise VmMigrationFailed("the VM migration was interrupted.", rolled) from None
            raise VmMigrationFailed(f"the VM migration failed: {exc}", rolled) from None
        finally:
            self._close()

    def recover(self) -> list[str]:
        """After a ``vm-migrate`` that died midway: what the two devices and the source QEMU
        show decides the way out, as the run's own rollback would have taken it - QEMU
        completed: the source device lets its state go; otherwise QEMU's migration is
        cancelled, the source device resumes (or runs on) with its state and the destination
        device removes its copy. What was done, in words ([] when nothing was migrating)."""
        self.src_dev = DeviceClient(self.device_from)
        try:
            picture = self.src_dev.call("status")["migration"] or {}
            if picture.get("role") != "source" or picture.get("state") in FINISHED:
                return []
            self.device_started = True
            self.committed = picture.get("phase") == "committed"
            try:
                self.src_qemu = QmpClient(self.qmp_from)
                state = self.src_qemu.execute("query-migrate").get("status")
            except (QmpError, OSError) as exc:
                raise VmMigrationRefused(
                    f"the source QEMU at {self.qmp_from} does not answer ({exc}): whether "
                    "the guest moved decides the way out, so nothing was changed.") from None
            self.switched = state == "completed"
            self.qemu_started = state in QEMU_MIGRATING
            with _uninterrupted():
                return self._roll_back()
        finally:
            self._close()

    def _close(self) -> None:
        for conn in (self.src_qemu, self.dst_qemu, self.src_dev, self.dst_dev):
            if conn is not None:
                conn.close()

    def _connect(self, qmp_to: str) -> None:
        self.src_qemu = QmpClient(self.qmp_from)
        source = self.src_qemu.execute("query-status")
        if source.get("status") != "running":
            raise VmMigrationRefused(f"the source VM at {self.qmp_from} is "
                                     f"{source.get('status')}, not running.")
        self.dst_qemu = QmpClient(qmp_to)
        target = self.dst_qemu.execute("query-status")
        if target.get("status") != "inmigrate":
            raise VmMigrationRefused(f"the destination QEMU at {qmp_to} is "
                                     f"{target.get('status')}, not waiting for a migration "
                                     "(start it with -incoming).")
        self.src_dev = DeviceClient(self.device_from)
        self.dst_dev = DeviceClient(self.device_to)
        self.dst_dev.call("ping")
        for qemu in (self.src_qemu, self.dst_qemu):
            qemu.execute("migrate-set-capabilities", capabilities=[
                {"capability": name, "state": True} for name in CAPABILITIES])

    def _migrate(self) -> VmMigrationReport:
        assert self.src_qemu is not None and self.src_dev is not None
        self.progress("plan and full copy of the offloaded state")
        self.src_dev.call("migrate.start", to=self.device_to, hold=True, **self.prove)
        self.device_started = True
        picture = self._device_until(lambda p: p.get("phase") == "precopy", WATCH)
        if picture.get("state") in FINISHED:
            self.device_started = False  # it ended on its own: nothing to roll back
            raise VmMigrationRefused(
                f"the destination device cannot take the offloaded state: "
                f"{picture.get('reason') or picture.get('state')}; no RAM moved.")
        plan = str(picture.get("plan", "?"))

        self.progress("QEMU copies RAM, the devices copy map changes")
        self.src_qemu.execute("migrate", uri=self.uri)
        self.qemu_started = True
        self._qemu_until("pre-switchover")

        self.progress("switchover: the device's final round")
        self.src_dev.call("migrate.cut")
        picture = self._device_until(lambda p: p.get("phase") == "committed", POLL)
        if picture.get("phase") != "committed":
            raise VmMigrationFailedBeforeCommit(
                f"the device migration's final round {picture.get('state')}: "
                f"{picture.get('reason', '')}")
        self.committed = True
        self._destination_done()

        self.progress("QEMU completes")
        self.src_qemu.execute("migrate-continue", state="pre-switchover")
        info = self._qemu_until("completed")
        self.switched = True
        end = time.monotonic() + 2
        while not info.get("total-time") and time.monotonic() < end:
            # QEMU shows "completed" a moment before it has computed the times
            time.sleep(POLL)
            info = self.src_qemu.execute("query-migrate")
        self.progress("the source device lets its state go")
        self.src_dev.call("migrate.release")
        picture = self._device_until(lambda p: False, POLL)
        device = picture.get("report") or {}
        return VmMigrationReport(
            qemu_total=info.get("total-time", 0) / 1000, qemu_downtime=info.get("downtime", 0)
            / 1000, qemu_setup=info.get("setup-time", 0) / 1000,
            ram_transferred=int(info.get("ram", {}).get("transferred", 0)),
            offload_downtime=float(device.get("downtime") or 0.0),
            offload_total=float(device.get("total_time") or 0.0), plan=plan, device=device)

    # -- waiting ---------------------------------------------------------------------------
    def _destination_done(self) -> None:
        """The destination device runs the state and has let go of its lock (the stream
        closed), so its ``status`` shows the committed program - before QEMU continues."""
        assert self.dst_dev is not None
        picture = self._device_until(lambda p: False, POLL, self.dst_dev)
        if picture.get("state") != "completed":
            raise VmMigrationFailedAfterCommit(f"the destination device's migration "
                                               f"{picture.get('state')}: "
                                               f"{picture.get('reason', '')}")

    def _remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise VmMigrationTimeout(f"{what} did not happen within {self.timeout:.0f} s.")
        return left

    def _device_until(self, done: Callable[[dict[str, Any]], bool], every: float,
                      device: DeviceClient | None = None) -> dict[str, Any]:
        """A device's migration picture (the source's unless ``device``) once ``done`` (or
        it finished)."""
        device = device or self.src_dev
        assert device is not None
        while True:
            self._remaining("the device migration's next step")
            picture = device.call("status")["migration"] or {}
            if done(picture) or picture.get("state") in FINISHED:
                return picture
            time.sleep(every)

    def _qemu_until(self, status: str) -> dict[str, Any]:
        """QEMU's ``query-migrate`` once its status is ``status``; a failure, a cancel or
        a failed device migration before it raises."""
        assert self.src_qemu is not None and self.src_dev is not None
        checked = 0.0
        while True:
            self._remaining(f"QEMU's migration reaching {status}")
            info = self.src_qemu.execute("query-migrate")
            state = info.get("status")
            if state == status:
                return info
            if state in ("failed", "cancelled", "cancelling"):
                raise VmMigrationFailedBeforeCommit(
                    f"QEMU's migration ended {state}: "
                    f"{info.get('error-desc', 'no reason given')}")
            now = time.monotonic()
            if not self.committed and now - checked > 0.2:  # the device side still holds?
                checked = now
                picture = self.src_dev.call("status")["migration"] or {}
                if picture.get("state") in FINISHED:
                    raise VmMigrationFailedBeforeCommit(
                        f"the device migration {picture.get('state')}: "
                        f"{picture.get('reason', '')}")
            self.src_qemu.event(("MIGRATION",), WATCH)

    # -- rollback --------------------------------------------------------------------------
    def _roll_back(self) -> list[str]:
        """Both sides back as they were, as far as they answer; what was done, in words."""
        rolled: list[str] = []
        if self.qemu_started and self.src_qemu is not None:
            try:
                self.src_qemu.execute("migrate_cancel")
                rolled.append("QEMU's migration cancelled")
            except (QmpError, OSError) as exc:
                rolled.append(self._problem(f"migrate_cancel failed ({exc})"))
        if self.device_started and not self.committed and self._device_committed():
            self.committed = True  # the final round committed while this run failed
        if self.committed and not self.switched and self._qemu_completed():
            self.switched = True  # it completed after all: the state stays where the VM is
        if self.switched and self.src_dev is not None:
            rolled.append(self._release())
        elif self.committed and self.src_dev is not None:
            rolled.append(self._cancel_device())
            rolled.append(self._undo_destination())
        elif self.device_started and self.src_dev is not None:
            rolled.append(self._cancel_device())
            if self._cancelled_after_commit():  # FINAL had gone out: the copy committed
                rolled.append(self._undo_destination())
        if self.qemu_started and self.src_qemu is not None and not self.switched:
            rolled.append(self._source_vm_running())
        return rolled

    def _source_picture(self) -> dict[str, Any]:
        """The source device's migration picture; empty when it does not answer."""
        assert self.src_dev is not None
        try:
            return self.src_dev.call("status")["migration"] or {}
        except (ServiceError, OSError):
            return {}

    def _device_committed(self) -> bool:
        picture = self._source_picture()
        return picture.get("phase") == "committed" and picture.get("state") not in FINISHED

    def _cancelled_after_commit(self) -> bool:
        picture = self._source_picture()
        return picture.get("phase") == "committed" and picture.get("state") == "cancelled"

    def _qemu_completed(self) -> bool:
        assert self.src_qemu is not None
        try:
            return self.src_qemu.execute("query-migrate").get("status") == "completed"
        except (QmpError, OSError):
            return False

    def _cancel_device(self) -> str:
        assert self.src_dev is not None
        try:
            picture = self.src_dev.call("status")["migration"] or {}
            if picture.get("state") not in FINISHED:
                self.src_dev.call("migrate.cancel")
            end = time.monotonic() + 30
            while picture.get("state") not in FINISHED and time.monotonic() < end:
                time.sleep(POLL * 4)
                picture = self.src_dev.call("status")["migration"] or {}
        except (ServiceError, OSError) as exc:
            return self._problem(f"the device migration could not be cancelled ({exc})")
        if self.committed:
            return "the source device resumed with its state"
        return ("the source device runs on with its state, the destination device removed "
                "what it restored")

    def _undo_destination(self) -> str:
        """After the commit the destination device runs a copy of the state: removed."""
        try:
            with DeviceClient(self.device_to) as dst:
                dst.call("migrate.undo")
        except (ServiceError, OSError) as exc:
            return self._problem(f"the destination device could not remove its copy ({exc})")
        return "the destination device removed its copy"

    def _release(self) -> str:
        """QEMU completed although a later step failed: the guest runs on the destination,
        so the source device lets its state go."""
        assert self.src_dev is not None
        try:
            self.src_dev.call("migrate.release")
        except (ServiceError, OSError) as exc:
            return self._problem(f"the source device could not let its state go ({exc})")
        return "QEMU had completed: the guest and its state run on the destination"

    def _source_vm_running(self) -> str:
        assert self.src_qemu is not None
        end = time.monotonic() + 10
        status = "?"
        while time.monotonic() < end:
            try:
                status = self.src_qemu.execute("query-status").get("status", "?")
            except (QmpError, OSError) as exc:
                return self._problem(f"the source VM does not answer ({exc})")
            if status == "running":
                return "the source VM runs on"
            time.sleep(0.05)
        return self._problem(f"the source VM is {status}")

    def _problem(self, words: str) -> str:
        """A rollback step that did not succeed: kept for the caller, and its words."""
        self.problems.append(words)
        return words


@contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ctrl-C ignored while rolling back (in the main thread, where signals arrive): a
    second one must not leave the two sides half undone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class VmMigrationFailedBeforeCommit(ServiceError):
    """A step failed before the device state committed (rolled back by the caller)."""

    errno = errno.ECANCELED


class VmMigrationFailedAfterCommit(ServiceError):
    """A step failed after the device state committed, before QEMU's switchover (rolled back
    by the caller: the source resumes, the destination's copy is removed)."""

    errno = errno.ECANCELED


class VmMigrationTimeout(ServiceError):
    """The migration took longer than its timeout (rolled back by the caller)."""

    errno = errno.ETIMEDOUT
