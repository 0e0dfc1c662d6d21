"""Recognize the one sign in a whole video, as the cloud prototype did.

The video becomes T-frame model inputs by the bundle's ``sampling`` (``edge.core.sampling``: the
same rule as the daemon's and calibration's); the scores of several windows are combined (mean by
default, or max) before the softmax. Frames stream through, so memory does not grow with length.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edge.core.decode import Combine, Decoded, class_scores, combine_windows, decode
from edge.core.errors import VideoError
from edge.core.preprocess import FrameCropper, frames_to_clip
from edge.core.sampling import model_inputs
from edge.runtime.backends.base import Backend
from edge.runtime.video import fetched, is_url, read_frames


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
        seen = 0

        def crops() -> Iterator[np.ndarray]:
            nonlocal seen
            for frame in frames:
                seen += 1
                yield self._cropper(frame)

        spec = self.backend.spec
        scores = [self._window_scores(window) for window in model_inputs(crops(), spec.frames, self.sampling)]
        if not scores:
            raise VideoError("no frames")
        decision = decode(combine_windows(scores, self.combine), spec.labels, self.top_k, self.min_confidence)
        return decision, seen, len(scores)

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
