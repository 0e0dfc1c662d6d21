"""The kiosk follows a release channel (``[update] channel``): it adopts each new signed release
without stopping, or refuses it and says why.

On start and every ``interval_s`` a supervised thread reads the channel's signed pointer. A new
current release is downloaded and verified into the state directory (edge/runtime/release_store.py),
then loaded as any model is (edge/runtime/reload.py, edge/runtime/model.py): prepared off the
inference thread, smoke tested, swapped between two frames. Which release runs is the active
model's (``ModelKeeper.active.release``); older releases are pruned, the one before kept for an
instant rollback.

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
    ReleaseRefused,
    claimed_version,
)
from edge.runtime.worker import Backoff, Supervised, every

log = logging.getLogger(__name__)

LoadRelease = Callable[[ReleaseBundle], "Future[str | None]"]


class Updater:
    """The daemon's worker for ``[update]``: ``start``, ``stop`` and ``health`` like the others."""

    def __init__(
        self, config: Config, load_release: LoadRelease, models: ModelKeeper, startup_error: str | None = None
    ) -> None:
        settings = config.update
        self.interval_s = settings.interval_s
        self.store = ReleaseStore.of(config)
        self.channel = Channel(settings.channel, update_s3_settings(config))
        self.url = self.channel.location.url()
        self._load_release = load_release
        self._models = models
        self._lock = threading.Lock()
        self._error: str | None = None
        self._startup_error = startup_error  # a local release not used at start, until one is adopted
        self._refused: tuple[str, str] | None = None  # the pointer last refused (sha256) and why
        self._seen: str | None = None  # sha256 of the pointer last read, "" when there was none
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
        return UpdateHealth(worker, error)

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
        try:
            self._follow(ChannelPointer.verify(data, self.store.trusted))
        except ReleaseRefused as exc:
            self._refused = (digest, f"release {claimed_version(data)} refused: {exc}")
            self._report(self._refused[1])
        except DownloadInterrupted:
            return
        except (ReleaseError, OSError) as exc:  # S3 or the state directory failed: try again later
            self._report(
                f"release {claimed_version(data)} not downloaded (retrying in {self.interval_s:g} s): {exc}"
            )

    def _follow(self, pointer: ChannelPointer) -> None:
        state = self.store.read_state()
        if pointer.sequence < state.sequence:
            raise ReleaseRefused(
                f"the pointer's sequence {pointer.sequence} is older than {state.sequence}, adopted "
                "before (a replayed pointer?)"
            )
        if pointer.version == self._running:
            if pointer.sequence != state.sequence:
                self.store.write_state(dataclasses.replace(state, sequence=pointer.sequence))
            with self._lock:
                self._startup_error = None
            self._report(None)
            return
        try:
            installed = self.store.installed(pointer.version)
            if installed is not None and installed.release_sha256 != pointer.release_sha256:
                raise ReleaseRefused(f"its {RELEASE_FILE} is not the one the pointer names")
        except ReleaseRefused as exc:
            log.warning(
                "the local copy of release %s is damaged (%s); downloading it again", pointer.version, exc
            )
            installed = None
        if installed is None:
            log.info("release %s: downloading", pointer.version)
            installed = self.store.download(self.channel, pointer, self._stop)
        else:
            log.info("release %s: from the local copy", pointer.version)
        previous = self._running or None
        failure = self._load(installed)
        if failure is not None:
            raise ReleaseRefused(f"not loaded: {failure}")
        self.store.write_state(ChannelState(pointer.version, previous, pointer.sequence))
        self.store.prune({pointer.version} | ({previous} if previous else set()))

    def _load(self, installed: InstalledRelease) -> str | None:
        """Hand the release to the inference thread; its outcome is recorded there, before the
        health message that follows the swap."""
        future = self._load_release(installed.bundle)
        future.add_done_callback(lambda done: self._loaded(installed.version, done.result()))
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
