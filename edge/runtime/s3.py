"""The one way asl-edge talks to S3: a boto3 client for feedback sync, model publishing and the
kiosk's release updates alike.

Credentials: an AWS shared-credentials file when one is named, else the systemd credential
``s3-credentials`` (``$CREDENTIALS_DIRECTORY``) when it holds something, else the standard AWS chain
(environment, ``~/.aws``, an instance role). A reader that may go without (``asl-edge dataset
build`` on a public bucket or a local store without auth) asks for ``unsigned_without_credentials``:
when the chain finds nothing its requests go unsigned instead of failing before they are sent.
Timeouts are short and botocore's own retries off: each caller retries, or waits for its next
pass, in its own way. Checksums are ours (Content-MD5 and
SHA-256 on every PUT, checked by the server) rather than botocore's CRC32 trailer, which older
S3-compatible stores reject.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core import checks
from edge.core.credentials import systemd_credential
from edge.core.errors import AslEdgeError

SYSTEMD_CREDENTIAL = "s3-credentials"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0


class S3CredentialsError(AslEdgeError):
    """The configured credentials file cannot be used."""


class S3UrlError(AslEdgeError):
    """A string that should be ``s3://BUCKET/PREFIX`` is not."""


@dataclass(frozen=True)
class S3Settings:
    """Where and as whom: ``endpoint_url`` empty for AWS S3, ``region`` None for the AWS chain's."""

    endpoint_url: str = ""
    region: str | None = None
    credentials_file: str = ""
    unsigned_without_credentials: bool = False


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing "/"; may be empty

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def url(self, path: str = "") -> str:
        key = self.key(path) if path else self.prefix
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"


def parse_s3_url(url: str) -> S3Location:
    """``s3://BUCKET/PREFIX`` as a bucket and a prefix (slashes around the prefix dropped)."""
    problem = checks.s3_url(url) if url else f"{url!r} must start with s3://"
    if problem:
        raise S3UrlError(problem)
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return S3Location(bucket, "/".join(part for part in prefix.split("/") if part))


def credentials_path(configured: str) -> Path | None:
    """The configured file, else the systemd credential, else None (the AWS chain)."""
    if configured:
        return Path(configured)
    return systemd_credential(SYSTEMD_CREDENTIAL)


def read_credentials(path: Path) -> dict[str, str]:
    """The ``[default]`` keys of an AWS shared-credentials file (never logged)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise S3CredentialsError(f"sync.credentials_file: cannot read {path}: {type(exc).__name__}") from None
    section = parser["default"] if parser.has_section("default") else None
    if section is None or not section.get("aws_access_key_id") or not section.get("aws_secret_access_key"):
        raise S3CredentialsError(
            f"sync.credentials_file: {path} needs aws_access_key_id and aws_secret_access_key under [default]"
        )
    keys = {
        "aws_access_key_id": section["aws_access_key_id"],
        "aws_secret_access_key": section["aws_secret_access_key"],
    }
    if section.get("aws_session_token"):
        keys["aws_session_token"] = section["aws_session_token"]
    return keys


def s3_client(settings: S3Settings) -> Any:
    """A boto3 S3 client: one attempt per call, short timeouts, path-style for custom endpoints."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config as BotoConfig

    path = credentials_path(settings.credentials_file)
    keys = read_credentials(path) if path else {}
    session = boto3.session.Session(region_name=settings.region, **keys)
    unsigned = settings.unsigned_without_credentials and session.get_credentials() is None
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url or None,
        config=BotoConfig(
            signature_version=UNSIGNED if unsigned else None,
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if settings.endpoint_url else None,
        ),
    )


def checksum_headers(body: bytes) -> dict[str, str]:
    """Content-MD5 and SHA-256 of ``body`` as ``put_object`` arguments; the server refuses a body
    that does not match them."""
    return {
        "ContentMD5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        "ChecksumSHA256": base64.b64encode(hashlib.sha256(body).digest()).decode(),
    }


def error_code(exc: Exception) -> str:
    """The S3 error code of a botocore ClientError (``NoSuchKey``, ``PreconditionFailed``...), else ""."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def retryable(exc: Exception) -> bool:
    """A network failure, a server error or throttling: worth another attempt."""
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as EndpointUnreachable

    if isinstance(exc, (HTTPClientError, EndpointUnreachable)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return (
            status >= 500
            or status in (408, 429)
            or error_code(exc) in ("BadDigest", "RequestTimeout", "SlowDown")
        )
    return False
