"""The self-view: a small mirrored live picture of the camera, so the signer can check their framing.

The inference thread only hands over a reference to the frame it already has (``offer``: no copy,
no encoding, nothing at all while no page watches); a thread of its own scales it to ``WIDTH``
pixels, mirrors it (people expect to see themselves as in a mirror), marks the model's crop, and
encodes a JPEG at most ``FPS`` times a second. Frames live in memory only, as the latest JPEG for
the pages that watch; nothing is ever written to disk.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np

log = logging.getLogger(__name__)

WIDTH = 320
FPS = 12.0
JPEG_QUALITY = 70
CROP_COLOUR = (0, 212, 255)  # BGR: the page's accent yellow
RATE_WINDOW_S = 2.0
Box = tuple[int, int, int, int]  # x, y, width, height in the frame's pixels


def render(image: np.ndarray, crop: Box | None, width: int = WIDTH) -> bytes:
    """The mirrored, scaled JPEG of a BGR frame with the crop's outline."""
    height, frame_width = image.shape[:2]
    scale = width / frame_width
    small = cv2.resize(image, (width, max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.flip(small, 1)
    if crop is not None:
        x, y, w, h = crop
        left = width - round((x + w) * scale)  # mirrored
        top, right, bottom = round(y * scale), width - round(x * scale) - 1, round((y + h) * scale) - 1
        cv2.rectangle(small, (left, top), (right, bottom), CROP_COLOUR, 2)
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode a JPEG")
    return jpeg.tobytes()


class SelfView:
    """``start``/``stop`` with the screen; ``offer`` from the inference thread; ``frames`` for each
    page that watches."""

    def __init__(self, fps: float = FPS, width: int = WIDTH) -> None:
        self.interval_s = 1.0 / fps
        self.width = width
        self.frames_encoded = 0
        self._cond = threading.Condition()
        self._pending: tuple[np.ndarray, Box | None] | None = None
        self._latest: tuple[int, bytes] | None = None
        self._viewers = 0
        self._next_due = float("-inf")
        self._encoded_at: collections.deque[float] = collections.deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="self-view", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def viewers(self) -> int:
        return self._viewers

    def offer(self, image: np.ndarray, crop: Box | None) -> None:
        """A frame the camera delivered (never modified afterwards): taken when a page watches and
        the last one taken is ``1/fps`` old, else ignored. Never blocks."""
        if self._viewers == 0:
            return
        now = time.monotonic()
        if now < self._next_due:
            return
        # On a schedule, not "an interval after the last": a 30 fps camera then gives 12 fps, not
        # 10; after a pause the schedule starts again from now.
        self._next_due = max(self._next_due + self.interval_s, now + self.interval_s / 2)
        with self._cond:
            self._pending = (image, crop)
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                image, crop = self._pending  # type: ignore[misc]
                self._pending = None
            try:
                jpeg = render(image, crop, self.width)
            except (cv2.error, ValueError) as exc:  # one bad frame: the next one is tried
                log.warning("self-view: a frame could not be encoded: %s", exc)
                continue
            now = time.monotonic()
            with self._cond:
                sequence = self._latest[0] + 1 if self._latest is not None else 1
                self._latest = (sequence, jpeg)
                self.frames_encoded += 1
                self._encoded_at.append(now)
                self._cond.notify_all()

    def frames(self, stop: threading.Event, gone: Callable[[], bool], poll_s: float = 0.2) -> Iterator[bytes]:
        """Each new JPEG for one page, until ``stop`` is set, ``gone()`` says the page left, or the
        self-view stops (all looked at every ``poll_s``); the page counts as watching meanwhile."""
        with self._cond:
            self._viewers += 1
        try:
            seen = 0
            while not stop.is_set() and not gone():
                latest = self._next_after(seen, poll_s)
                if latest is None:
                    if self._stopping:
                        return
                    continue
                seen = latest[0]
                yield latest[1]
        finally:
            with self._cond:
                self._viewers -= 1
                if self._viewers == 0:
                    self._latest = None  # nobody watches: no picture of the signer stays in memory

    def _next_after(self, seen: int, timeout_s: float) -> tuple[int, bytes] | None:
        """The latest JPEG if it is newer than ``seen``, waiting up to ``timeout_s`` for one."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._stopping or (self._latest is not None and self._latest[0] > seen), timeout_s
            )
            latest = self._latest
            return latest if latest is not None and latest[0] > seen and not self._stopping else None

    def fps(self) -> float:
        """Frames encoded per second over the last ``RATE_WINDOW_S`` (0 while nobody watches)."""
        now = time.monotonic()
        with self._cond:
            while self._encoded_at and self._encoded_at[0] < now - RATE_WINDOW_S:
                self._encoded_at.popleft()
            return round(len(self._encoded_at) / RATE_WINDOW_S, 2)
