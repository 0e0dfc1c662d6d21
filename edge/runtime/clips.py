"""Consent clips: the frames of a sign a user said was misread, kept only when they agreed to it.

Off by default (``[sync] clips``). The daemon remembers the cropped frames the model saw for its
last few predictions, in memory only; when feedback says a prediction was wrong *and* carries
``"consent": true``, that sign's frames are written as a small MP4 under ``state_dir/clips/`` and
named on the feedback row. Sync uploads the clip before the CSV batch that refers to it and then
deletes the local file; a clip that cannot be uploaded is deleted after ``clip_retention_days``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge.core.atomic import replacing
from edge.runtime.store import Store

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

CLIPS_DIR = "clips"  # under the state directory
REMEMBERED_PREDICTIONS = 4  # about 4.8 MB each at T=32, 224x224


class ClipKeeper:
    """The frames of the last ``remembered`` predictions (bounded memory), written out on request."""

    def __init__(self, folder: Path, remembered: int = REMEMBERED_PREDICTIONS) -> None:
        self.folder = folder
        self._frames: collections.OrderedDict[str, tuple[np.ndarray, float]] = collections.OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def remember(self, prediction_id: str, frames: list[np.ndarray], fps: float) -> None:
        """Keep a copy of a prediction's BGR crops; the oldest prediction's frames are forgotten."""
        import numpy as np  # here, not at the top: sync imports this module for CLIPS_DIR alone

        stacked = np.stack(frames)
        with self._lock:
            self._frames[prediction_id] = (stacked, fps)
            while len(self._frames) > self._remembered:
                self._frames.popitem(last=False)

    def write(self, prediction_id: str) -> str | None:
        """The clip's file name under ``folder``, or None when the frames are no longer in memory."""
        with self._lock:
            kept = self._frames.pop(prediction_id, None)
        if kept is None:
            return None
        frames, fps = kept
        name = f"{prediction_id}.mp4"
        height, width = frames.shape[1:3]
        # OpenCV picks the container by the suffix, so the temporary file ends in .mp4 too.
        with replacing(self.folder / name, suffix=".mp4") as partial:
            import cv2

            writer = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*"mp4v"), fps, (width, height))
            try:  # released on every way out, or the encoder keeps the file (and its memory) open
                if not writer.isOpened():
                    raise OSError("OpenCV cannot encode mp4v here")
                for frame in frames:
                    writer.write(frame)
            finally:
                writer.release()
        return name


def expire_clips(store: Store, folder: Path, retention_days: float, now: float | None = None) -> int:
    """Delete local clips older than ``retention_days``; their feedback rows stop naming them."""
    if not folder.is_dir():
        return 0
    cutoff = (now if now is not None else time.time()) - retention_days * 86400.0
    expired = 0
    for path in folder.glob("*.mp4"):  # with the .partial.mp4 files a crash left behind
        if path.stat().st_mtime < cutoff:
            store.forget_clip(path.name)
            path.unlink(missing_ok=True)
            expired += 1
    if expired:
        log.info("deleted %d clips older than %g days that were never uploaded", expired, retention_days)
    return expired
