"""Video files and URLs as sequences of BGR frames (OpenCV decoding, for batch recognition).

The live daemon captures through GStreamer; this module serves ``asl-edge recognize``, which reads
whole files the way the cloud prototype did.
"""

from __future__ import annotations

import contextlib
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import VideoError

DOWNLOAD_CHUNK_BYTES = 1 << 16


def is_url(source: str) -> bool:
    return urllib.parse.urlsplit(source).scheme in ("http", "https")


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the BGR uint8 frames of a video file; raises ``VideoError`` if none can be decoded."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoError(f"{path}: cannot open as video (corrupt, empty or unsupported format)")
        decoded = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            decoded += 1
            yield frame
        if decoded == 0:
            raise VideoError(f"{path}: no frames could be decoded (empty or corrupt video)")
    finally:
        capture.release()


@contextlib.contextmanager
def fetched(url: str, timeout_s: float = 30.0, max_bytes: int = 512 << 20) -> Iterator[Path]:
    """Download ``url`` into a temporary file that is removed on exit.

    Bounded in time per read and in size, so a slow or endless server cannot hang or fill the disk.
    """
    suffix = Path(urllib.parse.urlsplit(url).path).suffix[:8]
    with tempfile.TemporaryDirectory(prefix="asl-edge-") as folder:
        target = Path(folder) / ("download" + suffix)
        request = urllib.request.Request(url, headers={"User-Agent": "asl-edge"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response, open(target, "wb") as out:
                copied = 0
                while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                    copied += len(chunk)
                    if copied > max_bytes:
                        raise VideoError(f"{url}: larger than {max_bytes >> 20} MiB, not downloaded")
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise VideoError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise VideoError(f"{url}: cannot download: {exc.reason}") from exc
        except (TimeoutError, OSError) as exc:
            raise VideoError(f"{url}: download failed: {exc}") from exc
        yield target
