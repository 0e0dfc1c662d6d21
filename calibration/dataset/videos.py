"""A consented clip is only an example when it is a video of sane frames.

The file must open and decode with OpenCV, hold at least ``MIN_FRAMES`` and at most
``MAX_FRAMES`` frames (the longest sign the segmenter cuts, 30 s, at 60 fps), all of one size. A
clip that fails is reported and skipped by the build, never a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIN_FRAMES = 2
MAX_FRAMES = 1800


class BadClip(Exception):
    """The clip cannot be an example; ``reason`` is the short code the manifest counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class ClipInfo:
    frames: int
    width: int
    height: int


def inspect_clip(path: Path, max_frames: int = MAX_FRAMES) -> ClipInfo:
    """Decode every frame (stopping past ``max_frames``); BadClip when the clip is unusable."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise BadClip("clip_unreadable", "OpenCV cannot open it as a video")
        frames, size = 0, None
        while frames <= max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            shape = frame.shape[:2]
            if size is None:
                size = shape
            elif shape != size:
                raise BadClip("clip_frame_sizes_differ", f"frame {frames} is {shape}, frame 0 {size}")
            frames += 1
    finally:
        capture.release()
    if size is None:
        raise BadClip("clip_unreadable", "no frame decodes")
    if frames < MIN_FRAMES:
        raise BadClip("clip_too_short", f"{frames} frame, at least {MIN_FRAMES} needed")
    if frames > max_frames:
        raise BadClip("clip_too_long", f"more than {max_frames} frames")
    return ClipInfo(frames, width=int(size[1]), height=int(size[0]))
