"""What the kiosks synced under ``s3://BUCKET/PREFIX``, listed and mirrored into a local cache.

DuckDB never reads S3 itself (that would install its httpfs extension: a download at run time).
Objects are listed and fetched with the one S3 client (edge/runtime/s3.py) into
``CACHE/objects/<key>``, keeping the Hive-style keys, and queried there. A rerun fetches only an
object that is missing, or whose size or ETag changed: the ETag of a single-part upload (what sync
writes) is the object's MD5, checked against the local copy; a multipart ETag is compared by size.
Copies of objects no longer in the bucket are deleted from the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibration.dataset.errors import SourceUnavailable
from edge.runtime.s3 import S3Location, S3Settings, error_code, s3_client

log = logging.getLogger(__name__)

OBJECTS_DIR = "objects"
REVOCATIONS_DIR = "revocations"
# Relative to the prefix: device=<id>/date=<YYYY-MM-DD>/<first_id>-<last_id>.csv (edge/runtime/sync.py)
BATCH_KEY = re.compile(r"device=[^/]+/date=(?P<day>\d{4}-\d{2}-\d{2})/[^/]+\.csv")
_PLAIN_MD5 = re.compile(r"[0-9a-f]{32}")
_CHUNK_BYTES = 1 << 20


class ObjectGone(Exception):
    """The object is not in the bucket (deleted, or never uploaded)."""


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int
    etag: str  # without the quotes S3 puts around it


@dataclass
class Listing:
    """The prefix's objects: CSV batches (with their partition day), revocation lists, the rest."""

    batches: list[tuple[RemoteObject, str]] = field(default_factory=list)
    revocations: list[RemoteObject] = field(default_factory=list)
    others: dict[str, RemoteObject] = field(default_factory=dict)

    def keys(self) -> set[str]:
        return {o.key for o, _ in self.batches} | {o.key for o in self.revocations} | set(self.others)


def safe_key(key: str) -> bool:
    """A key that maps to a path inside the cache: no empty, ``.`` or ``..`` segment, no NUL."""
    parts = key.split("/")
    return "\0" not in key and all(part not in ("", ".", "..") for part in parts)


class BucketMirror:
    """One prefix of one bucket, and its local copies under ``cache/objects``."""

    def __init__(self, location: S3Location, settings: S3Settings, cache: Path) -> None:
        self.location = location
        self.root = cache / OBJECTS_DIR
        self.client: Any = s3_client(settings)

    def url(self, key: str) -> str:
        return f"s3://{self.location.bucket}/{key}"

    def _call(self, operation: str, key: str, **arguments: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.location.bucket, **arguments)
        except (BotoCoreError, ClientError) as exc:
            if error_code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise ObjectGone(self.url(key)) from exc
            raise SourceUnavailable(f"{self.url(key)}: {exc}") from exc

    def list(self) -> Listing:
        """Every object under the prefix, page by page."""
        prefix = self.location.key("")
        listing = Listing()
        token: dict[str, str] = {}
        while True:
            page = self._call("list_objects_v2", prefix, Prefix=prefix, **token)
            for item in page.get("Contents", []):
                found = RemoteObject(item["Key"], int(item["Size"]), str(item.get("ETag", "")).strip('"'))
                relative = found.key[len(prefix) :]
                batch = BATCH_KEY.fullmatch(relative)
                if found.key.endswith("/"):
                    continue  # a "folder" marker some S3 consoles create
                if not safe_key(found.key):
                    log.warning("%s: a key that cannot be a local path; ignored", self.url(found.key))
                elif batch:
                    listing.batches.append((found, batch["day"]))
                elif relative.startswith(REVOCATIONS_DIR + "/"):
                    listing.revocations.append(found)
                else:
                    listing.others[found.key] = found
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        listing.batches.sort(key=lambda entry: entry[0].key)
        listing.revocations.sort(key=lambda entry: entry.key)
        return listing

    def head(self, key: str) -> RemoteObject:
        """One object the listing did not show (a key outside the prefix); ObjectGone if absent."""
        found = self._call("head_object", key, Key=key)
        return RemoteObject(key, int(found["ContentLength"]), str(found.get("ETag", "")).strip('"'))

    def local_path(self, key: str) -> Path:
        return self.root / key

    def current(self, item: RemoteObject) -> bool:
        """The local copy has the object's size and, for a single-part ETag, its MD5."""
        path = self.local_path(item.key)
        try:
            if path.stat().st_size != item.size:
                return False
        except OSError:
            return False
        if not _PLAIN_MD5.fullmatch(item.etag):
            return True
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK_BYTES):
                digest.update(chunk)
        return digest.hexdigest() == item.etag

    def fetch(self, item: RemoteObject) -> bool:
        """Make the local copy current; True when it was downloaded now, False when it already was.
        ObjectGone when the bucket no longer has it."""
        if self.current(item):
            return False
        path = self.local_path(item.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        response = self._call("get_object", item.key, Key=item.key)
        partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        from botocore.exceptions import BotoCoreError

        try:
            with contextlib.closing(response["Body"]) as body, partial.open("wb") as out:
                shutil.copyfileobj(body, out, _CHUNK_BYTES)
            os.replace(partial, path)
        except BotoCoreError as exc:
            raise SourceUnavailable(f"{self.url(item.key)}: {exc}") from exc
        finally:
            partial.unlink(missing_ok=True)
        return True

    def cached(self) -> Iterator[Path]:
        """Every local copy in the cache."""
        if self.root.is_dir():
            yield from (path for path in self.root.rglob("*") if path.is_file())

    def prune(self, keep: set[str]) -> int:
        """Delete the local copies of objects not in ``keep`` (gone from the bucket, or withdrawn)."""
        deleted = 0
        for path in list(self.cached()):
            if path.relative_to(self.root).as_posix() not in keep:
                path.unlink(missing_ok=True)
                deleted += 1
        return deleted
