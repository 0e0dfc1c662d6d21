"""Signed model releases: the channel's layout, the signed documents and their verification.

A channel ``s3://BUCKET/PREFIX`` holds each release under its own version, and one pointer::

    PREFIX/releases/<version>/bundle/<file>     the bundle's files (engines are built on each device)
    PREFIX/releases/<version>/release.json      signed: version, created, model id, every file's
                                                path, size and sha256, the signing key's id, and
                                                (optional) ``forced``: the gate refusal a publisher
                                                overrode
    PREFIX/current.json                         signed: the current (stable) version, the sha256
                                                of its release.json, a sequence number, and
                                                optionally a candidate in a staged rollout and the
                                                rollout's recent decisions

Documents are JSON objects of strings, integers, lists and objects (a candidate's rollout
``fraction`` is the one number with a fraction: Python writes and reads it back to the same
text); the signature (Ed25519, from
``cryptography``) covers the canonical bytes of everything but the ``signature`` field itself:
sorted keys, no spaces, ASCII. A verifier re-serialises what it parsed, so what it verifies is
exactly what it then uses. A key's id is the first 16 hex digits of the SHA-256 of its raw public
bytes. The pointer's sequence grows with each promotion; a kiosk refuses a pointer older than the
one it adopted, so replaying an old pointer cannot downgrade it. The pointer's ``candidate`` and
``history`` were added later as optional fields: a kiosk of the first format verifies the whole
document (they are signed with the rest) and reads only what it knows, so it runs the stable
release.

The publisher's keys are made and read in edge/runtime/release_keys.py, the channel's objects in
S3 are read and written by edge/runtime/channel.py; kiosks and the publisher share this format.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.bundle import ENGINES_DIR, sha256_of
from edge.core.errors import AslEdgeError

RELEASE_SCHEMA = "asl-edge-release/1"
POINTER_SCHEMA = "asl-edge-channel/1"
POINTER_FILE = "current.json"
RELEASES_DIR = "releases"
RELEASE_FILE = "release.json"
BUNDLE_DIR = "bundle"
# Versions and file names become S3 key parts and directory names: one rule for both, which
# leaves no room for "/", "..", hidden names or characters some S3 stores mangle.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_DOCUMENT_BYTES = 1 << 20  # a pointer or release manifest; a manifest lists a few files
HISTORY_LIMIT = 20  # rollout decisions a pointer keeps (the oldest are dropped)


class ReleaseError(AslEdgeError):
    """A release cannot be made, published or read (keys, names, the channel's state)."""


class ReleaseRefused(ReleaseError):
    """A release failed verification: it is never loaded, and skipped until the channel moves on."""


class ChannelError(ReleaseError):
    """S3 did not answer or refused a request (network, credentials, a missing bucket): try later."""


def check_name(value: str, what: str) -> str:
    """``value`` when it is a safe version or file name, else ReleaseError naming the rule."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ReleaseError(
            f"{what} {value!r} must be 1-64 ASCII letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return value


def release_key(version: str, name: str = "") -> str:
    """The key of a release's object inside the channel prefix (the version is always in it)."""
    base = f"{RELEASES_DIR}/{check_name(version, 'version')}/"
    if name == RELEASE_FILE:
        return base + RELEASE_FILE
    return base + (f"{BUNDLE_DIR}/{check_name(name, 'file name')}" if name else "")


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """What is signed: the document without ``signature``, sorted keys, no spaces, ASCII."""
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def key_id(public_key: Any) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_keys(paths: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The trusted keys by id; several allow a key rotation (old and new trusted at once)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys: dict[str, Any] = {}
    for name in paths:
        try:
            key = load_pem_public_key(Path(name).read_bytes())
        except OSError as exc:
            raise ReleaseError(f"update.public_key: cannot read {name}: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise ReleaseError(f"update.public_key: {name} is not a PEM public key ({exc})") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ReleaseError(f"update.public_key: {name} is not an Ed25519 key")
        keys[key_id(key)] = key
    return keys


def sign_document(document: dict[str, Any], private_key: Any) -> bytes:
    """The document with its ``key_id`` and ``signature``, as the bytes to upload."""
    signed = {**document, "key_id": key_id(private_key.public_key())}
    signature = private_key.sign(canonical_bytes(signed))
    signed["signature"] = base64.b64encode(signature).decode("ascii")
    return (json.dumps(signed, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _parse(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ReleaseRefused(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise ReleaseRefused(f"{what} is not a JSON object")
    return document


def claimed_version(data: bytes) -> str:
    """The version a document names, unverified: only to say which release was refused."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        return "?"
    version = document.get("version") if isinstance(document, dict) else None
    return version if isinstance(version, str) and NAME_PATTERN.fullmatch(version) else "?"


def verify_document(data: bytes, schema: str, trusted: dict[str, Any], what: str) -> dict[str, Any]:
    """The parsed document when a trusted key signed it; ReleaseRefused saying why not."""
    from cryptography.exceptions import InvalidSignature

    document = _parse(data, what)
    if document.get("schema") != schema:
        raise ReleaseRefused(f"{what} has schema {document.get('schema')!r}, expected {schema!r}")
    signature, signer = document.get("signature"), document.get("key_id")
    if not isinstance(signature, str) or not signature:
        raise ReleaseRefused(f"{what} is not signed")
    key = trusted.get(signer) if isinstance(signer, str) else None
    if key is None:
        raise ReleaseRefused(
            f"{what} is signed by key {signer!r}, which is not trusted "
            f"(trusted: {', '.join(sorted(trusted))})"
        )
    try:
        key.verify(base64.b64decode(signature, validate=True), canonical_bytes(document))
    except (InvalidSignature, ValueError):
        raise ReleaseRefused(f"{what}: bad signature (key {signer})") from None
    return document


def _string(document: dict[str, Any], name: str, what: str) -> str:
    value = document.get(name)
    if not isinstance(value, str):
        raise ReleaseRefused(f"{what}: {name} must be a string")
    return value


def _integer(document: dict[str, Any], name: str, what: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReleaseRefused(f"{what}: {name} must be a non-negative integer")
    return value


def _fraction(document: dict[str, Any], name: str, what: str) -> float:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ReleaseRefused(f"{what}: {name} must be a number above 0 and at most 1")
    return float(value)


def _sha256(document: dict[str, Any], name: str, what: str) -> str:
    digest = _string(document, name, what)
    if not SHA256_PATTERN.fullmatch(digest):
        raise ReleaseRefused(f"{what}: {name} is not a sha256")
    return digest


def _checked_name(value: str, what: str) -> str:
    try:
        return check_name(value, what)
    except ReleaseError as exc:
        raise ReleaseRefused(str(exc)) from None


@dataclass(frozen=True)
class ReleaseFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ReleaseManifest:
    """``release.json``: what a release is made of, signed by the publisher."""

    version: str
    created: str
    model_id: str
    files: tuple[ReleaseFile, ...]
    key_id: str = ""
    forced: str = ""  # why the publisher's gate refused the bundle, when --force overrode it

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema": RELEASE_SCHEMA,
            "version": self.version,
            "created": self.created,
            "model_id": self.model_id,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        if self.forced:
            document["forced"] = self.forced
        return document

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @classmethod
    def verify(cls, data: bytes, trusted: dict[str, Any], version: str) -> ReleaseManifest:
        """The manifest of ``version`` when it is signed by a trusted key and well formed."""
        what = f"{RELEASE_FILE} of {version}"
        document = verify_document(data, RELEASE_SCHEMA, trusted, what)
        if document.get("version") != version:
            raise ReleaseRefused(f"{what} is for version {document.get('version')!r}")
        entries = document.get("files")
        if not isinstance(entries, list) or not entries:
            raise ReleaseRefused(f"{what}: files must be a non-empty list")
        files = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise ReleaseRefused(f"{what}: each file must be an object")
            name = _checked_name(_string(entry, "path", what), "file name")
            digest = _string(entry, "sha256", what)
            if not SHA256_PATTERN.fullmatch(digest):
                raise ReleaseRefused(f"{what}: {name} has no valid sha256")
            files.append(ReleaseFile(name, _integer(entry, "size", what), digest))
        if len({f.path for f in files}) != len(files):
            raise ReleaseRefused(f"{what} lists a file twice")
        return cls(
            version,
            _string(document, "created", what),
            _string(document, "model_id", what),
            tuple(files),
            str(document["key_id"]),
            _string(document, "forced", what) if "forced" in document else "",
        )


@dataclass(frozen=True)
class ReleaseRef:
    """A release as a pointer names it: its version and the sha256 of its ``release.json``."""

    version: str
    release_sha256: str


@dataclass(frozen=True)
class Candidate:
    """A release in a staged rollout: the kiosks whose cohort position (edge/runtime/cohort.py) is
    below ``fraction`` run it, or with ``shadow`` run it beside the stable one without showing its
    words. ``step`` counts the rollout's steps (1 when it starts); the bake time of a step counts
    from ``stepped``."""

    version: str
    release_sha256: str
    fraction: float
    shadow: bool
    started: str
    step: int = 1
    stepped: str = ""

    @property
    def ref(self) -> ReleaseRef:
        return ReleaseRef(self.version, self.release_sha256)

    @property
    def step_began(self) -> str:
        """When the current step began (the first one began with the rollout)."""
        return self.stepped or self.started

    def document(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "release_sha256": self.release_sha256,
            "fraction": self.fraction,
            "shadow": self.shadow,
            "started": self.started,
            "step": self.step,
            "stepped": self.step_began,
        }

    @classmethod
    def parse(cls, value: Any, what: str) -> Candidate:
        """The candidate object of a verified pointer; unknown keys are ignored (added later)."""
        what = f"{what}: candidate"
        if not isinstance(value, dict):
            raise ReleaseRefused(f"{what} must be an object")
        shadow = value.get("shadow")
        if not isinstance(shadow, bool):
            raise ReleaseRefused(f"{what}: shadow must be true or false")
        started = _string(value, "started", what)
        return cls(
            _checked_name(_string(value, "version", what), "version"),
            _sha256(value, "release_sha256", what),
            _fraction(value, "fraction", what),
            shadow,
            started,
            max(1, _integer(value, "step", what)),
            _string(value, "stepped", what) if "stepped" in value else started,
        )


@dataclass(frozen=True)
class RolloutEntry:
    """One decision that changed the pointer: what was decided about which candidate, why, with
    which thresholds (the flags of ``asl-edge rollout step``), when, and at which sequence."""

    decision: str
    version: str
    why: str
    thresholds: dict[str, Any]
    at: str
    sequence: int

    def document(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "version": self.version,
            "why": self.why,
            "thresholds": dict(self.thresholds),
            "at": self.at,
            "sequence": self.sequence,
        }

    @classmethod
    def parse(cls, value: Any, what: str) -> RolloutEntry:
        what = f"{what}: history"
        if not isinstance(value, dict) or not isinstance(value.get("thresholds", {}), dict):
            raise ReleaseRefused(f"{what} entries must be objects")
        return cls(
            _string(value, "decision", what),
            _string(value, "version", what),
            _string(value, "why", what),
            dict(value.get("thresholds", {})),
            _string(value, "at", what),
            _integer(value, "sequence", what),
        )


@dataclass(frozen=True)
class ChannelPointer:
    """``current.json``: which release the channel's kiosks should run (``version``, the stable
    one), and the candidate of a staged rollout with the rollout's recent decisions."""

    version: str
    release_sha256: str
    sequence: int
    promoted: str
    key_id: str = ""
    candidate: Candidate | None = None
    history: tuple[RolloutEntry, ...] = ()

    @property
    def ref(self) -> ReleaseRef:
        return ReleaseRef(self.version, self.release_sha256)

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "schema": POINTER_SCHEMA,
            "version": self.version,
            "release_sha256": self.release_sha256,
            "sequence": self.sequence,
            "promoted": self.promoted,
        }
        if self.candidate is not None:
            document["candidate"] = self.candidate.document()
        if self.history:
            document["history"] = [entry.document() for entry in self.history[-HISTORY_LIMIT:]]
        return document

    @classmethod
    def verify(cls, data: bytes, trusted: dict[str, Any]) -> ChannelPointer:
        what = f"{POINTER_FILE} (pointing to {claimed_version(data)})"
        document = verify_document(data, POINTER_SCHEMA, trusted, what)
        version = _checked_name(_string(document, "version", what), "version")
        history = document.get("history", [])
        if not isinstance(history, list):
            raise ReleaseRefused(f"{what}: history must be a list")
        candidate = document.get("candidate")
        return cls(
            version,
            _sha256(document, "release_sha256", what),
            _integer(document, "sequence", what),
            _string(document, "promoted", what),
            str(document["key_id"]),
            None if candidate is None else Candidate.parse(candidate, what),
            tuple(RolloutEntry.parse(entry, what) for entry in history),
        )

    @staticmethod
    def sequence_of(data: bytes) -> int:
        """The sequence of a pointer read back by a publisher (not verified: it may hold another
        publisher's key); ReleaseError when the object is not a pointer at all."""
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, ValueError):
            document = None
        sequence = document.get("sequence") if isinstance(document, dict) else None
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise ReleaseError(f"{POINTER_FILE} is not a channel pointer; fix or delete it first")
        return sequence


def verify_bundle_dir(directory: Path, manifest: ReleaseManifest, engines_allowed: bool) -> None:
    """The directory holds exactly the manifest's files, each of its size and sha256 (and, once
    installed, the ``engines/`` folder built on this device); ReleaseRefused otherwise."""
    expected = {f.path: f for f in manifest.files}
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise ReleaseRefused(f"{directory}: cannot list: {exc.strerror or exc}") from exc
    for entry in entries:
        info = entry.lstat()
        if entry.name == ENGINES_DIR and engines_allowed and stat.S_ISDIR(info.st_mode):
            continue
        if entry.name not in expected or not stat.S_ISREG(info.st_mode):
            raise ReleaseRefused(f"{entry.name}: not a file of the signed release manifest")
    for item in manifest.files:
        path = directory / item.path
        if not path.is_file():
            raise ReleaseRefused(f"{item.path}: missing")
        size = path.stat().st_size
        if size != item.size:
            raise ReleaseRefused(f"{item.path}: {size} bytes, the signed release manifest says {item.size}")
        digest = sha256_of(path)
        if digest != item.sha256:
            raise ReleaseRefused(
                f"{item.path}: sha256 {digest[:12]}... does not match the signed release manifest "
                f"({item.sha256[:12]}...)"
            )
