"""Model updates without downtime: ``asl-edge run`` reloads its model on SIGHUP, or when the
config file or the bundle's files change on disk (``[model] watch_s``).

The signal handler only sets an event; so does the watch, once a change has held for two checks
(a bundle still being copied is not loaded half-way). A helper thread then re-reads the config
file and, when the ``[model]`` section or the bundle's files changed (a re-pointed ``bundle``, a
re-converted model, a new engine), loads and checks the new bundle and builds its TensorRT engine
when ``build_if_missing`` asks for one, while the old model keeps recognizing. The inference
thread opens the new backend (its CUDA context must be that thread's), runs a smoke inference and
swaps it in between two frames, closing the old one after. Any failure keeps the old model and is
kept in ``error`` for the health message. Other sections are never half-applied: their changes
are logged as needing a restart.

A verified release from the channel (edge/runtime/updater.py) goes the same way through
``load_release``, which answers with a future instead of ``error``; an engine for this device is
built for it first when the running model has one. While a release runs, a reload keeps its
bundle and applies only the rest of ``[model]``.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import stat
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.bundle import Bundle, load_bundle, resolve_bundle_path
from edge.core.config import Config, ModelConfig, load_config
from edge.core.errors import BackendError
from edge.runtime.backends.base import Backend
from edge.runtime.backends.select import Selection, model_cache_dir, open_backend, prepare_engine

log = logging.getLogger(__name__)

FileStamp = tuple[str, int, int]


def bundle_files(path: Path) -> tuple[FileStamp, ...]:
    """Name, size and modification time of each file in the bundle and its ``engines/`` folder:
    cheap to take, and a re-converted model or a new engine changes it."""
    stamps = []
    for folder in (path, path / "engines"):
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                stamps.append((str(entry.relative_to(path)), info.st_size, info.st_mtime_ns))
    return tuple(stamps)


@dataclass(frozen=True)
class ModelSource:
    """What a model was loaded from; a reload happens only when this differs."""

    config: ModelConfig
    path: Path
    files: tuple[FileStamp, ...]

    @classmethod
    def of(cls, config: ModelConfig) -> ModelSource:
        path = resolve_bundle_path(None, config.bundle).resolve()
        return cls(config, path, bundle_files(path))


@dataclass(frozen=True)
class Prepared:
    """A bundle loaded and checked (and its engine built) off the inference thread."""

    source: ModelSource
    bundle: Bundle


@dataclass(frozen=True)
class ActiveModel:
    source: ModelSource
    bundle: Bundle
    backend: Backend
    selection: Selection

    @property
    def model_id(self) -> str:
        return self.bundle.spec.model_id


def prepare_model(config: ModelConfig, build_engine: bool = False) -> Prepared:
    """The slow, thread-agnostic part: read and verify the bundle, build a missing engine (when
    the config or ``build_engine`` asks). The bundle's files are taken after the build, so a new
    engine is not mistaken for a change."""
    path = resolve_bundle_path(None, config.bundle).resolve()
    bundle = load_bundle(path)
    prepare_engine(bundle, config.backend, config.precision, config.build_if_missing or build_engine)
    return Prepared(ModelSource(config, path, bundle_files(path)), bundle)


def open_model(prepared: Prepared, cache_dir: Path | None = None) -> ActiveModel:
    """The backend, on the calling thread (the inference thread: it owns the CUDA context);
    ``cache_dir`` keeps compiled models across restarts (OpenVINO)."""
    config = prepared.source.config
    backend, selection = open_backend(
        prepared.bundle, config.backend, config.threads, config.precision, config.build_if_missing, cache_dir
    )
    return ActiveModel(prepared.source, prepared.bundle, backend, selection)


def smoke_test(backend: Backend) -> None:
    """One inference on a random clip: logits of the manifest's shape, all finite."""
    spec = backend.spec
    clip = np.random.default_rng(0).uniform(-1.0, 1.0, spec.input_shape).astype(np.float32)
    logits = backend.infer(clip)
    if tuple(logits.shape) != spec.output_shape:
        raise BackendError(
            f"smoke inference: logits shape {list(logits.shape)}, expected {list(spec.output_shape)}"
        )
    if not np.isfinite(logits).all():
        raise BackendError("smoke inference: the logits are not all finite")


@dataclass(frozen=True)
class ReleaseBundle:
    """A verified release's bundle (edge/runtime/updater.py): while it runs, a reload keeps it
    and applies only the rest of ``[model]``."""

    version: str
    path: Path


@dataclass
class ReleaseRequest:
    release: ReleaseBundle
    done: Future[str | None]  # None once swapped in, else why not


class ModelReloader:
    """Owned by the inference thread, which calls ``poll`` between frames."""

    def __init__(
        self,
        config_path: Path | None,
        config: Config,
        active: ActiveModel,
        requested: threading.Event,
        release: ReleaseBundle | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.active = active
        self.release = release
        self.error: str | None = None
        self._requested = requested
        self._worker: threading.Thread | None = None
        self._outcome: Prepared | str | None = None
        self._releases: queue.SimpleQueue[ReleaseRequest] = queue.SimpleQueue()
        self._loading: ReleaseRequest | None = None
        self._settled = self._on_disk()
        self._changed: object = None
        self._watched_at = time.monotonic()

    @property
    def reloading(self) -> bool:
        """A reload is being prepared (the old model keeps recognizing meanwhile)."""
        return self._worker is not None

    def _on_disk(self) -> tuple[object, ...]:
        """The config file's and the active bundle's stamps, as the watch compares them."""
        config_stamp = None
        if self.config_path is not None:
            try:
                info = self.config_path.stat()
                config_stamp = (info.st_size, info.st_mtime_ns)
            except OSError:
                pass
        return (config_stamp, bundle_files(self.active.source.path))

    def _watch(self) -> None:
        """Every ``watch_s``: a change since the last attempt that holds for two checks requests a
        reload; until it holds (a copy in progress) the watch waits."""
        interval_s = self.config.model.watch_s
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
                self._worker = threading.Thread(
                    target=self._prepare_release, args=(release,), name="model-reload", daemon=True
                )
                self._worker.start()
            elif self._requested.is_set():
                self._requested.clear()
                self._settled, self._changed = self._on_disk(), None
                log.info("reload requested: re-reading %s", self.config_path or "the defaults")
                self._worker = threading.Thread(target=self._prepare, name="model-reload", daemon=True)
                self._worker.start()
            return False
        if self._worker.is_alive():
            return False
        self._worker, outcome, self._outcome = None, self._outcome, None
        loading, self._loading = self._loading, None
        failure = self._swap(outcome) if isinstance(outcome, Prepared) else outcome
        attempt = f"release {loading.release.version}" if loading else "reload"
        if failure is not None:
            log.warning("%s failed, keeping %s: %s", attempt, self.active.model_id, failure)
        elif outcome is None:
            log.info("reload: model and bundle unchanged, still %s", self.active.model_id)
        if loading is None:
            self.error = failure
        else:
            if failure is None:
                self.release = loading.release
            loading.done.set_result(failure)
        return True

    def _prepare(self) -> None:
        """Helper thread: re-read the config, load the new bundle (and build its engine)."""
        try:
            config = load_config(self.config_path) if self.config_path else self.config
            self._log_restart_only(config)
            model = self._with_release(config.model, self.release)
            if ModelSource.of(model) == self.active.source:
                return
            self._outcome = prepare_model(model)
        except Exception as exc:  # a reload must never stop the kiosk: keep the old model
            self._outcome = str(exc) or type(exc).__name__

    def _prepare_release(self, release: ReleaseBundle) -> None:
        """Helper thread: the release's bundle with the running ``[model]`` settings; an engine
        for this device is built first when the running model has one."""
        model = self._with_release(self.config.model, release)
        try:
            self._outcome = prepare_model(model, build_engine=self.active.selection.backend == "tensorrt")
        except Exception as exc:  # a bad release must never stop the kiosk: keep the old model
            self._outcome = str(exc) or type(exc).__name__

    @staticmethod
    def _with_release(model: ModelConfig, release: ReleaseBundle | None) -> ModelConfig:
        return model if release is None else dataclasses.replace(model, bundle=str(release.path))

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

    def _swap(self, prepared: Prepared) -> str | None:
        """Inference thread: open, smoke-test, swap, close the old backend; None on success, else
        why the old model is kept."""
        try:
            candidate = open_model(prepared, model_cache_dir(self.config.storage.state_dir))
        except Exception as exc:  # a reload must never stop the kiosk: keep the old model
            return str(exc) or type(exc).__name__
        try:
            smoke_test(candidate.backend)
        except Exception as exc:  # same: any failure of the new backend keeps the old one
            candidate.backend.close()
            return str(exc) or type(exc).__name__
        previous, self.active = self.active, candidate
        self.config = dataclasses.replace(self.config, model=candidate.source.config)
        self._settled = (self._settled[0], candidate.source.files)
        previous.backend.close()
        log.info(
            "reload: %s -> %s from %s on %s (%s)",
            previous.model_id,
            candidate.model_id,
            candidate.bundle.path,
            candidate.selection.backend,
            candidate.selection.reason,
        )
        return None
