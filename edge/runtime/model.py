"""The model's one owner: which model runs, and how one model becomes the next.

Every model the daemon runs goes the same way: ``prepare`` (read and verify the bundle, build a
missing TensorRT engine: slow, on any thread) -> ``open_model`` (the backend, on the inference
thread, which owns the CUDA context) -> ``smoke_test`` (one inference on a random clip: logits of
the manifest's shape, all finite) -> ``ModelKeeper.swap`` (between two frames; the old backend is
closed after). The first model is chosen here too (``first_model``): with a release channel the
last verified release in the state directory (else the one before it), else ``[model] bundle``,
which preflight has already loaded and verified (``check``) and hands over, so that it is not
read and hashed twice.

``ActiveModel`` is the one record of what runs: its bundle, backend, backend selection, its
``[model]`` settings and the release it came from. ``ModelKeeper.active`` holds it; the pipeline,
health, the updater and the screen read it there and keep no copies.
"""

from __future__ import annotations

import dataclasses
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.bundle import ENGINES_DIR, Bundle, load_bundle, resolve_bundle_path
from edge.core.config import Config, ModelConfig
from edge.core.errors import AslEdgeError, BackendError
from edge.runtime.backends.base import Backend
from edge.runtime.backends.select import Selection, backend_problem, open_backend, prepare_engine
from edge.runtime.release_store import ReleaseBundle, ReleaseStore
from edge.runtime.releases import ReleaseRefused

log = logging.getLogger(__name__)

FileStamp = tuple[str, int, int]


def bundle_files(path: Path) -> tuple[FileStamp, ...]:
    """Name, size and modification time of each file in the bundle and its ``engines/`` folder:
    cheap to take, and a re-converted model or a new engine changes it."""
    stamps = []
    for folder in (path, path / ENGINES_DIR):
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
    release: ReleaseBundle | None = None


@dataclass(frozen=True)
class ActiveModel:
    """The model that runs: what it was loaded from, its backend, and the release it came from."""

    source: ModelSource
    bundle: Bundle
    backend: Backend
    selection: Selection
    release: ReleaseBundle | None = None

    @property
    def model_id(self) -> str:
        return self.bundle.spec.model_id

    @property
    def config(self) -> ModelConfig:
        """Its ``[model]`` settings (with ``bundle`` pointing at the release's, when it has one)."""
        return self.source.config

    @property
    def version(self) -> str:
        """The release it came from; empty for ``[model] bundle``."""
        return self.release.version if self.release else ""


def model_cache_dir(state_dir: str) -> Path:
    """Where compiled models are kept between starts: the state directory (``[storage] state_dir``)."""
    return Path(state_dir).expanduser() / "openvino-cache"


def with_release(config: ModelConfig, release: ReleaseBundle | None) -> ModelConfig:
    """``[model]`` with the release's bundle in place of ``bundle`` (unchanged without one)."""
    return config if release is None else dataclasses.replace(config, bundle=str(release.path))


def check(config: ModelConfig) -> tuple[Bundle | None, str | None]:
    """The ``[model]`` bundle, loaded and verified, and why ``run`` would refuse it on this machine
    (a ``key: problem`` line), found without opening or building anything."""
    try:
        bundle = load_bundle(resolve_bundle_path(None, config.bundle))
    except AslEdgeError as exc:
        return None, f"model.bundle: {exc}"
    problem = backend_problem(bundle, config.backend, config.precision, config.build_if_missing)
    return bundle, f"model.backend: {problem}" if problem else None


def prepare(
    config: ModelConfig,
    release: ReleaseBundle | None = None,
    build_engine: bool = False,
    loaded: Bundle | None = None,
) -> Prepared:
    """The slow, thread-agnostic part: read and verify the bundle (unless ``loaded`` is that bundle
    already), build a missing engine (when the config or ``build_engine`` asks). The bundle's files
    are taken after the build, so a new engine is not mistaken for a change."""
    config = with_release(config, release)
    path = resolve_bundle_path(None, config.bundle).resolve()
    bundle = loaded if loaded is not None and loaded.path.resolve() == path else load_bundle(path)
    prepare_engine(bundle, config.backend, config.precision, config.build_if_missing or build_engine)
    return Prepared(ModelSource(config, path, bundle_files(path)), bundle, release)


def open_model(prepared: Prepared, cache_dir: Path | None = None) -> ActiveModel:
    """The backend, on the calling thread (the inference thread: it owns the CUDA context);
    ``cache_dir`` keeps compiled models across restarts (OpenVINO)."""
    config = prepared.source.config
    backend, selection = open_backend(
        prepared.bundle, config.backend, config.threads, config.precision, config.build_if_missing, cache_dir
    )
    return ActiveModel(prepared.source, prepared.bundle, backend, selection, prepared.release)


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
class Startup:
    """The model the daemon starts on, and why a newer local release was not used."""

    model: ActiveModel
    error: str | None = None


def first_model(config: Config, loaded: Bundle | None = None) -> Startup:
    """Inference thread, at start: with a channel, the last verified release (else the one before
    it), else ``[model] bundle`` (``loaded``, when preflight read it). A release that fails here is
    reported, never fatal."""
    cache_dir = model_cache_dir(config.storage.state_dir)
    problems = []
    if config.update.channel:
        store = ReleaseStore.of(config)
        state = store.read_state()
        for version in (state.current, state.previous):
            if version is None:
                continue
            try:
                installed = store.installed(version)
                if installed is None:
                    raise ReleaseRefused(f"{store.root / version} is missing")
                model = open_model(prepare(config.model, installed.bundle), cache_dir)
            except Exception as exc:  # a broken local release must not stop the kiosk: try the next
                problems.append(f"release {version} (installed) not used: {exc}")
                log.warning(problems[-1])
                continue
            log.info("starting on release %s (%s)", version, model.model_id)
            return Startup(model, "; ".join(problems) or None)
    model = open_model(prepare(config.model, loaded=loaded), cache_dir)
    return Startup(model, "; ".join(problems) or None)


class ModelKeeper:
    """Holds the active model; ``swap`` is the one way it changes (on the inference thread)."""

    def __init__(self, active: ActiveModel, cache_dir: Path) -> None:
        self.active = active
        self.cache_dir = cache_dir
        self.swaps = 0

    def swap(self, prepared: Prepared) -> None:
        """Open, smoke-test and swap in a prepared model, closing the old backend; any failure
        raises and leaves the old model active."""
        candidate = open_model(prepared, self.cache_dir)
        try:
            smoke_test(candidate.backend)
        except BaseException:
            candidate.backend.close()
            raise
        previous, self.active = self.active, candidate
        self.swaps += 1
        previous.backend.close()
        log.info(
            "model: %s -> %s from %s on %s (%s)",
            previous.model_id,
            candidate.model_id,
            candidate.bundle.path,
            candidate.selection.backend,
            candidate.selection.reason,
        )

    def close(self) -> None:
        """The backend active at the end, whichever swap brought it."""
        self.active.backend.close()
