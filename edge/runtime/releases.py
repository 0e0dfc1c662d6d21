"""Signed model releases: the channel layout in S3, the signed documents, keys and verification.

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
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.core.bundle import sha256_of
from edge.core.errors import AslEdgeError
from edge.runtime.backends.tensorrt.engines import ENGINES_DIR
from edge.runtime.s3 import S3Location, S3Settings, checksum_headers, error_code, parse_s3_url, s3_client

RELEASE_SCHEMA = "asl-edge-release/1"
POINTER_SCHEMA = "asl-edge-channel/1"
POINTER_FILE = "current.json"
RELEASES_DIR = "releases"
RELEASE_FILE = "release.json"
BUNDLE_DIR = "bundle"
PRIVATE_KEY_FILE = "asl-edge.key"
PUBLIC_KEY_FILE = "asl-edge.pub"
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


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """What is signed: the document without ``signature``, sorted keys, no spaces, ASCII."""
    unsigned = {key: value for key, value in document.items() if key != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def key_id(public_key: Any) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keys(directory: Path) -> tuple[Path, Path, str]:
    """A new Ed25519 pair: ``asl-edge.key`` (PKCS#8 PEM, mode 0600, never overwritten) and
    ``asl-edge.pub`` (PEM). Returns both paths and the key id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private_path, public_path = directory / PRIVATE_KEY_FILE, directory / PUBLIC_KEY_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise ReleaseError(f"{path} exists; refusing to overwrite a key (move it away first)")
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ReleaseError(f"cannot create {directory}: {exc}") from exc
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    public_pem = private_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    for path, data, mode in ((private_path, private_pem, 0o600), (public_path, public_pem, 0o644)):
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise ReleaseError(f"{path} exists; refusing to overwrite a key (move it away first)") from None
        except OSError as exc:
            raise ReleaseError(f"cannot write {path}: {exc}") from exc
        with os.fdopen(descriptor, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # exactly this mode, whatever the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return private_path, public_path, key_id(private_key.public_key())


def load_private_key(path: Path) -> Any:
    """An unencrypted Ed25519 private key (PEM); refuses one that others may read."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ReleaseError(f"{path}: a private key must not be accessible by group or others (chmod 600)")
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ReleaseError(f"cannot read the signing key {path}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise ReleaseError(f"{path}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseError(f"{path}: not an Ed25519 key (make one with 'asl-edge keygen')")
    return key


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


class Channel:
    """A channel's objects, through the one S3 client (edge/runtime/s3.py); S3 failures become
    ChannelError naming the object."""

    def __init__(self, url: str, settings: S3Settings) -> None:
        self.location: S3Location = parse_s3_url(url)
        self.client: Any = s3_client(settings)

    def _call(self, operation: str, key: str, missing_ok: bool = False, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.location.bucket, **arguments)
        except (BotoCoreError, ClientError) as exc:
            code = error_code(exc)
            if missing_ok and code == "NoSuchKey":
                return None
            if code == "PreconditionFailed":
                raise ReleaseError(
                    f"{self.location.url(key)} exists already; releases are immutable"
                ) from exc
            if code == "InvalidRange":
                raise ReleaseRefused(f"{self.location.url(key)} is shorter than its signed size") from exc
            raise ChannelError(f"{self.location.url(key)}: {exc}") from exc

    def exists(self, prefix: str) -> bool:
        """Whether any object's key starts with ``prefix`` (inside the channel)."""
        listing = self._call("list_objects_v2", prefix, Prefix=self.location.key(prefix), MaxKeys=1)
        return bool(listing.get("KeyCount", 0))

    def read_document(self, key: str) -> bytes | None:
        """A pointer's or manifest's bytes; None when there is no such object. One larger than
        ``MAX_DOCUMENT_BYTES`` is refused unread: nobody's memory is filled through the bucket."""
        from botocore.exceptions import BotoCoreError

        response = self._call("get_object", key, missing_ok=True, Key=self.location.key(key))
        if response is None:
            return None
        try:
            with contextlib.closing(response["Body"]) as body:
                data = bytes(body.read(MAX_DOCUMENT_BYTES + 1))
        except BotoCoreError as exc:
            raise ChannelError(f"{self.location.url(key)}: {exc}") from exc
        if len(data) > MAX_DOCUMENT_BYTES:
            raise ReleaseRefused(f"{self.location.url(key)} is larger than {MAX_DOCUMENT_BYTES} bytes")
        return data

    def stream(self, key: str, offset: int) -> Any:
        """The object's streaming body from byte ``offset`` on."""
        ranged: dict[str, Any] = {"Range": f"bytes={offset}-"} if offset else {}
        return self._call("get_object", key, Key=self.location.key(key), **ranged)["Body"]

    def put(self, key: str, body: bytes, content_type: str, once: bool) -> None:
        """Upload with checksums the server checks; ``once``: refused when the key exists."""
        arguments: dict[str, Any] = {**checksum_headers(body), **({"IfNoneMatch": "*"} if once else {})}
        self._call(
            "put_object", key, Key=self.location.key(key), Body=body, ContentType=content_type, **arguments
        )
