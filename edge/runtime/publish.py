"""``asl-edge publish``: a bundle becomes a signed release in a channel, on the workstation.

Order matters, so that a kiosk never sees half a release: the bundle's files first, then the
signed ``release.json``, and only then the signed pointer ``current.json``. Every release object
is written with ``If-None-Match: *``: a version, once written, is never overwritten (the server
refuses, as AWS S3, MinIO and SeaweedFS do). Rollback is a promotion: the pointer moves to a
release that is already in the channel, with the next sequence number. With ``--candidate`` the
release starts a staged rollout instead (edge/runtime/pointer_moves.py): the stable release stays,
and the candidate goes to a fraction of the kiosks.

A fine-tuned bundle (one whose manifest has a ``lineage``) is published only once ``asl-edge
evaluate`` recorded PASS for exactly its model and labels; ``force`` publishes it anyway, and its
signed release manifest then says so. The training weights (``checkpoint.pt``) stay behind, like
``engines/``: a kiosk never runs PyTorch, and a WLASL checkpoint would double a release's size for
bytes nobody reads there (the manifest still names them by sha256).
"""

from __future__ import annotations

import hashlib
import logging
import stat
from dataclasses import dataclass
from pathlib import Path

from edge.core.bundle import (
    CHECKPOINT_FILE,
    ENGINES_DIR,
    GATE_SECTION,
    LABELS_FILE,
    LINEAGE_SECTION,
    MODEL_FILE,
    Bundle,
    load_bundle,
    sha256_of,
)
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
    forced: str = ""  # the gate refusal --force overrode
    candidate: Candidate | None = None  # a staged rollout was started beside this stable release
    stable: str = ""


@dataclass(frozen=True)
class RolloutStart:
    """``publish --candidate --fraction F [--shadow]``: the share of kiosks, and whether they run
    the candidate in shadow."""

    fraction: float
    shadow: bool = False


def release_files(bundle_dir: Path) -> list[Path]:
    """The files a release carries: the bundle's top-level files; ``engines/`` (built for each
    device) and ``checkpoint.pt`` (training weights) stay behind and hidden files are skipped."""
    files = []
    for entry in sorted(bundle_dir.iterdir()):
        if entry.name.startswith(".") or entry.name == CHECKPOINT_FILE:
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


def gate_problem(bundle: Bundle) -> str | None:
    """Why a fine-tuned bundle may not be published yet; None for one that passed its gate, or
    one made by ``asl-edge convert`` (no lineage)."""
    if LINEAGE_SECTION not in bundle.manifest:
        return None
    path, gate = bundle.path, bundle.manifest.get(GATE_SECTION)
    if not isinstance(gate, dict):
        return (
            f"{path} is fine-tuned and has not passed 'asl-edge evaluate {path} --baseline BUNDLE "
            "--dataset DIR' (or publish --force)"
        )
    if gate.get("verdict") != "PASS":
        return f"{path}: asl-edge evaluate recorded gate {gate.get('verdict')}, not PASS (or publish --force)"
    for name, key in ((MODEL_FILE, "model_sha256"), (LABELS_FILE, "labels_sha256")):
        if gate.get(key) != sha256_of(path / name):
            return f"{path}: {name} changed after asl-edge evaluate recorded PASS; evaluate it again"
    return None


def check_bundle_loads(bundle_dir: Path, force: bool = False) -> tuple[str, str]:
    """The model id of a bundle that loads and answers a smoke inference on ONNX Runtime, as a
    kiosk would run it, and the gate refusal ``force`` overrode (empty when none); BundleError,
    BackendError or ReleaseError otherwise."""
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from edge.runtime.model import smoke_test

    bundle = load_bundle(bundle_dir)
    problem = gate_problem(bundle)
    if problem and not force:
        raise ReleaseError(f"refusing to publish: {problem}")
    backend = OnnxRuntimeBackend(bundle.model_path, bundle.spec)
    try:
        smoke_test(backend)
    finally:
        backend.close()
    return bundle.spec.model_id, problem or ""


def publish_release(
    bundle_dir: Path,
    channel_url: str,
    version: str,
    key_path: Path,
    settings: S3Settings,
    promote: bool = True,
    force: bool = False,
    rollout: RolloutStart | None = None,
) -> Published:
    """Upload ``bundle_dir`` as release ``version`` and (with ``promote``) make it current, or
    (with ``rollout``) start a staged rollout of it beside the stable release."""
    check_name(version, "version")
    private_key = load_private_key(key_path)
    model_id, forced = check_bundle_loads(bundle_dir, force)
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
    manifest = ReleaseManifest(version, utc_iso(), model_id, tuple(entries), forced=forced)
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
        forced,
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
