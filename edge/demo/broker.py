"""A private Mosquitto broker on loopback and a free port, for the demo, the tests and the benches.

Started as a child process with its own config file (Mosquitto 2 listens on every interface
without an explicit ``listener``, so the listener is always given), probed until it accepts
connections, and stopped by PID. ``stop``/``start`` simulate a broker restart on the same port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mosquitto:
    """``extra`` is appended to the config (a ``password_file`` line turns anonymous access off).
    ``persistent``: sessions, their queued messages and retained messages survive ``stop``/``start``
    (saved in ``folder`` at every change), so a subscriber with a persistent session misses nothing
    a restart would otherwise race it for."""

    def __init__(
        self, folder: Path, port: int | None = None, extra: str = "", persistent: bool = False
    ) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.port = port or free_port()
        self.config = folder / "mosquitto.conf"
        anonymous = "false" if "password_file" in extra else "true"
        persistence = (
            f"persistence true\npersistence_location {folder}/\n"
            "autosave_interval 1\nautosave_on_changes true\n"
            if persistent
            else "persistence false\n"
        )
        # 'user root' keeps it from dropping to the mosquitto user, who could not read our files.
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous {anonymous}\n{persistence}user root\n"
            f"log_dest file {folder / 'mosquitto.log'}\n{extra}",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:  # it could not listen (a port taken since it was chosen)
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto ({self.binary}) did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
