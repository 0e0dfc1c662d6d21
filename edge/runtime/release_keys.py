"""The publisher's signing keys (``asl-edge keygen``, ``asl-edge publish``), on the workstation.

A kiosk never holds a private key: it only loads the public keys it trusts
(``edge.runtime.releases.load_public_keys``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from edge.runtime.releases import ReleaseError, key_id

PRIVATE_KEY_FILE = "asl-edge.key"
PUBLIC_KEY_FILE = "asl-edge.pub"


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
