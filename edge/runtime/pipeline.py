"""From frames to words: the recognizing half of the daemon, with no I/O of its own.

Each frame is cropped once into the ring, its motion measured and the segmenter told. A sign the
segmenter closes becomes the model's inputs by the bundle's sampling rule, is classified, and, if
the publication rule agrees (every sign in motion mode, a stable word in sliding mode), comes back
as a ``Sign`` for the daemon to store and publish.

Frames of two epochs (a camera reconnect, a file loop) are never mixed: a new epoch resets the
motion meter, the segmenter and the vote, and a sign the restart cut short is dropped and counted.

Speculation (``[segmenter] speculate``): once the signer's hands come to rest and the post-roll
frames are in, the sign so far is classified while the rest is being confirmed. If the rest holds,
the segment that closes is the one classified, from the same frames in the ring, so its word comes
the moment the rest is confirmed and is exactly the word the plain path would give; if the signer
moves again, the speculation is thrown away (counted) and the sign is classified when it ends.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from edge.core.bundle import ModelSpec
from edge.core.config import ModelConfig, SegmenterConfig
from edge.core.decode import Decoded, Scored, class_scores, combine_windows, decode
from edge.core.preprocess import FrameCropper, frames_to_clip
from edge.core.sampling import model_inputs
from edge.runtime.activity import Activity, luma
from edge.runtime.backends.base import Backend
from edge.runtime.capture import Frame
from edge.runtime.health_schema import LatencyHealth
from edge.runtime.metrics import InferenceHistogram
from edge.runtime.ring import FrameRing
from edge.runtime.segment import MotionMeter, MotionSegmenter, Segment, SlidingWindows, StableWords

log = logging.getLogger(__name__)


@dataclass
class Latencies:
    """Recent latencies in milliseconds, for the health message's percentiles; every inference time
    also in a histogram, for the Prometheus metrics."""

    inference_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=200))
    frame_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1000))
    sign_end_to_publish_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=200)
    )
    inference_s: InferenceHistogram = field(default_factory=InferenceHistogram)

    def health(self) -> LatencyHealth:
        def pct(values: collections.deque[float]) -> tuple[float | None, float | None]:
            if not values:
                return None, None
            p50, p95 = np.percentile(np.fromiter(values, float, len(values)), (50, 95))
            return round(float(p50), 1), round(float(p95), 1)

        return LatencyHealth(*pct(self.frame_ms), *pct(self.inference_ms), *pct(self.sign_end_to_publish_ms))


@dataclass(frozen=True)
class Sign:
    """A recognized sign. ``frames`` are the crops the model saw, views into the ring that stay
    valid until the next frame is fed: copy them to keep them."""

    word: str
    confidence: float
    top_k: tuple[Scored, ...]
    start_s: float
    end_s: float
    inference_ms: float
    ended_at: float  # time.monotonic() when capture got the frame that ended the sign's motion
    frames: list[np.ndarray]

    @property
    def fps(self) -> float:
        return len(self.frames) / max(self.end_s - self.start_s, 0.1)


@dataclass(frozen=True)
class _Reading:
    """A segment classified, before the publication rule has seen it."""

    segment: Segment
    decision: Decoded
    inference_ms: float
    ended_at: float
    frames: list[np.ndarray]


def ring_capacity(segmenter: SegmenterConfig, fps: int) -> int:
    """Enough crops for the longest sign (or window) with its rolls, at up to twice the nominal rate."""
    span_s = (
        max(segmenter.max_sign_s, segmenter.window_s) + segmenter.pre_roll_s + segmenter.post_roll_s + 1.0
    )
    return int(span_s * max(fps, 30) * 2)


class SignPipeline:
    """Owned by the inference thread: ``feed`` each frame, ``finish`` at the end of the stream."""

    def __init__(
        self,
        segmenter: SegmenterConfig,
        model: ModelConfig,
        spec: ModelSpec,
        fps: int,
        activity: Activity | None = None,
    ) -> None:
        self.settings = segmenter
        self.model = model
        self.activity = activity
        self.latencies = Latencies()
        self.frames = 0
        self.signs_cut = 0
        self.speculations = 0  # signs classified while their rest was being confirmed
        self.speculations_discarded = 0  # ... whose signer moved again, so they were read again
        self.epoch: int | None = None
        self._speculation: _Reading | None = None
        self._capacity = ring_capacity(segmenter, fps)
        self._cropper = FrameCropper(spec.preprocessing)
        self._ring = FrameRing(self._capacity, spec.preprocessing.crop_size)
        self._meter = MotionMeter()
        self._segmenter = (
            MotionSegmenter(segmenter) if segmenter.mode == "motion" else SlidingWindows(segmenter)
        )
        self._vote = StableWords(segmenter)
        self._clip: np.ndarray | None = None

    def adopt(self, model: ModelConfig, spec: ModelSpec) -> None:
        """A reloaded model: its decoding settings, and a new ring when its crop differs (the sign
        in progress is lost then). A speculation the old model made is read again by the new one."""
        self.model = model
        self._speculation = None
        if spec.preprocessing != self._cropper.params:
            self._cropper = FrameCropper(spec.preprocessing)
            self._ring = FrameRing(self._capacity, spec.preprocessing.crop_size)
            self._segmenter.reset()

    def segment_crops(self, sign: Sign) -> list[np.ndarray]:
        """Every crop of the sign's segment, as views into the ring valid until the next frame is
        fed: what a second model (a shadow, edge/runtime/shadow.py) reads the same sign from."""
        ring = self._ring
        return [ring.crops[slot] for slot in ring.between(sign.start_s, sign.end_s, self.epoch or 0)]

    def crop_box(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """Where the model's crop lies in a frame of ``shape`` (for the self-view's outline)."""
        return self._cropper.crop_box(shape)

    def feed(self, frame: Frame, backend: Backend) -> Sign | None:
        started = time.monotonic()
        if frame.epoch != self.epoch:
            self._new_epoch(frame.epoch)
        # When capture got it, so that time the frame waited in capture's queue counts too.
        arrived = frame.arrived_s or started
        crop = self._cropper(frame.image)
        self._ring.push(crop, frame.timestamp_s, arrived, frame.epoch)
        segment = self._segmenter.update(frame.timestamp_s, self._meter(frame.image))
        if self.activity is not None and segment is None:  # a closed sign's state is _sign's to set
            self.activity.observe(
                frame.timestamp_s, self._segmenter.sign_started_s, self._speculation is not None, luma(crop)
            )
        self.latencies.frame_ms.append((time.monotonic() - started) * 1000.0)
        self.frames += 1
        if segment is not None:
            return self._sign(segment, backend)
        if self.settings.speculate:
            self._speculate(frame.timestamp_s, backend)
        return None

    def finish(self, backend: Backend) -> Sign | None:
        """End of the stream (or a stop): the sign in progress still gets its word."""
        segment = self._segmenter.flush()
        return self._sign(segment, backend) if segment is not None else None

    def _speculate(self, timestamp_s: float, backend: Backend) -> None:
        """Classify the segment a confirmed rest would close, once; forget it if the signer moves."""
        candidate = self._segmenter.candidate(timestamp_s)
        speculation = self._speculation
        if speculation is not None and candidate == speculation.segment:
            return
        if speculation is not None:
            self.speculations_discarded += 1
            self._speculation = None
        if candidate is not None:
            if self.activity is not None:
                self.activity.reading()
            self._speculation = self._read(candidate, backend)
            self.speculations += 1

    def _new_epoch(self, epoch: int) -> None:
        if self.epoch is not None:
            if self._segmenter.in_sign:
                self.signs_cut += 1
                log.info("a sign in progress was cut by the source's restart; it is dropped")
            self._segmenter.reset()
            self._meter.reset()
            self._vote.reset()
            self._speculation = None
        self.epoch = epoch

    def _sign(self, segment: Segment, backend: Backend) -> Sign | None:
        """A closed segment's word: the speculation's when it read this very segment, else read now."""
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.segment != segment:
            self.speculations_discarded += 1  # a max_sign_s cut, or a sign cut at the end of the stream
            speculation = None
        if speculation is None and self.activity is not None:
            self.activity.reading()
        reading = speculation if speculation is not None else self._read(segment, backend)
        if reading is None or not self._vote.publish(reading.decision.word, segment.end_s):
            return None
        decision = reading.decision
        return Sign(
            decision.word,
            decision.confidence,
            decision.top_k,
            segment.start_s,
            segment.end_s,
            reading.inference_ms,
            reading.ended_at,
            reading.frames,
        )

    def _read(self, segment: Segment, backend: Backend) -> _Reading | None:
        """Classify the segment's frames in the ring (None when it holds none)."""
        ring = self._ring
        slots = ring.between(segment.start_s, segment.end_s, self.epoch or 0)
        if len(slots) == 0:
            return None
        # When the frame that ended the sign's motion reached the daemon (before the rest and roll).
        ended = slots[ring.stamps[slots] <= segment.end_s - self.settings.post_roll_s]
        ended_at = float(ring.arrivals[ended[-1] if len(ended) else slots[-1]])
        spec, model = backend.spec, self.model
        started = time.perf_counter()
        inputs = list(model_inputs((ring.crops[slot] for slot in slots), spec.frames, spec.sampling))
        scores = []
        for crops in inputs:
            self._clip = frames_to_clip(crops, self._clip)
            scores.append(class_scores(backend.infer(self._clip), model.combine).copy())
        inference_ms = (time.perf_counter() - started) * 1000.0
        self.latencies.inference_ms.append(inference_ms)
        self.latencies.inference_s.observe(inference_ms / 1000.0)
        decision = decode(
            combine_windows(scores, model.combine), spec.labels, model.top_k, model.min_confidence
        )
        # The frames the model saw: the resampled sign, or the sign itself (padded when short).
        seen = inputs[0] if len(inputs) == 1 else [ring.crops[slot] for slot in slots]
        return _Reading(segment, decision, inference_ms, ended_at, seen)
