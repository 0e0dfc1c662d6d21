"""Signed model releases: the channel's layout, the signed documents and their verification.

A channel ``s3://BUCKET/PREFIX`` holds each release under its own version, and one pointer::

    PREFIX/releases/<version>/bundle/<file>     the bundle's files (engines are built on each device)
    PREFIX/releases/<version>/release.json      signed: version, created, model id, every file's
                                                path, size and sha256, the signing key's id, and
                                                (optional) ``forced``: the gate refusal a publisher
                                                overrode
    PREFIX/current.json                         signed: the current version, the sha256 of its
                                                release.json and a sequence number

Documents are JSON objects of strings, integers and lists; the signature (Ed25519, from
``cryptography``) covers the canonical bytes of everything but the ``signature`` field itself:
sorted keys, no spaces, ASCII. A verifier re-serialises what it parsed, so what it verifies is
exactly what it then uses. A key's id is the first 16 hex digits of the SHA-256 of its raw public
bytes. The pointer's sequence grows with each promotion; a kiosk refuses a pointer older than the
one it adopted, so replaying an old pointer cannot downgrade it.

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
class ChannelPointer:
    """``current.json``: which release the channel's kiosks should run."""

    version: str
    release_sha256: str
    sequence: int
    promoted: str
    key_id: str = ""

    def document(self) -> dict[str, Any]:
        return {
            "schema": POINTER_SCHEMA,
            "version": self.version,
            "release_sha256": self.release_sha256,
            "sequence": self.sequence,
            "promoted": self.promoted,
        }

    @classmethod
    def verify(cls, data: bytes, trusted: dict[str, Any]) -> ChannelPointer:
        what = f"{POINTER_FILE} (pointing to {claimed_version(data)})"
        document = verify_document(data, POINTER_SCHEMA, trusted, what)
        version = _checked_name(_string(document, "version", what), "version")
        digest = _string(document, "release_sha256", what)
        if not SHA256_PATTERN.fullmatch(digest):
            raise ReleaseRefused(f"{what}: release_sha256 is not a sha256")
        return cls(
            version,
            digest,
            _integer(document, "sequence", what),
            _string(document, "promoted", what),
            str(document["key_id"]),
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
