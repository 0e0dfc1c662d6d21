"""A release channel's objects in S3 (``s3://BUCKET/PREFIX``), through the one S3 client
(edge/runtime/s3.py): what the kiosk's updater reads and ``asl-edge publish`` writes.
"""

from __future__ import annotations

import contextlib
from typing import Any

from edge.runtime.releases import MAX_DOCUMENT_BYTES, ChannelError, ReleaseError, ReleaseRefused
from edge.runtime.s3 import S3Location, S3Settings, checksum_headers, error_code, parse_s3_url, s3_client


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
