"""Real guests on a device: QEMU (TCG) booting the tiny guest of tools/guest/build.sh, its NIC
a vhost-user netdev served by a device daemon, its serial console a shell that commands are
typed into. The end-to-end tests and the benchmarks run guests through this."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the source tree: service/guest.py
QEMU = shutil.which("qemu-system-x86_64")
GUEST_DIR = Path(os.environ.get("OFFLOAD_GUEST_DIR", REPO / ".cache" / "guest"))
BOOT_TIMEOUT = 120.0


def guest_image() -> tuple[Path, Path] | str:
    """The guest's kernel (the ELF one, booted through its PVH entry: no option ROM reading
    a bzImage in and decompressing it, slow under TCG) and initramfs, built once (cached);
    or why there is none."""
    if QEMU is None:
        return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
    kernel, initrd = GUEST_DIR / "vmlinux", GUEST_DIR / "initramfs.gz"
    if not (kernel.is_file() and initrd.is_file()):
        build = subprocess.run(["bash", str(REPO / "tools" / "guest" / "build.sh"),
                                str(GUEST_DIR)], capture_output=True, text=True)
        if build.returncode != 0:
            return f"the guest could not be built: {build.stderr.strip()[-300:]}"
    return kernel, initrd


class GuestCommandError(RuntimeError):
    """A command typed into a guest's shell exited with a non-zero status."""


class Guest:
    """One QEMU guest; ``run`` types a command into its shell and returns the output."""

    def __init__(self, name: str, image: tuple[Path, Path], socket_path: str, *, mac: str,
                 ip: str, workdir: Path, memory_mb: int = 256, qmp: Path | None = None,
                 incoming: str | None = None) -> None:
        """``qmp``: a QMP socket to serve (service/qmp.py); ``incoming``: wait for a
        migration from that URI instead of booting (the guest then runs what arrives)."""
        kernel, initrd = image
        self.name = name
        self.log_path = workdir / f"{name}.console"
        command = [
            QEMU or "qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", f"{memory_mb}M",
            "-object", f"memory-backend-memfd,id=mem,size={memory_mb}M,share=on",
            "-numa", "node,memdev=mem",
            "-kernel", str(kernel), "-initrd", str(initrd),
            "-append", f"console=ttyS0 quiet panic=-1 guest.ip={ip}",
            "-chardev", f"socket,id=vu,path={socket_path}",
            "-netdev", "vhost-user,id=n0,chardev=vu",
            # MSI-X vectors off: QEMU 7.2 under TCG crashes in vhost_net_start with them
            "-device", f"virtio-net-pci,netdev=n0,vectors=0,mac={mac}",
            "-nographic", "-serial", "stdio", "-monitor", "none", "-no-reboot",
        ]
        self.qmp = qmp
        if qmp is not None:
            command += ["-qmp", f"unix:{qmp},server=on,wait=off"]
        if incoming is not None:
            command += ["-incoming", incoming]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, cwd=workdir)
        self.output = bytearray()
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._commands = 0
        if qmp is not None:  # QEMU listens on it once it started
            end = time.monotonic() + 30
            while not qmp.exists() and self.process.poll() is None and time.monotonic() < end:
                time.sleep(0.02)

    def _read(self) -> None:
        stdout = self.process.stdout
        if stdout is None:
            return
        with open(self.log_path, "wb") as log:
            while chunk := os.read(stdout.fileno(), 4096):
                log.write(chunk)
                log.flush()
                with self._seen:
                    self.output += chunk
                    self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def wait_for(self, text: str, timeout: float, start: int = 0) -> int:
        """The offset just past ``text`` in the console output, waiting up to ``timeout``."""
        needle = text.encode()
        end = time.monotonic() + timeout
        with self._seen:
            while True:
                found = self.output.find(needle, start)
                if found >= 0:
                    return found + len(needle)
                remaining = end - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    tail = bytes(self.output[-2000:]).decode(errors="replace")
                    raise TimeoutError(f"{self.name}: no {text!r} after {timeout:.0f} s; "
                                       f"console ends with:\n{tail}")
                self._seen.wait(remaining)

    def boot(self) -> None:
        self.wait_for("GUEST-READY", BOOT_TIMEOUT)
        self.run("stty -echo")

    def run(self, command: str, timeout: float = 60.0) -> str:
        """Run ``command`` in the guest's shell; its output (the exit status must be 0)."""
        self._commands += 1
        marker = f"DONE{self._commands}"
        with self._seen:
            start = len(self.output)
        stdin = self.process.stdin
        if stdin is None:
            raise RuntimeError(f"{self.name}: the guest's console is closed")
        # the marker is printed in two halves, so the echoed command line never matches it
        line = f"{command}; printf '%s%s %s\\n' DONE {self._commands} $?\n"
        stdin.write(line.encode())
        stdin.flush()
        end = self.wait_for(f"{marker} ", timeout, start)
        status_end = self.wait_for("\n", timeout, end) - 1
        status = bytes(self.output[end:status_end]).strip().decode(errors="replace")
        text = bytes(self.output[start:end - len(marker) - 1]).decode(errors="replace")
        if status != "0":
            raise GuestCommandError(f"{self.name}: {command!r} exited {status}:\n{text}")
        return text.replace("\r", "")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
