"""A candidate release run in shadow beside the serving model, on a canary kiosk of a ``--shadow``
rollout: it reads the same signs, and its words are never published or shown, only recorded with
the prediction (``shadow_version``, ``shadow_word``, ``shadow_confidence``) so that the fleet can
judge both models on the same sign.

The serving model always goes first: the daemon publishes a sign's word, then offers the sign's
crops here. The hand-off has one slot: while the shadow is still classifying an earlier sign the
new one is skipped and counted (``shadow_skipped``), so the inference thread never waits and
nothing piles up. The shadow's model lives on a thread of its own that owns its backend (the same
lifecycle as the serving model's: prepare, open, smoke test, edge/runtime/model.py), with
``[update] shadow_threads`` CPU threads and ``shadow_nice`` added niceness (Linux schedules
threads one by one), so that on a small CPU serving keeps its pace (bench/daemon.py --shadow).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from edge.core.config import Config
from edge.core.decode import class_scores, combine_windows, decode
from edge.core.preprocess import PreprocessParams, frames_to_clip
from edge.core.sampling import model_inputs
from edge.runtime.health_schema import DISABLED, ShadowHealth, WorkerHealth
from edge.runtime.model import ActiveModel, model_cache_dir, open_model, prepare, smoke_test
from edge.runtime.release_store import ReleaseBundle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowAnswer:
    """What the shadow said about one published prediction."""

    prediction_id: str
    version: str
    word: str
    confidence: float


@dataclass(frozen=True)
class _Job:
    prediction_id: str
    inputs: list[np.ndarray]  # copies: the ring moves on while the shadow reads them
    model: ActiveModel


@dataclass(frozen=True)
class _Load:
    release: ReleaseBundle | None  # None: stop shadowing
    done: Future[str | None]


class ShadowRunner:
    """The daemon's shadow worker: ``start``, ``stop`` and ``health`` like the others; ``load``
    from the updater's thread, ``offer`` from the inference thread."""

    def __init__(self, config: Config, answered: Callable[[ShadowAnswer], None]) -> None:
        self._model_config = dataclasses.replace(config.model, threads=config.update.shadow_threads)
        self._nice = config.update.shadow_nice
        self._cache_dir = model_cache_dir(config.storage.state_dir)
        self._answered = answered
        self._wake = threading.Condition()
        self._job: _Job | None = None
        self._load: _Load | None = None
        self._busy = False
        self._stopping = False
        self._active: ActiveModel | None = None
        self._error: str | None = None
        self._swaps = 0
        self._thread: threading.Thread | None = None
        self.signs = 0
        self.skipped = 0
        self._inference_ms: collections.deque[float] = collections.deque(maxlen=200)

    @property
    def version(self) -> str | None:
        """The release running in shadow; None when none is."""
        active = self._active
        return active.version if active is not None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ends the thread once its sign in progress is classified, and closes its backend."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def load(self, release: ReleaseBundle | None) -> Future[str | None]:
        """Any thread: run ``release`` in shadow from now on (None: stop shadowing). The future
        completes with None once it runs, else with why not (the model before it keeps running)."""
        request = _Load(release, Future())
        with self._wake:
            if self._load is not None:
                self._load.done.set_result("replaced by a newer request")
            self._load = request
            self._wake.notify()
        return request.done

    def offer(self, prediction_id: str, crops: Sequence[np.ndarray], preprocessing: PreprocessParams) -> None:
        """Inference thread, after the serving word is published: hand the sign over, or skip it
        (counted) while the shadow is busy. ``crops`` are the sign's crops, made the serving
        model's way; a candidate that crops differently cannot read them."""
        with self._wake:
            model = self._active
            if model is None:
                return
            if self._busy:
                self.skipped += 1
                return
            if model.bundle.spec.preprocessing != preprocessing:
                self._error = (
                    f"release {model.version} crops frames differently from the serving model; it "
                    "cannot run in shadow"
                )
                self.skipped += 1
                return
            self._busy = True
        spec = model.bundle.spec
        inputs = [np.stack(window) for window in model_inputs(crops, spec.frames, spec.sampling)]
        with self._wake:
            self._job = _Job(prediction_id, inputs, model)
            self._wake.notify()

    def _lower_priority(self) -> None:
        """This thread (and the backend threads it starts) yields the CPU to serving."""
        if not self._nice:
            return
        thread_id = threading.get_native_id()
        try:
            os.setpriority(
                os.PRIO_PROCESS, thread_id, os.getpriority(os.PRIO_PROCESS, thread_id) + self._nice
            )
        except OSError as exc:
            log.warning("shadow: cannot lower the thread's priority: %s", exc)

    def _run(self) -> None:
        self._lower_priority()
        while True:
            with self._wake:
                while not (self._stopping or self._job or self._load):
                    self._wake.wait()
                if self._stopping:
                    break
                job, self._job = self._job, None
                request, self._load = self._load, None
            if job is not None:  # before a swap closes the backend it needs
                self._classify(job)
            if request is not None:
                self._switch(request)
        active, self._active = self._active, None
        if active is not None:
            active.backend.close()

    def _classify(self, job: _Job) -> None:
        config, spec = self._model_config, job.model.bundle.spec
        started = time.perf_counter()
        try:
            clip = None
            scores = []
            for window in job.inputs:
                clip = frames_to_clip(list(window), clip)
                scores.append(class_scores(job.model.backend.infer(clip), config.combine).copy())
            decision = decode(
                combine_windows(scores, config.combine), spec.labels, config.top_k, config.min_confidence
            )
        except Exception as exc:  # the shadow must never stop the kiosk: report it, go on
            log.warning("shadow: release %s failed on a sign: %s", job.model.version, exc)
            with self._wake:
                self._error, self._busy = f"release {job.model.version}: {exc}", False
            return
        with self._wake:
            self._inference_ms.append((time.perf_counter() - started) * 1000.0)
            self.signs += 1
            self._busy = False
        self._answered(ShadowAnswer(job.prediction_id, job.model.version, decision.word, decision.confidence))

    def _switch(self, request: _Load) -> None:
        """Prepare, open and smoke-test the new shadow model here, then swap it in."""
        release = request.release
        model = None
        if release is not None:
            try:
                model = open_model(prepare(self._model_config, release), self._cache_dir)
                try:
                    smoke_test(model.backend)
                except BaseException:
                    model.backend.close()
                    raise
            except Exception as exc:  # a bad candidate must never stop the kiosk
                reason = str(exc) or type(exc).__name__
                with self._wake:
                    self._error = f"release {release.version}: {reason}"
                request.done.set_result(reason)
                return
        with self._wake:
            previous, self._active = self._active, model
            self._error = None
            self._swaps += 1
        if previous is not None:
            previous.backend.close()
        log.info(
            "shadow: %s", f"release {release.version} runs in shadow" if release else "no shadow model now"
        )
        request.done.set_result(None)

    def health(self) -> ShadowHealth:
        with self._wake:
            active, error, swaps = self._active, self._error, self._swaps
            signs, skipped, times = self.signs, self.skipped, list(self._inference_ms)
        if active is None and error is None:
            worker = dataclasses.replace(DISABLED, restarts=swaps)
        else:
            worker = WorkerHealth.of(error, swaps)
        p50 = round(float(np.percentile(times, 50)), 1) if times else None
        return ShadowHealth(worker, signs, skipped, p50)
