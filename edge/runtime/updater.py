"""The kiosk follows a release channel (``[update] channel``): it adopts each new signed release
without stopping, or refuses it and says why.

On start and every ``interval_s`` a background thread reads the channel's signed pointer. A new
current release is downloaded into ``<state_dir>/releases/.download/<version>/`` (each file
resumed with a ranged GET after a restart), verified (signatures by a trusted key, every file's
size and sha256, nothing extra) and only then renamed to ``<state_dir>/releases/<version>/``: a
kill at any moment leaves the old release, or a verified new one, never a mix. The model reloader
(edge/runtime/reload.py) then loads it as it loads any bundle: prepared off the inference thread, smoke
tested, swapped between two frames. ``.channel.json`` records which release runs and which ran
before it (kept for an instant rollback); older ones are pruned.

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
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.atomic import atomic_write_bytes, fsync_directory
from edge.core.config import Config, update_endpoint_url
from edge.runtime.backends.select import model_cache_dir
from edge.runtime.releases import (
    BUNDLE_DIR,
    POINTER_FILE,
    RELEASE_FILE,
    RELEASES_DIR,
    Channel,
    ChannelError,
    ChannelPointer,
    ReleaseError,
    ReleaseManifest,
    ReleaseRefused,
    check_name,
    claimed_version,
    load_public_keys,
    release_key,
    verify_bundle_dir,
)
from edge.runtime.reload import ActiveModel, ReleaseBundle, open_model, prepare_model
from edge.runtime.s3 import S3Settings
from edge.runtime.worker import Backoff, Supervised

log = logging.getLogger(__name__)

STATE_FILE = ".channel.json"
DOWNLOAD_DIR = ".download"
PARTIAL_DIR = "partial"
CHUNK_BYTES = 1 << 20
NO_CHANNEL_HEALTH: dict[str, object] = {"model_version": "", "model_update_error": None}

LoadRelease = Callable[[ReleaseBundle], "Future[str | None]"]


class DownloadInterrupted(ReleaseError):
    """The daemon is stopping; the download resumes at the next start."""


@dataclass(frozen=True)
class InstalledRelease:
    """A verified release in the state directory."""

    version: str
    directory: Path
    manifest: ReleaseManifest
    release_sha256: str

    @property
    def bundle(self) -> ReleaseBundle:
        return ReleaseBundle(self.version, self.directory / BUNDLE_DIR)


@dataclass(frozen=True)
class ChannelState:
    """``.channel.json``: the release running, the one before it, the last pointer's sequence."""

    current: str | None = None
    previous: str | None = None
    sequence: int = 0


def update_s3_settings(config: Config) -> S3Settings:
    """The channel's endpoint, with the region and credentials of ``[sync]``."""
    return S3Settings(update_endpoint_url(config), config.sync.region, config.sync.credentials_file)


class ReleaseStore:
    """``<state_dir>/releases``: verified releases, the download in progress, which one runs."""

    def __init__(self, state_dir: Path, trusted: dict[str, Any]) -> None:
        self.root = state_dir / RELEASES_DIR
        self.trusted = trusted

    @classmethod
    def of(cls, config: Config) -> ReleaseStore:
        """The state directory's releases, verified with the keys ``[update] public_key`` names."""
        return cls(Path(config.storage.state_dir).expanduser(), load_public_keys(config.update.public_key))

    def read_state(self) -> ChannelState:
        path = self.root / STATE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = ChannelState(data.get("current"), data.get("previous"), int(data.get("sequence", 0)))
        except FileNotFoundError:
            return ChannelState()
        except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as exc:
            log.warning("%s is unreadable (%s); starting without a release", path, exc)
            return ChannelState()
        return state

    def write_state(self, state: ChannelState) -> None:
        atomic_write_bytes(
            self.root / STATE_FILE, (json.dumps(dataclasses.asdict(state), indent=2) + "\n").encode()
        )

    def installed(self, version: str) -> InstalledRelease | None:
        """The verified local copy of ``version``; None when there is none; ReleaseRefused when the
        copy no longer verifies (its files changed on disk, or its key is no longer trusted)."""
        directory = self.root / check_name(version, "version")
        try:
            data = (directory / RELEASE_FILE).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ReleaseRefused(f"{directory / RELEASE_FILE}: {exc.strerror or exc}") from exc
        manifest = ReleaseManifest.verify(data, self.trusted, version)
        verify_bundle_dir(directory / BUNDLE_DIR, manifest, engines_allowed=True)
        return InstalledRelease(version, directory, manifest, hashlib.sha256(data).hexdigest())

    def download(self, channel: Channel, pointer: ChannelPointer, stop: threading.Event) -> InstalledRelease:
        """Fetch, verify and install the release the pointer names (resuming what a previous run
        left); ReleaseRefused when it does not verify, ChannelError when S3 fails."""
        version = pointer.version
        staging = self.root / DOWNLOAD_DIR / version
        self._discard(self.root / DOWNLOAD_DIR, keep={version})
        data = channel.read_document(release_key(version, RELEASE_FILE))
        if data is None:
            raise ReleaseRefused(f"{channel.location.url(release_key(version, RELEASE_FILE))} is missing")
        if hashlib.sha256(data).hexdigest() != pointer.release_sha256:
            raise ReleaseRefused(f"{RELEASE_FILE} does not match the sha256 that the signed pointer names")
        manifest = ReleaseManifest.verify(data, self.trusted, version)
        (staging / BUNDLE_DIR).mkdir(parents=True, exist_ok=True)
        (staging / PARTIAL_DIR).mkdir(exist_ok=True)
        try:
            for item in manifest.files:
                done = staging / BUNDLE_DIR / item.path
                if not done.exists():
                    partial = staging / PARTIAL_DIR / item.path
                    self._fetch(channel, release_key(version, item.path), partial, item.size, stop)
                    os.replace(partial, done)
            (staging / PARTIAL_DIR).rmdir()
            verify_bundle_dir(staging / BUNDLE_DIR, manifest, engines_allowed=False)
        except ReleaseRefused:
            shutil.rmtree(staging, ignore_errors=True)
            self._tidy_downloads()
            raise
        atomic_write_bytes(staging / RELEASE_FILE, data)
        target = self.root / version
        shutil.rmtree(target, ignore_errors=True)  # a copy that no longer verified
        os.replace(staging, target)
        fsync_directory(self.root)
        self._tidy_downloads()
        log.info(
            "release %s downloaded and verified (%d files, %d bytes)",
            version,
            len(manifest.files),
            manifest.size,
        )
        return InstalledRelease(version, target, manifest, pointer.release_sha256)

    def _tidy_downloads(self) -> None:
        with contextlib.suppress(OSError):
            (self.root / DOWNLOAD_DIR).rmdir()  # only when no download waits there

    @staticmethod
    def _fetch(channel: Channel, key: str, partial: Path, size: int, stop: threading.Event) -> None:
        """Append the object's remaining bytes to ``partial`` (a ranged GET from its length)."""
        offset = partial.stat().st_size if partial.exists() else 0
        if offset > size:
            partial.unlink()
            offset = 0
        if offset < size:
            from botocore.exceptions import BotoCoreError

            body = channel.stream(key, offset)
            try:
                with open(partial, "ab") as out:
                    for chunk in body.iter_chunks(CHUNK_BYTES):
                        if stop.is_set():
                            raise DownloadInterrupted(f"stopping: {key} resumes at the next start")
                        offset += len(chunk)
                        if offset > size:
                            raise ReleaseRefused(
                                f"{channel.location.url(key)} is larger than its signed size"
                            )
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
            except BotoCoreError as exc:
                raise ChannelError(f"{channel.location.url(key)}: {exc}") from exc
            finally:
                body.close()
        if offset != size:
            raise ReleaseRefused(f"{channel.location.url(key)} is smaller than its signed size")

    def prune(self, keep: set[str]) -> None:
        """Delete every release but ``keep``, and downloads of other versions."""
        self._discard(self.root, keep | {STATE_FILE, DOWNLOAD_DIR})
        self._discard(self.root / DOWNLOAD_DIR, keep)

    @staticmethod
    def _discard(folder: Path, keep: set[str]) -> None:
        with contextlib.suppress(FileNotFoundError):
            for entry in folder.iterdir():
                if entry.name not in keep:
                    log.info("removing %s", entry)
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


@dataclass(frozen=True)
class Startup:
    """The model the daemon starts on, the release it came from, and why not a newer one."""

    model: ActiveModel
    release: InstalledRelease | None = None
    error: str | None = None


def open_first_model(config: Config) -> Startup:
    """Inference thread, at start: with a channel, the last verified release (else the one
    before it), else ``[model] bundle``. A release that fails here is reported, never fatal."""
    cache_dir = model_cache_dir(config.storage.state_dir)
    if not config.update.channel:
        return Startup(open_model(prepare_model(config.model), cache_dir))
    store = ReleaseStore.of(config)
    state = store.read_state()
    problems = []
    for version in (state.current, state.previous):
        if version is None:
            continue
        try:
            installed = store.installed(version)
            if installed is None:
                raise ReleaseRefused(f"{store.root / version} is missing")
            model_config = dataclasses.replace(config.model, bundle=str(installed.bundle.path))
            model = open_model(prepare_model(model_config), cache_dir)
        except Exception as exc:  # a broken local release must not stop the kiosk: try the next
            problems.append(f"release {version} (installed) not used: {exc}")
            log.warning(problems[-1])
            continue
        log.info("starting on release %s (%s)", version, model.model_id)
        return Startup(model, installed, "; ".join(problems) or None)
    model = open_model(prepare_model(config.model), cache_dir)
    return Startup(model, None, "; ".join(problems) or None)


class Updater:
    """The daemon's worker for ``[update]``: ``start``, ``stop`` and ``health`` like the others."""

    def __init__(self, config: Config, load_release: LoadRelease, startup: Startup) -> None:
        settings = config.update
        self.interval_s = settings.interval_s
        self.store = ReleaseStore.of(config)
        self.channel = Channel(settings.channel, update_s3_settings(config))
        self.url = self.channel.location.url()
        self._load_release = load_release
        self._lock = threading.Lock()
        self._running = startup.release.version if startup.release else ""
        self._error: str | None = None
        self._startup_error = startup.error  # a local release not used at start, until one is adopted
        self._refused: tuple[str, str] | None = None  # the pointer last refused (sha256) and why
        self._seen: str | None = None  # sha256 of the pointer last read, "" when there was none
        self._stop = threading.Event()
        self._worker: Supervised | None = None

    def health(self) -> dict[str, object]:
        with self._lock:
            errors = [error for error in (self._startup_error, self._error) if error]
            return {"model_version": self._running, "model_update_error": "; ".join(errors) or None}

    def _report(self, error: str | None) -> None:
        with self._lock:
            changed, self._error = error != self._error, error
        if error and changed:
            log.warning("model update: %s", error)

    def start(self) -> None:
        """Checks on start and every ``interval_s`` on a supervised thread: a check that crashes is
        reported in ``model_update_error`` and the worker restarts with backoff."""
        self._stop.clear()
        self._worker = Supervised(
            "updater", self._run, Backoff(min(1.0, self.interval_s), self.interval_s, 2 * self.interval_s)
        )
        self._worker.start()

    def stop(self, timeout_s: float = 1.5) -> None:
        """Ends the checks; a download in flight stops at its next chunk and resumes next start."""
        self._stop.set()
        if self._worker is not None:
            self._worker.stop(timeout_s)

    def _run(self, stop: threading.Event) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as exc:  # reported here, restarted by the supervisor
                self._report(f"checking channel {self.url} failed: {type(exc).__name__}: {exc}")
                raise
            if self._stop.wait(self.interval_s) or stop.is_set():
                return

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
                self._running, self._error, self._startup_error = version, None, None
            log.info("model update: release %s runs", version)
        else:
            self._report(f"release {version} refused: not loaded: {failure}")
