"""Recognize the one sign in a whole video, as the cloud prototype did.

Two ways to turn a video of any length into T-frame clips, chosen by the bundle's ``sampling``:

- ``windows`` (WLASL models): consecutive T-frame windows at the native frame rate, plus one
  aligned to the end for the remainder, so every frame is seen; window scores are combined (mean
  by default, or max) before the softmax. A video shorter than T is padded by repeating its last
  frame. Only the last T crops are kept in memory.
- ``resample`` (models trained on whole signs, like the demo model): the whole video stretched or
  subsampled to T frames, evenly spaced. A streaming subsampler keeps at most 4T crops, so a long
  video costs no more memory than a short one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edge.backends.base import Backend
from edge.decode import Combine, Decoded, class_scores, decode
from edge.errors import VideoError
from edge.preprocess import FrameCropper, frames_to_clip
from edge.video import fetched, is_url, read_frames


@dataclass(frozen=True)
class Recognition:
    source: str
    result: Decoded
    frames: int
    windows: int
    latency_ms: float
    backend: str

    def to_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "word": self.result.word,
            "confidence": round(self.result.confidence, 6),
            "top_k": [{"word": s.word, "score": round(s.score, 6)} for s in self.result.top_k],
            "latency_ms": round(self.latency_ms, 1),
            "frames": self.frames,
            "windows": self.windows,
            "backend": self.backend,
        }


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


class VideoRecognizer:
    """Owns a backend's clip buffer and turns frame sequences into one decision each."""

    def __init__(
        self,
        backend: Backend,
        combine: Combine = "mean",
        top_k: int = 5,
        min_confidence: float = 0.0,
        sampling: str | None = None,
    ) -> None:
        self.backend = backend
        self.sampling = sampling or backend.spec.sampling
        self.combine: Combine = combine
        self.top_k = top_k
        self.min_confidence = min_confidence
        self._cropper = FrameCropper(backend.spec.preprocessing)
        self._clip = np.empty(backend.spec.input_shape, dtype=np.float32)

    def _window_scores(self, crops: Iterable[np.ndarray]) -> np.ndarray:
        clip = frames_to_clip(list(crops), self._clip)
        return class_scores(self.backend.infer(clip), self.combine).copy()

    def recognize_frames(self, frames: Iterable[np.ndarray]) -> tuple[Decoded, int, int]:
        """Decide on a frame sequence; returns (decision, frames seen, clips run)."""
        if self.sampling == "resample":
            return self._recognize_resampled(frames)
        return self._recognize_windows(frames)

    def _recognize_resampled(self, frames: Iterable[np.ndarray]) -> tuple[Decoded, int, int]:
        sampler = EvenSampler(self.backend.spec.frames)
        for frame in frames:
            sampler.add(self._cropper(frame))
        if sampler.seen == 0:
            raise VideoError("no frames")
        scores = self._window_scores(sampler.clip_frames())
        decision = decode(scores, self.backend.spec.labels, self.top_k, self.min_confidence)
        return decision, sampler.seen, 1

    def _recognize_windows(self, frames: Iterable[np.ndarray]) -> tuple[Decoded, int, int]:
        length = self.backend.spec.frames
        recent: deque[np.ndarray] = deque(maxlen=length)
        window_scores: list[np.ndarray] = []
        count = since_window = 0
        for frame in frames:
            recent.append(self._cropper(frame))
            count += 1
            since_window += 1
            if since_window == length:
                window_scores.append(self._window_scores(recent))
                since_window = 0
        if count == 0:
            raise VideoError("no frames")
        if not window_scores:
            recent.extend([recent[-1]] * (length - len(recent)))
            window_scores.append(self._window_scores(recent))
        elif since_window:
            window_scores.append(self._window_scores(recent))
        stacked = np.stack(window_scores)
        combined = stacked.mean(axis=0) if self.combine == "mean" else stacked.max(axis=0)
        decision = decode(combined, self.backend.spec.labels, self.top_k, self.min_confidence)
        return decision, count, len(window_scores)

    def recognize_source(self, source: str) -> Recognition:
        """Recognize a video file path or an http(s) URL."""
        started = time.perf_counter()
        if is_url(source):
            with fetched(source) as path:
                decision, count, windows = self.recognize_frames(read_frames(path))
        else:
            decision, count, windows = self.recognize_frames(read_frames(source))
        latency_ms = (time.perf_counter() - started) * 1000.0
        return Recognition(source, decision, count, windows, latency_ms, self.backend.name)
