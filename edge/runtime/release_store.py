"""``<state_dir>/releases``: the kiosk's verified copies of channel releases, and which one runs.

A new release is downloaded into ``.download/<version>/`` (each file resumed with a ranged GET
after a restart), verified (signatures by a trusted key, every file's size and sha256, nothing
extra) and only then renamed to ``<version>/``: a kill at any moment leaves the old release, or a
verified new one, never a mix. ``.channel.json`` records which release runs, which ran before it
(kept for an instant rollback), the candidate run in shadow beside it, if any, and the sequence
of the pointer last adopted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.atomic import atomic_write_bytes, fsync_directory
from edge.core.config import Config, update_endpoint_url
from edge.runtime.channel import Channel
from edge.runtime.releases import (
    BUNDLE_DIR,
    RELEASE_FILE,
    RELEASES_DIR,
    ChannelError,
    ReleaseError,
    ReleaseManifest,
    ReleaseRef,
    ReleaseRefused,
    check_name,
    load_public_keys,
    release_key,
    verify_bundle_dir,
)
from edge.runtime.s3 import S3Settings

log = logging.getLogger(__name__)

STATE_FILE = ".channel.json"
DOWNLOAD_DIR = ".download"
PARTIAL_DIR = "partial"
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ReleaseBundle:
    """A verified release's bundle: while it runs, a reload keeps it and applies only the rest of
    ``[model]``."""

    version: str
    path: Path


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
    """``.channel.json``: the release running, the one before it, the last pointer's sequence, and
    the candidate run in shadow (its copy is kept too)."""

    current: str | None = None
    previous: str | None = None
    sequence: int = 0
    shadow: str | None = None

    @property
    def kept(self) -> set[str]:
        """The releases whose copies stay on the device."""
        return {version for version in (self.current, self.previous, self.shadow) if version}


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
            state = ChannelState(
                data.get("current"), data.get("previous"), int(data.get("sequence", 0)), data.get("shadow")
            )
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

    def download(self, channel: Channel, pointer: ReleaseRef, stop: threading.Event) -> InstalledRelease:
        """Fetch, verify and install the release a pointer names (resuming what a previous run
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
