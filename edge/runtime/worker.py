"""The daemon's workers, one shape: ``start()``, ``stop()`` and ``health()``.

Capture, MQTT, feedback, sync (and the screen, the updater and the health reporter) each run on
their own thread and report a typed section of the health message (edge/runtime/health_schema.py),
with their entry in its ``workers``. ``Backoff`` is the one retry rhythm they share: delays
that double up to a ceiling and start small again once an attempt has stayed healthy for a while,
so a camera or a broker that comes back after many outages is picked up as fast as after the
first. ``Supervised`` runs a job in a thread and restarts it, with that backoff, whenever it
raises; its restarts and last crash are its worker entry in health, the crash until the job
has run healthily again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from edge.runtime.health_schema import WorkerHealth

log = logging.getLogger(__name__)


class Worker(Protocol):
    """A background part of the daemon; ``health()`` is its typed section of the health message."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def health(self) -> object: ...


class Backoff:
    """Delays of ``first_s``, doubling up to ``max_s``; an attempt that lasted ``healthy_s`` or more
    starts the sequence again."""

    def __init__(self, first_s: float, max_s: float, healthy_s: float) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError("need 0 < first_s <= max_s")
        self.first_s, self.max_s, self.healthy_s = first_s, max_s, healthy_s
        self._next_s = first_s

    def after(self, lasted_s: float) -> float:
        """The delay before the next attempt, given how long the last one stayed healthy."""
        if lasted_s >= self.healthy_s:
            self._next_s = self.first_s
        delay_s = self._next_s
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay_s


def every(interval_s: float, once: Callable[[], bool]) -> Callable[[threading.Event], None]:
    """A job for ``Supervised``: ``once()`` now and every ``interval_s`` after, until the stop event
    is set or ``once()`` returns False."""

    def job(stop: threading.Event) -> None:
        while not stop.is_set() and once():
            if stop.wait(interval_s):
                return

    return job


class Supervised:
    """Runs ``job(stop_event)`` on a thread named ``name`` until it returns or ``stop`` is called,
    restarting it with ``backoff`` whenever it raises."""

    def __init__(self, name: str, job: Callable[[threading.Event], None], backoff: Backoff) -> None:
        self.name = name
        self._job = job
        self._backoff = backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.crashes = 0
        self._error: str | None = None
        self._since = 0.0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._since = time.monotonic()
            try:
                self._job(self._stop)
                return
            except Exception as exc:  # the job's bug must not end the worker: report and restart
                self.crashes += 1
                self._error = f"{type(exc).__name__}: {exc}"
                delay_s = self._backoff.after(time.monotonic() - self._since)
                log.exception("%s failed; restarting it in %.1f s", self.name, delay_s)
            if self._stop.wait(delay_s):
                return

    @property
    def error(self) -> str | None:
        """The last crash, until the restarted job has run for the backoff's healthy period."""
        if self._error and time.monotonic() - self._since >= self._backoff.healthy_s:
            self._error = None
        return self._error

    def health(self, problem: str | None = None) -> WorkerHealth:
        """Restarts and the last crash; ``problem`` is the job's own report (a failed pass), shown
        when there is no crash to show."""
        error = self.error or problem
        if self._thread is not None and not self._thread.is_alive():
            return WorkerHealth("stopped", self.crashes, error)
        return WorkerHealth.of(error, self.crashes, working=self._thread is not None)
