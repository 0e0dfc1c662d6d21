"""How the frames of one sign become model inputs: the one rule that the daemon, ``asl-edge
recognize`` and INT8 calibration share, so that INT8 is calibrated on exactly what the runtime
feeds the model.

The bundle's ``sampling`` chooses:

- ``windows`` (WLASL models, trained on T consecutive frames at the native rate): consecutive
  T-frame windows, plus one aligned to the end for the remainder, so every frame is seen; a sign
  shorter than T is padded by repeating its last frame. Only the last T frames are held.
- ``resample`` (models trained on whole signs, like the demo model): the whole sign stretched or
  subsampled to T evenly spaced frames. A streaming subsampler holds at most 4T frames.

Frames are taken one at a time, so a long video costs no more memory than a short one.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

SAMPLING_MODES = ("windows", "resample")


class EvenSampler:
    """Keeps evenly spaced frames of a stream of unknown length, at most ``4 * frames`` of them.

    Every ``stride``-th frame is kept; when the buffer fills, every other kept frame is dropped and
    the stride doubles, so the kept frames always cover the whole stream evenly.
    """

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.seen = 0
        self._stride = 1
        self._kept: list[np.ndarray] = []

    def add(self, crop: np.ndarray) -> None:
        if self.seen % self._stride == 0:
            self._kept.append(crop)
            if len(self._kept) >= 4 * self.frames:
                self._kept = self._kept[::2]
                self._stride *= 2
        self.seen += 1

    def clip_frames(self) -> list[np.ndarray]:
        """``frames`` crops evenly spaced over the stream (repeated when it was shorter)."""
        positions = np.linspace(0, len(self._kept) - 1, self.frames).round().astype(int)
        return [self._kept[i] for i in positions]


def windows(crops: Iterable[np.ndarray], length: int) -> Iterator[list[np.ndarray]]:
    """Consecutive ``length``-frame windows, then one aligned to the end for the remainder; one
    padded window when there are fewer than ``length`` frames; nothing for no frames."""
    recent: deque[np.ndarray] = deque(maxlen=length)
    count = since_window = 0
    for crop in crops:
        recent.append(crop)
        count += 1
        since_window += 1
        if since_window == length:
            yield list(recent)
            since_window = 0
    if 0 < count < length:
        yield list(recent) + [recent[-1]] * (length - count)
    elif count and since_window:
        yield list(recent)


def model_inputs(crops: Iterable[np.ndarray], length: int, sampling: str) -> Iterator[list[np.ndarray]]:
    """The ``length``-frame crop lists that one sign's crops become under ``sampling``."""
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, got {sampling!r}")
    if sampling == "windows":
        yield from windows(crops, length)
        return
    sampler = EvenSampler(length)
    for crop in crops:
        sampler.add(crop)
    if sampler.seen:
        yield sampler.clip_frames()
