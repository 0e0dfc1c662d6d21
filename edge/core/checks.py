"""Value rules of the config schema that need more than a type and a range: source URIs, host
names, URLs, MQTT topics and S3 bucket names. Each returns None for a good value, else one short
problem that says what a good value looks like. The schema (``edge.core.config``) attaches them to
its fields, so ``check-config`` and ``run`` refuse exactly the same values, and capture uses the
same source rule when it builds its pipeline.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

SOURCE_SCHEMES = ("csi", "v4l2", "file", "rtsp", "test")
SOURCE_FORMS = "csi://N, v4l2:///dev/videoN, file:///path, rtsp://host/path, test:// or gst:<pipeline>"
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def source_uri(uri: str) -> str | None:
    """One of the source forms (a ``gst:`` pipeline ending in ``appsink name=sink``)."""
    if uri.startswith("gst:"):
        description = uri[4:]
        if "appsink" not in description or "name=sink" not in description:
            return f"{uri!r}: a gst: pipeline must end in 'appsink name=sink'"
        return None
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme not in SOURCE_SCHEMES:
        return f"{uri!r} is not a supported source; use {SOURCE_FORMS}"
    if parsed.scheme == "file" and not parsed.path.startswith("/"):
        return f"{uri!r}: a file source needs an absolute path (file:///path/video.mp4)"
    if parsed.scheme == "rtsp" and host_name(parsed.hostname or "") is not None:
        return f"{uri!r}: an rtsp source needs a host (rtsp://host:port/path)"
    if parsed.scheme == "csi" and not (parsed.netloc or "0").isdigit():
        return f"{uri!r}: csi://N needs the sensor number N"
    return None


def host_name(host: str) -> str | None:
    """A DNS name or an IP address literal."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if 0 < len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels):
        return None
    return f"{host!r} is not a host name or IP address"


def http_url(url: str) -> str | None:
    """Empty, or an http(s) URL with a host (and perhaps a port and a path)."""
    if not url:
        return None
    try:
        parsed = urllib.parse.urlsplit(url)
        port_problem = parsed.port is not None and not 0 < parsed.port < 65536
    except ValueError:
        return f"{url!r} has an invalid port"
    if parsed.scheme not in ("http", "https") or host_name(parsed.hostname or "") is not None or port_problem:
        return f"{url!r} is not an http(s) URL like https://s3.example.com or http://127.0.0.1:9000"
    return None


def topic_prefix(prefix: str) -> str | None:
    """Empty (the default prefix), or topic levels without wildcards, empty levels or a leading $."""
    if not prefix:
        return None
    if any(ch in prefix for ch in "+#\0") or prefix.startswith("$") or "" in prefix.split("/"):
        return (
            f"{prefix!r} must be topic levels separated by '/', without + or # wildcards, empty levels "
            "or a leading $"
        )
    return None


def discovery_prefix(prefix: str) -> str | None:
    """Home Assistant's discovery prefix: topic levels as for ``topic_prefix``, never empty."""
    return f"{prefix!r}: the discovery prefix cannot be empty" if not prefix else topic_prefix(prefix)


def prom_file(path: str) -> str | None:
    """Empty (metrics off), or a file node_exporter's textfile collector reads: ``*.prom``."""
    if path and not path.endswith(".prom"):
        return f"{path!r} must end in .prom (node_exporter's textfile collector reads only *.prom files)"
    return None


def bucket_name(bucket: str) -> str | None:
    """Empty (sync off), or an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-'."""
    if not bucket or (_BUCKET.fullmatch(bucket) and ".." not in bucket):
        return None
    return f"{bucket!r} is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')"


def s3_url(url: str) -> str | None:
    """Empty, or ``s3://BUCKET/PREFIX`` (a valid bucket name; no '.' or '..' in the prefix)."""
    if not url:
        return None
    if not url.startswith("s3://"):
        return f"{url!r} must start with s3://"
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket or bucket_name(bucket) is not None:
        return f"{url!r}: the bucket name must be 3-63 lower-case letters, digits, '.' and '-'"
    if any(part in (".", "..") for part in prefix.split("/")):
        return f"{url!r}: '.' and '..' are not allowed in the prefix"
    return None


def ip_address(value: str) -> str | None:
    """An IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1)"
    return None
