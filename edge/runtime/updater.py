"""The kiosk follows a release channel (``[update] channel``): it adopts each new signed release
without stopping, or refuses it and says why.

On start and every ``interval_s`` a supervised thread reads the channel's signed pointer. A new
current release is downloaded and verified into the state directory (edge/runtime/release_store.py),
then loaded as any model is (edge/runtime/reload.py, edge/runtime/model.py): prepared off the
inference thread, smoke tested, swapped between two frames. Which release runs is the active
model's (``ModelKeeper.active.release``); older releases are pruned, the one before kept for an
instant rollback.

A staged rollout's candidate goes only to the kiosks of its canary cohort (edge/runtime/cohort.py):
they serve it, or with ``shadow`` keep serving the stable release and run the candidate beside it
(edge/runtime/shadow.py), after the same download and verification. The other kiosks never
download it. When the candidate is rolled back (it leaves the pointer), a canary kiosk returns to
the stable release from its kept copy at the next check.

Anything wrong keeps the running model and is reported as ``model_update_error``. A release that
fails verification or loading is skipped until the channel's pointer changes; a download that
fails (network, credentials) is resumed at the next check. With a channel, the daemon starts on
the last verified release (so a kiosk that restarts offline runs it), else on ``[model] bundle``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from edge.core.config import Config
from edge.runtime.channel import Channel
from edge.runtime.cohort import CANARY, cohort_of, cohort_position
from edge.runtime.health_schema import UpdateHealth, WorkerHealth
from edge.runtime.model import ModelKeeper
from edge.runtime.release_store import (
    ChannelState,
    DownloadInterrupted,
    InstalledRelease,
    ReleaseBundle,
    ReleaseStore,
    update_s3_settings,
)
from edge.runtime.releases import (
    POINTER_FILE,
    RELEASE_FILE,
    ChannelError,
    ChannelPointer,
    ReleaseError,
    ReleaseRef,
    ReleaseRefused,
    claimed_version,
)
from edge.runtime.shadow import ShadowRunner
from edge.runtime.worker import Backoff, Supervised, every

log = logging.getLogger(__name__)

LoadRelease = Callable[[ReleaseBundle], "Future[str | None]"]


class Updater:
    """The daemon's worker for ``[update]``: ``start``, ``stop`` and ``health`` like the others."""

    def __init__(
        self,
        config: Config,
        load_release: LoadRelease,
        models: ModelKeeper,
        startup_error: str | None = None,
        shadow: ShadowRunner | None = None,
    ) -> None:
        settings = config.update
        self.interval_s = settings.interval_s
        self.store = ReleaseStore.of(config)
        self.channel = Channel(settings.channel, update_s3_settings(config))
        self.url = self.channel.location.url()
        self._load_release = load_release
        self._models = models
        self._shadow = shadow
        self._override = settings.cohort
        self._position = cohort_position(self.url, config.device.id)
        self.cohort: str | None = settings.cohort or None  # known once a pointer was read
        self._lock = threading.Lock()
        self._error: str | None = None
        self._startup_error = startup_error  # a local release not used at start, until one is adopted
        self._refused: tuple[str, str] | None = None  # the pointer last refused (sha256) and why
        self._seen: str | None = None  # sha256 of the pointer last read, "" when there was none
        self._attempting: str | None = None  # the release the check is adopting (for its errors)
        self._stop = threading.Event()
        self._worker: Supervised | None = None

    @property
    def _running(self) -> str:
        """The release the active model came from ("" for ``[model] bundle``)."""
        return self._models.active.version

    def health(self) -> UpdateHealth:
        with self._lock:
            errors = [error for error in (self._startup_error, self._error) if error]
        error = "; ".join(errors) or None
        worker = self._worker.health(error) if self._worker else WorkerHealth.of(error, working=False)
        shadow = self._shadow.version if self._shadow is not None else None
        return UpdateHealth(worker, error, self.cohort, shadow)

    def _report(self, error: str | None) -> None:
        with self._lock:
            changed, self._error = error != self._error, error
        if error and changed:
            log.warning("model update: %s", error)

    def start(self) -> None:
        """Checks on start and every ``interval_s`` on a supervised thread: a check that crashes is
        reported in ``model_update_error`` and the worker restarts with backoff."""
        self._stop.clear()
        backoff = Backoff(min(1.0, self.interval_s), self.interval_s, 2 * self.interval_s)
        self._worker = Supervised("updater", every(self.interval_s, self._timed_check), backoff)
        self._worker.start()

    def stop(self, timeout_s: float = 1.5) -> None:
        """Ends the checks; a download in flight stops at its next chunk and resumes next start."""
        self._stop.set()
        if self._worker is not None:
            self._worker.stop(timeout_s)

    def _timed_check(self) -> bool:
        try:
            self.check()
        except Exception as exc:  # reported here, restarted by the supervisor
            self._report(f"checking channel {self.url} failed: {type(exc).__name__}: {exc}")
            raise
        return not self._stop.is_set()

    def check(self) -> None:
        """One look at the channel: adopt what it points to, or say why not."""
        try:
            data = self.channel.read_document(POINTER_FILE)
        except ChannelError as exc:
            self._report(f"channel {self.url}: cannot read {POINTER_FILE}: {exc}")
            return
        except ReleaseRefused as exc:
            self._report(f"channel {self.url}: {exc}")
            return
        digest = "" if data is None else hashlib.sha256(data).hexdigest()
        if digest != self._seen:
            self._seen = digest
            log.info("channel %s: %s", self.url, "new pointer" if data else "nothing published yet")
        if data is None:
            self._report(None)
            return
        if self._refused is not None and digest == self._refused[0]:
            self._report(self._refused[1])  # skipped until the channel points elsewhere
            return
        self._attempting = None
        try:
            self._follow(ChannelPointer.verify(data, self.store.trusted))
        except ReleaseRefused as exc:
            self._refused = (digest, f"release {self._attempting or claimed_version(data)} refused: {exc}")
            self._report(self._refused[1])
        except DownloadInterrupted:
            return
        except (ReleaseError, OSError) as exc:  # S3 or the state directory failed: try again later
            version = self._attempting or claimed_version(data)
            self._report(f"release {version} not downloaded (retrying in {self.interval_s:g} s): {exc}")

    def _follow(self, pointer: ChannelPointer) -> None:
        """Serve what the pointer names for this kiosk's cohort, then run its shadow, if any."""
        before = self.store.read_state()
        if pointer.sequence < before.sequence:
            raise ReleaseRefused(
                f"the pointer's sequence {pointer.sequence} is older than {before.sequence}, adopted "
                "before (a replayed pointer?)"
            )
        self.cohort = cohort_of(self._override, self._position, pointer.candidate)
        candidate = pointer.candidate if self.cohort == CANARY else None
        serving = candidate.ref if candidate is not None and not candidate.shadow else pointer.ref
        shadow = candidate.ref if candidate is not None and candidate.shadow else None
        state = dataclasses.replace(before, current=serving.version, sequence=pointer.sequence)
        if serving.version != self._running:
            self._attempting = serving.version
            previous = self._running or None
            failure = self._load(self._installed(serving))
            if failure is not None:
                raise ReleaseRefused(f"not loaded: {failure}")
            state = dataclasses.replace(state, previous=previous)
        if state != before:
            self.store.write_state(state)
        with self._lock:
            self._startup_error = None
        self._report(None)
        wanted = shadow.version if shadow else None
        if self._shadow is not None and not wanted == self._shadow.version == state.shadow:
            self._attempting = wanted
            state = self._run_in_shadow(self._shadow, shadow, state)
        if state != before:
            self.store.prune(state.kept)

    def _installed(self, ref: ReleaseRef) -> InstalledRelease:
        """The verified local copy of a release, downloaded (and verified) first when there is none."""
        try:
            installed = self.store.installed(ref.version)
            if installed is not None and installed.release_sha256 != ref.release_sha256:
                raise ReleaseRefused(f"its {RELEASE_FILE} is not the one the pointer names")
        except ReleaseRefused as exc:
            log.warning(
                "the local copy of release %s is damaged (%s); downloading it again", ref.version, exc
            )
            installed = None
        if installed is None:
            log.info("release %s: downloading", ref.version)
            return self.store.download(self.channel, ref, self._stop)
        log.info("release %s: from the local copy", ref.version)
        return installed

    def _run_in_shadow(
        self, runner: ShadowRunner, ref: ReleaseRef | None, state: ChannelState
    ) -> ChannelState:
        """Start (or stop) running a candidate in shadow; its copy is kept while it runs."""
        bundle = None if ref is None else self._installed(ref).bundle
        failure = self._wait(runner.load(bundle))
        if failure is not None:
            raise ReleaseRefused(f"not run in shadow: {failure}")
        state = dataclasses.replace(state, shadow=ref.version if ref else None)
        self.store.write_state(state)
        return state

    def _load(self, installed: InstalledRelease) -> str | None:
        """Hand the release to the inference thread; its outcome is recorded there, before the
        health message that follows the swap."""
        future = self._load_release(installed.bundle)
        future.add_done_callback(lambda done: self._loaded(installed.version, done.result()))
        return self._wait(future)

    def _wait(self, future: Future[str | None]) -> str | None:
        while not self._stop.is_set():
            with contextlib.suppress(concurrent.futures.TimeoutError):
                return future.result(timeout=0.2)
        raise DownloadInterrupted("stopping before the release was loaded")

    def _loaded(self, version: str, failure: str | None) -> None:
        """Inference thread, as the attempt ends: the health message that follows shows it."""
        if failure is None:
            with self._lock:
                self._error, self._startup_error = None, None
            log.info("model update: release %s runs", version)
        else:
            self._report(f"release {version} refused: not loaded: {failure}")
