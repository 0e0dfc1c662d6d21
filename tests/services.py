"""Real services for tests, on loopback and free ports, stopped by PID."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    """A private Mosquitto broker; ``stop``/``start`` simulate a broker restart on the same port."""

    def __init__(self, folder: Path, port: int | None = None, extra: str = "") -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.binary = binary
        self.port = port or free_port()
        self.config = folder / "mosquitto.conf"
        anonymous = "false" if "password_file" in extra else "true"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous {anonymous}\npersistence false\nuser root\n"
            f"log_dest file {folder / 'mosquitto.log'}\n{extra}",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@contextlib.contextmanager
def running_daemon(config: Path) -> Iterator[subprocess.Popen[str]]:
    """``asl-edge run --config CONFIG`` from this checkout, its log on the piped stderr; killed on
    the way out if the test did not stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
