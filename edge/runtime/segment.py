"""Motion-gated sign segmentation: finds when a sign starts and ends in a continuous stream.

A cheap motion measure on a small grey copy of each frame (the fraction of pixels whose grey level
changed by more than ``pixel_threshold`` since the previous frame; a fraction, because camera
noise moves every pixel a little) drives a small state machine: motion above ``start_fraction``
for ``START_FRAMES`` frames starts a sign, stillness below ``stop_fraction`` for ``rest_s``
seconds ends it. Segments shorter than ``min_sign_s`` are dropped (a twitch), longer than
``max_sign_s`` are cut (a signer who never rests still gets answers). Times are the frames' own
timestamps, never the wall clock, so a file and a camera segment the same way.

While the rest is being confirmed, ``candidate`` already names the segment it would close (once
the post-roll frames are in), so the sign can be classified speculatively: if the signer stays
still, the segment that closes is exactly that one.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import cv2
import numpy as np

from edge.core.config import SegmenterConfig
from edge.core.decode import UNKNOWN_WORD

START_FRAMES = 2  # frames in a row above start_fraction that start a sign (one is camera noise)


class MotionMeter:
    """Fraction of moving pixels between consecutive frames, on a small grey copy."""

    def __init__(self, width: int = 160, pixel_threshold: int = 20) -> None:
        self.width = width
        self.pixel_threshold = pixel_threshold
        self._previous: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> float:
        height = max(1, round(frame.shape[0] * self.width / frame.shape[1]))
        small = cv2.resize(frame, (self.width, height), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return 0.0
        changed = cv2.absdiff(grey, previous) > self.pixel_threshold
        return float(np.count_nonzero(changed)) / changed.size

    def reset(self) -> None:
        """A new epoch: the next frame has no predecessor to differ from."""
        self._previous = None


@dataclass(frozen=True)
class Segment:
    """A sign's span in stream time, rolls included; ``cut`` when ``max_sign_s`` ended it."""

    start_s: float
    end_s: float
    cut: bool = False

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


class MotionSegmenter:
    """Feed (timestamp, motion) per frame; completed segments come back as they end."""

    def __init__(self, settings: SegmenterConfig | None = None) -> None:
        self.settings = settings or SegmenterConfig()
        self._streak = 0
        self._first_motion_s: float | None = None
        self._start_s: float | None = None
        self._last_motion_s = 0.0

    @property
    def in_sign(self) -> bool:
        return self._start_s is not None

    @property
    def sign_started_s(self) -> float | None:
        """When the motion of the sign in progress began (stream time), or None between signs."""
        return self._start_s

    def candidate(self, timestamp_s: float) -> Segment | None:
        """The segment a rest that began at the last motion would close, once every frame of it
        (post-roll included) has arrived; None while the signer moves, between signs, or for a
        sign too short to count."""
        settings = self.settings
        start_s, last_s = self._start_s, self._last_motion_s
        if start_s is None or timestamp_s <= last_s or timestamp_s < last_s + settings.post_roll_s:
            return None
        if last_s - start_s < settings.min_sign_s:
            return None
        return Segment(max(0.0, start_s - settings.pre_roll_s), last_s + settings.post_roll_s)

    def update(self, timestamp_s: float, motion: float) -> Segment | None:
        settings = self.settings
        if self._start_s is None:
            if motion >= settings.start_fraction:
                if self._streak == 0:
                    self._first_motion_s = timestamp_s
                self._streak += 1
                if self._streak >= START_FRAMES:
                    self._start_s = self._first_motion_s
                    self._last_motion_s = timestamp_s
            else:
                self._streak = 0
            return None
        if motion >= settings.stop_fraction:
            self._last_motion_s = timestamp_s
        if timestamp_s - self._start_s >= settings.max_sign_s:
            return self._close(timestamp_s, cut=True)
        if timestamp_s - self._last_motion_s >= settings.rest_s:
            return self._close(self._last_motion_s, cut=False)
        return None

    def reset(self) -> None:
        """Forget a sign in progress (a new epoch cut it)."""
        self._start_s, self._streak = None, 0

    def flush(self) -> Segment | None:
        """End of stream: the sign in progress, if any (a SIGTERM mid-sign still gets its word)."""
        return self._close(self._last_motion_s, cut=False) if self._start_s is not None else None

    def _close(self, end_s: float, cut: bool) -> Segment | None:
        start_s = self._start_s if self._start_s is not None else end_s
        self._start_s, self._streak = None, 0
        if end_s - start_s < self.settings.min_sign_s:
            return None
        roll = self.settings
        return Segment(max(0.0, start_s - roll.pre_roll_s), end_s + roll.post_roll_s, cut)


class SlidingWindows:
    """Fixed windows every ``stride_s`` for signers who never rest; still windows are skipped.

    Same interface as MotionSegmenter. A window is offered only when motion in it reached
    ``start_fraction``, so nobody moving means no inference; ``StableWords`` decides which windows'
    words are published.
    """

    def __init__(self, settings: SegmenterConfig) -> None:
        self.settings = settings
        self._first_s: float | None = None
        self._next_s = 0.0
        self._recent: collections.deque[tuple[float, float]] = collections.deque()

    def update(self, timestamp_s: float, motion: float) -> Segment | None:
        settings = self.settings
        if self._first_s is None:
            self._first_s = timestamp_s
            self._next_s = timestamp_s + settings.window_s
        self._recent.append((timestamp_s, motion))
        while self._recent and self._recent[0][0] < timestamp_s - settings.window_s:
            self._recent.popleft()
        if timestamp_s < self._next_s:
            return None
        self._next_s = timestamp_s + settings.stride_s
        if max(m for _, m in self._recent) < settings.start_fraction:
            return None
        return Segment(timestamp_s - settings.window_s, timestamp_s)

    @property
    def sign_started_s(self) -> float | None:
        """Sliding windows have no sign start: a window under way starts ``window_s`` back."""
        return self._recent[0][0] if self.in_sign else None

    def candidate(self, timestamp_s: float) -> Segment | None:
        """Windows are classified when they are due, never speculatively."""
        return None

    @property
    def in_sign(self) -> bool:
        """A window is under way once motion reached ``start_fraction`` in it."""
        return bool(self._recent) and max(m for _, m in self._recent) >= self.settings.start_fraction

    def reset(self) -> None:
        self._first_s = None
        self._recent.clear()

    def flush(self) -> Segment | None:
        return None


class StableWords:
    """Which classified segments become published words.

    Motion mode publishes every sign. Sliding mode publishes a word once ``stable_windows``
    windows in a row agree on it, and not again until another word (or stillness: a skipped
    window) has taken over.
    """

    def __init__(self, settings: SegmenterConfig) -> None:
        self.settings = settings
        self._votes: collections.deque[str] = collections.deque(maxlen=settings.stable_windows)
        self._last_published: str | None = None
        self._last_vote_s = float("-inf")

    def publish(self, word: str, end_s: float) -> bool:
        settings = self.settings
        if settings.mode == "motion":
            return True
        if end_s - self._last_vote_s > 1.5 * settings.stride_s:
            self.reset()
        self._last_vote_s = end_s
        self._votes.append(word)
        recent = list(self._votes)
        agreed = len(recent) == settings.stable_windows and len(set(recent)) == 1 and word != UNKNOWN_WORD
        if agreed and word != self._last_published:
            self._last_published = word
            return True
        if not agreed and len(set(recent)) > 1:
            self._last_published = None
        return False

    def reset(self) -> None:
        self._votes.clear()
        self._last_published = None
        self._last_vote_s = float("-inf")
