"""Model updates without downtime: ``asl-edge run`` reloads its model on SIGHUP, or when the
config file or the bundle's files change on disk (``[model] watch_s``), or when the release
channel has a verified new release.

The signal handler only sets an event; so does the watch, once a change has held for two checks
(a bundle still being copied is not loaded half-way). A helper thread then re-reads the config
file and, when the ``[model]`` section or the bundle's files changed (a re-pointed ``bundle``, a
re-converted model, a new engine), prepares the new model (edge/runtime/model.py) while the old
one keeps recognizing; the inference thread then swaps it in between two frames
(``ModelKeeper.swap``). Any failure keeps the old model: its reason is ``model_reload_error`` in
health and its traceback is logged once. Other sections are never half-applied: their changes
are logged as needing a restart.

A verified release from the channel (edge/runtime/updater.py) goes the same way through
``load_release``, which answers with a future instead of ``model_reload_error``; an engine for
this device is built for it first when the running model has one. While a release runs, a reload
keeps its bundle and applies only the rest of ``[model]``.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from edge.core.config import Config, load_config
from edge.runtime.health_schema import ModelHealth, WorkerHealth
from edge.runtime.model import ModelKeeper, ModelSource, Prepared, bundle_files, prepare, with_release
from edge.runtime.release_store import ReleaseBundle

log = logging.getLogger(__name__)


@dataclass
class ReleaseRequest:
    release: ReleaseBundle
    done: Future[str | None]  # None once swapped in, else why not


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class ModelReloader:
    """Owned by the inference thread, which calls ``poll`` between frames; the model itself is
    ``models.active``."""

    def __init__(
        self, config_path: Path | None, config: Config, models: ModelKeeper, requested: threading.Event
    ) -> None:
        self.config_path = config_path
        self.config = config  # as the daemon started: the sections a reload never applies
        self.models = models
        self.error: str | None = None
        self._requested = requested
        self._worker: threading.Thread | None = None
        self._outcome: Prepared | BaseException | None = None
        self._releases: queue.SimpleQueue[ReleaseRequest] = queue.SimpleQueue()
        self._loading: ReleaseRequest | None = None
        self._settled = self._on_disk()
        self._changed: object = None
        self._watched_at = time.monotonic()

    @property
    def reloading(self) -> bool:
        """A reload is being prepared (the old model keeps recognizing meanwhile)."""
        return self._worker is not None

    def health(self) -> ModelHealth:
        active, error, reloading = self.models.active, self.error, self.reloading
        state = "reloading" if reloading else "running"
        return ModelHealth(
            WorkerHealth(state, self.models.swaps, error),
            active.selection.backend,
            active.selection.reason,
            active.model_id,
            active.version,
            error,
            reloading,
        )

    def _on_disk(self) -> tuple[object, ...]:
        """The config file's and the active bundle's stamps, as the watch compares them."""
        config_stamp = None
        if self.config_path is not None:
            try:
                info = self.config_path.stat()
                config_stamp = (info.st_size, info.st_mtime_ns)
            except OSError:
                pass
        return (config_stamp, bundle_files(self.models.active.source.path))

    def _watch(self) -> None:
        """Every ``watch_s``: a change since the last attempt that holds for two checks requests a
        reload; until it holds (a copy in progress) the watch waits."""
        interval_s = self.models.active.config.watch_s
        now = time.monotonic()
        if not interval_s or now - self._watched_at < interval_s:
            return
        self._watched_at = now
        stamp = self._on_disk()
        if stamp == self._settled:
            self._changed = None
        elif stamp != self._changed:
            self._changed = stamp
        else:
            log.info("reload: the config file or the bundle changed on disk")
            self._requested.set()

    def load_release(self, release: ReleaseBundle) -> Future[str | None]:
        """Any thread: load a verified release as a reload does (prepared off the inference
        thread, smoke-tested, swapped between frames; its engine built first when the running
        model has one). The future completes on the inference thread, before ``poll`` returns:
        None once the release runs, else why it does not."""
        request = ReleaseRequest(release, Future())
        self._releases.put(request)
        return request.done

    def poll(self) -> bool:
        """Start a requested reload or release, or finish a prepared one; True when an attempt
        just ended."""
        if self._worker is None:
            self._watch()
            self._loading = None if self._releases.empty() else self._releases.get()
            if self._loading is not None:
                release = self._loading.release
                log.info("loading release %s from %s", release.version, release.path)
                self._start(self._prepare_release, release)
            elif self._requested.is_set():
                self._requested.clear()
                self._settled, self._changed = self._on_disk(), None
                log.info("reload requested: re-reading %s", self.config_path or "the defaults")
                self._start(self._prepare)
            return False
        if self._worker.is_alive():
            return False
        self._worker, outcome, self._outcome = None, self._outcome, None
        loading, self._loading = self._loading, None
        failure = self._swap(outcome) if isinstance(outcome, Prepared) else outcome
        attempt = f"release {loading.release.version}" if loading else "reload"
        if failure is not None:
            log.warning(
                "%s failed, keeping %s: %s",
                attempt,
                self.models.active.model_id,
                _reason(failure),
                exc_info=failure,
            )
        elif outcome is None:
            log.info("reload: model and bundle unchanged, still %s", self.models.active.model_id)
        reason = None if failure is None else _reason(failure)
        if loading is None:
            self.error = reason
        else:
            loading.done.set_result(reason)
        return True

    def _start(self, target: Callable[..., None], *args: object) -> None:
        self._worker = threading.Thread(target=target, args=args, name="model-reload", daemon=True)
        self._worker.start()

    def _prepare(self) -> None:
        """Helper thread: re-read the config, load the new bundle (and build its engine)."""
        try:
            config = load_config(self.config_path) if self.config_path else self.config
            self._log_restart_only(config)
            release = self.models.active.release
            if ModelSource.of(with_release(config.model, release)) == self.models.active.source:
                return
            self._outcome = prepare(config.model, release)
        except Exception as exc:  # a reload must never stop the kiosk: keep the old model
            self._outcome = exc

    def _prepare_release(self, release: ReleaseBundle) -> None:
        """Helper thread: the release's bundle with the running ``[model]`` settings; an engine
        for this device is built first when the running model has one."""
        active = self.models.active
        try:
            tensorrt = active.selection.backend == "tensorrt"
            self._outcome = prepare(active.config, release, build_engine=tensorrt)
        except Exception as exc:  # a bad release must never stop the kiosk: keep the old model
            self._outcome = exc

    def _log_restart_only(self, config: Config) -> None:
        changed = [
            f"[{item.name}]"
            for item in dataclasses.fields(Config)
            if item.name != "model" and getattr(config, item.name) != getattr(self.config, item.name)
        ]
        if changed:
            log.warning(
                "reload: %s changed; only [model] is reloaded, the rest takes effect at the next "
                "restart (systemctl restart asl-edge)",
                ", ".join(changed),
            )

    def _swap(self, prepared: Prepared) -> BaseException | None:
        """Inference thread: open, smoke-test, swap; None on success, else why the old model is kept."""
        try:
            self.models.swap(prepared)
        except Exception as exc:  # a reload must never stop the kiosk: keep the old model
            return exc
        self._settled = (self._settled[0], prepared.source.files)
        return None
