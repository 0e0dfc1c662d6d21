"""The health reporter: the worker that does everything slow with the health snapshot.

The inference thread takes a snapshot between two frames (memory only, edge/runtime/health_schema.py)
and hands it here (``offer``). This thread then measures the store (a ``statvfs``, the store's
size, a SQLite ``COUNT``) and runs the hourly maintenance, publishes the message on MQTT, writes
``health.json`` and the metrics textfile, and hands the message to the screen's banner. A snapshot
offered while the last one is still being sent replaces any that waits (the newest wins, and it is
published if either was due), so a slow disk delays health, never frames.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from edge.runtime.health import write_health_file
from edge.runtime.health_schema import HealthSnapshot, ReporterHealth, WorkerHealth
from edge.runtime.keeper import StoreKeeper
from edge.runtime.metrics import MetricsTextfile
from edge.runtime.mqtt import MqttLink
from edge.runtime.screen.server import ScreenServer

log = logging.getLogger(__name__)

STOP_WAIT_S = 10.0  # at shutdown, for the last snapshot to be sent


class HealthReporter:
    """``start``, ``offer`` from the inference thread, ``stop`` (after the last offer)."""

    def __init__(
        self,
        link: MqttLink,
        state_dir: Path,
        interval_s: float,
        keeper: StoreKeeper,
        maintain: Callable[[], None],
        metrics: MetricsTextfile | None = None,
        screen: ScreenServer | None = None,
    ) -> None:
        self.link = link
        self.state_dir = state_dir
        self.interval_s = interval_s
        self.keeper = keeper
        self.maintain = maintain
        self.metrics = metrics
        self.screen = screen
        self.file_error: str | None = None
        self._pending: tuple[HealthSnapshot, bool] | None = None
        self._stopping = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, snapshot: HealthSnapshot, publish: bool) -> None:
        """Hand a snapshot over, never waiting: ``publish`` sends it everywhere, else only to the
        screen's banner."""
        with self._ready:
            if self._pending is not None:
                publish = publish or self._pending[1]
            self._pending = (snapshot, publish)
            self._ready.notify()

    def stop(self, timeout_s: float = STOP_WAIT_S) -> None:
        """Send what waits, then end the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def health(self) -> ReporterHealth:
        if self._thread.is_alive():
            worker = WorkerHealth.of(self.file_error)
        else:
            worker = WorkerHealth("stopped" if self._stopping else "starting", 0, self.file_error)
        return ReporterHealth(worker, self.file_error)

    def _run(self) -> None:
        while True:
            with self._ready:
                while self._pending is None and not self._stopping:
                    self._ready.wait()
                pending, self._pending = self._pending, None
            if pending is None:
                return
            try:
                self._send(*pending)
            except Exception:  # a bug here must not end health reporting for good
                log.exception("health: sending a health snapshot failed")

    def _send(self, snapshot: HealthSnapshot, publish: bool) -> None:
        if publish:
            self.maintain()
            self.keeper.measure()
            snapshot = dataclasses.replace(snapshot, store=self.keeper.health())
        payload = snapshot.payload()
        if publish:
            self.link.publish_periodic("health", payload)
            self._write_file(payload)
            if self.metrics is not None:
                self.metrics.update(payload)
        if self.screen is not None:
            self.screen.show_health(payload)

    def _write_file(self, payload: dict[str, object]) -> None:
        error = write_health_file(self.state_dir, payload, self.interval_s)
        if error != self.file_error:
            if error:
                log.warning("cannot write health.json: %s", error)
            else:
                log.info("health.json is written again")
        self.file_error = error
