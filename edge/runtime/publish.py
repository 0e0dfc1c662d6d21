"""``asl-edge publish``: a bundle becomes a signed release in a channel, on the workstation.

Order matters, so that a kiosk never sees half a release: the bundle's files first, then the
signed ``release.json``, and only then the signed pointer ``current.json``. Every release object
is written with ``If-None-Match: *``: a version, once written, is never overwritten (the server
refuses, as AWS S3, MinIO and SeaweedFS do). Rollback is a promotion: the pointer moves to a
release that is already in the channel, with the next sequence number. With ``--candidate`` the
release starts a staged rollout instead (edge/runtime/pointer_moves.py): the stable release stays,
and the candidate goes to a fraction of the kiosks.
"""

from __future__ import annotations

import hashlib
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from edge.core.bundle import ENGINES_DIR, load_bundle
from edge.core.utc import utc_iso
from edge.runtime.channel import Channel
from edge.runtime.pointer_moves import point_to, rollout_base, start_candidate
from edge.runtime.release_keys import load_private_key
from edge.runtime.releases import (
    RELEASE_FILE,
    Candidate,
    ReleaseError,
    ReleaseFile,
    ReleaseManifest,
    check_name,
    key_id,
    release_key,
    sign_document,
)
from edge.runtime.s3 import S3Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """What ``publish`` and ``promote`` did, for the command's report."""

    channel: str
    version: str
    key_id: str
    sequence: int | None = None  # None: uploaded but not made current
    files: int = 0
    size: int = 0
    model_id: str = ""
    candidate: Candidate | None = None  # a staged rollout was started beside this stable release
    stable: str = ""


@dataclass(frozen=True)
class RolloutStart:
    """``publish --candidate --fraction F [--shadow]``: the share of kiosks, and whether they run
    the candidate in shadow."""

    fraction: float
    shadow: bool = False


def release_files(bundle_dir: Path) -> list[Path]:
    """The files a release carries: the bundle's top-level files; ``engines/`` stays behind
    (engines are built for each device) and hidden files are skipped."""
    files = []
    for entry in sorted(bundle_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        info = entry.lstat()
        if stat.S_ISDIR(info.st_mode) and entry.name == ENGINES_DIR:
            log.info("publish: %s is left out (engines are built on each device)", entry)
            continue
        if not stat.S_ISREG(info.st_mode):
            raise ReleaseError(f"{entry}: a release carries only the bundle's top-level files")
        check_name(entry.name, "bundle file name")
        files.append(entry)
    return files


def check_bundle_loads(bundle_dir: Path) -> str:
    """The model id of a bundle that loads and answers a smoke inference on ONNX Runtime, as a
    kiosk would run it; BundleError or BackendError otherwise."""
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from edge.runtime.model import smoke_test

    bundle = load_bundle(bundle_dir)
    backend = OnnxRuntimeBackend(bundle.model_path, bundle.spec)
    try:
        smoke_test(backend)
    finally:
        backend.close()
    return bundle.spec.model_id


def publish_release(
    bundle_dir: Path,
    channel_url: str,
    version: str,
    key_path: Path,
    settings: S3Settings,
    promote: bool = True,
    rollout: RolloutStart | None = None,
) -> Published:
    """Upload ``bundle_dir`` as release ``version`` and (with ``promote``) make it current, or
    (with ``rollout``) start a staged rollout of it beside the stable release."""
    check_name(version, "version")
    private_key = load_private_key(key_path)
    model_id = check_bundle_loads(bundle_dir)
    files = release_files(bundle_dir)
    channel = Channel(channel_url, settings)
    if rollout is not None:
        rollout_base(channel, version, private_key)
    if channel.exists(release_key(version)):
        raise ReleaseError(
            f"version {version} already exists in {channel.location.url()}; publish a new version, or "
            f"'asl-edge publish --promote {version}' to make it current again"
        )
    entries = []
    for path in files:
        body = path.read_bytes()  # hashed and uploaded from the same bytes
        entry = ReleaseFile(path.name, len(body), hashlib.sha256(body).hexdigest())
        channel.put(release_key(version, entry.path), body, "application/octet-stream", once=True)
        entries.append(entry)
        log.info("uploaded %s (%d bytes)", channel.location.url(release_key(version, entry.path)), entry.size)
    manifest = ReleaseManifest(version, utc_iso(), model_id, tuple(entries))
    channel.put(
        release_key(version, RELEASE_FILE),
        sign_document(manifest.document(), private_key),
        "application/json",
        once=True,
    )
    pointer = None
    if rollout is not None:
        pointer = start_candidate(channel, version, private_key, rollout.fraction, rollout.shadow)
    elif promote:
        pointer = point_to(channel, version, private_key, f"replaced by publish of {version}")
    return Published(
        channel.location.url(),
        version,
        key_id(private_key.public_key()),
        pointer.sequence if pointer else None,
        len(entries),
        manifest.size,
        model_id,
        pointer.candidate if pointer else None,
        pointer.version if pointer else "",
    )


def promote_release(channel_url: str, version: str, key_path: Path, settings: S3Settings) -> Published:
    """Make a release already in the channel current again (a rollback, or a staged release)."""
    check_name(version, "version")
    private_key = load_private_key(key_path)
    channel = Channel(channel_url, settings)
    pointer = point_to(channel, version, private_key, f"by hand: publish --promote {version}")
    return Published(channel.location.url(), version, key_id(private_key.public_key()), pointer.sequence)
