"""``asl-edge run``: the kiosk daemon. Camera in, words out over MQTT, feedback kept safe.

One process: the capture thread fills a bounded queue; this (inference) thread owns the backend,
crops each frame once on arrival into a preallocated ring buffer, measures motion, and classifies each sign
the segmenter closes; paho's thread handles the network and feedback. SIGTERM/SIGINT set one
stop event; shutdown then classifies the sign in progress, flushes MQTT and closes the store.
systemd gets ``READY=1`` once frames flow and ``WATCHDOG=1`` from this loop, so a stuck pipeline
stops the pings and gets the process restarted. SIGHUP reloads the model between two frames
(edge/reload.py).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.core.config import Config
from edge.core.decode import UNKNOWN_WORD, class_scores, combine_windows, decode
from edge.core.errors import ConfigError
from edge.core.preprocess import FrameCropper, frames_to_clip
from edge.core.sampling import model_inputs
from edge.runtime.backends.base import Backend
from edge.runtime.backends.select import Selection, model_cache_dir
from edge.runtime.capture import Capture, Frame, SourceSettings
from edge.runtime.clips import CLIPS_DIR, ClipKeeper, expire_clips
from edge.runtime.feedback import handle_feedback
from edge.runtime.health import write_health_file
from edge.runtime.mqtt import MqttLink, mqtt_settings
from edge.runtime.reload import ModelReloader, open_model, prepare_model
from edge.runtime.ring import FrameRing
from edge.runtime.segment import MotionMeter, MotionSegmenter, Segment, SegmenterSettings, SlidingWindows
from edge.runtime.store import PredictionRecord, Store, StoreUsage
from edge.runtime.sync import FeedbackSync

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 3600.0


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about readiness and liveness; silent outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(message.encode(), address)
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)


@dataclass
class Latencies:
    """Recent per-sign latencies in milliseconds, for the health message's percentiles."""

    inference_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=200))
    frame_ms: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=1000))
    sign_end_to_publish_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=200)
    )

    def percentiles(self) -> dict[str, float | None]:
        def pct(values: collections.deque[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 1) if values else None

        return {
            "frame_ms_p50": pct(self.frame_ms, 50),
            "frame_ms_p95": pct(self.frame_ms, 95),
            "inference_ms_p50": pct(self.inference_ms, 50),
            "inference_ms_p95": pct(self.inference_ms, 95),
            "sign_end_to_publish_ms_p50": pct(self.sign_end_to_publish_ms, 50),
            "sign_end_to_publish_ms_p95": pct(self.sign_end_to_publish_ms, 95),
        }


def segmenter_settings(config: Config) -> SegmenterSettings:
    try:
        return SegmenterSettings(**dataclasses.asdict(config.segmenter))
    except ValueError as exc:
        raise ConfigError(f"segmenter: {exc}") from exc


class Daemon:
    """Wires capture, segmentation, inference, the store and MQTT for one run."""

    def __init__(
        self, config: Config, stop: threading.Event | None = None, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.stop = stop or threading.Event()
        self.reload_requested = threading.Event()
        self._model_reload_error: str | None = None
        self.latencies = Latencies()
        self.predictions = 0
        self.frames_processed = 0
        self._votes: collections.deque[str] = collections.deque(maxlen=20)
        self._last_published: str | None = None
        self._last_vote_s = float("-inf")
        self._clip: np.ndarray | None = None
        self._model_id = ""
        self._started = time.monotonic()
        self._last_health = 0.0
        self._last_maintenance = float("-inf")
        self._store_usage: StoreUsage | None = None
        self.sync: FeedbackSync | None = None
        self.clips: ClipKeeper | None = None

    def _stable(self, word: str, end_s: float) -> bool:
        """Motion mode publishes every sign; sliding mode a word that ``stable_windows`` windows in
        a row agree on, once, until another word (or stillness, a skipped window) takes over."""
        settings = self.config.segmenter
        if settings.mode == "motion":
            return True
        if end_s - self._last_vote_s > 1.5 * settings.stride_s:
            self._votes.clear()
            self._last_published = None
        self._last_vote_s = end_s
        self._votes.append(word)
        recent = list(self._votes)[-settings.stable_windows :]
        agreed = len(recent) == settings.stable_windows and len(set(recent)) == 1 and word != UNKNOWN_WORD
        if agreed and word != self._last_published:
            self._last_published = word
            return True
        if not agreed and len(set(recent)) > 1:
            self._last_published = None
        return False

    def _classify(
        self,
        segment: Segment,
        ring: FrameRing,
        backend: Backend,
        store: Store,
        link: MqttLink,
        selection: Selection,
    ) -> None:
        slots = ring.between(segment.start_s, segment.end_s)
        if len(slots) == 0:
            return
        # When the frame that ended the sign's motion reached the daemon (before the rest and roll).
        motion_end_s = segment.end_s - self.config.segmenter.post_roll_s
        ended = slots[ring.stamps[slots] <= motion_end_s]
        sign_ended_at = float(ring.arrivals[ended[-1] if len(ended) else slots[-1]])
        spec, model = backend.spec, self.config.model
        started = time.perf_counter()
        inputs = list(model_inputs((ring.crops[slot] for slot in slots), spec.frames, spec.sampling))
        scores = []
        for frames in inputs:
            self._clip = frames_to_clip(frames, self._clip)
            scores.append(class_scores(backend.infer(self._clip), model.combine).copy())
        inference_ms = (time.perf_counter() - started) * 1000.0
        decision = decode(
            combine_windows(scores, model.combine), spec.labels, model.top_k, model.min_confidence
        )
        # The frames the model saw: the resampled sign, or the sign itself (padded when short).
        frames = inputs[0] if len(inputs) == 1 else [ring.crops[slot] for slot in slots]
        self.latencies.inference_ms.append(inference_ms)
        if not self._stable(decision.word, segment.end_s):
            return
        top_k = [{"word": s.word, "score": round(s.score, 6)} for s in decision.top_k]
        prediction_id = uuid.uuid4().hex
        store.add_prediction(
            PredictionRecord(
                prediction_id,
                decision.word,
                decision.confidence,
                top_k,
                backend.spec.model_id,
                segment.start_s,
                segment.end_s,
                inference_ms,
                backend=selection.backend,
            )
        )
        if self.clips is not None:
            self.clips.remember(
                prediction_id, frames, len(frames) / max(segment.end_s - segment.start_s, 0.1)
            )
        link.publish(
            "prediction",
            {
                "id": prediction_id,
                "word": decision.word,
                "confidence": round(decision.confidence, 6),
                "top_k": top_k,
                "start_s": round(segment.start_s, 3),
                "end_s": round(segment.end_s, 3),
                "latency_ms": round(inference_ms, 1),
                "sign_end_to_publish_ms": round((time.monotonic() - sign_ended_at) * 1000.0, 1),
                "model": backend.spec.model_id,
                "backend": selection.backend,
            },
        )
        self.predictions += 1
        self.latencies.sign_end_to_publish_ms.append((time.monotonic() - sign_ended_at) * 1000.0)
        log.info(
            "sign %.2f-%.2f s: %s (%.2f)", segment.start_s, segment.end_s, decision.word, decision.confidence
        )

    def _health(
        self, capture: Capture, link: MqttLink, store: Store, selection: Selection, force: bool = False
    ) -> None:
        now = time.monotonic()
        if not force and now - self._last_health < self.config.health.interval_s:
            return
        self._last_health = now
        self._maintain(store, now)
        elapsed = max(1e-6, now - self._started)
        stats = capture.stats
        backlog = store.counts()["pending_feedback"]
        self._publish_health(
            link,
            store,
            {
                "frames_in": stats.frames_in,
                "frames_dropped": stats.frames_dropped,
                "fps_in": round(stats.frames_in / elapsed, 2),
                "fps_out": round(self.frames_processed / elapsed, 2),
                "capture_restarts": stats.restarts,
                "capture_error": stats.last_error,
                "predictions": self.predictions,
                "mqtt_dropped": link.stats.dropped,
                "mqtt_pending": link.pending,
                # pending_feedback since the first health schema; sync_backlog beside the sync fields.
                "pending_feedback": backlog,
                "sync_backlog": backlog,
                **(self.sync.health() if self.sync else {"sync_last_success": None, "sync_last_error": None}),
                "db_mb": self._store_usage.db_mb if self._store_usage else None,
                "db_near_budget": self._store_usage.near_budget if self._store_usage else None,
                "backend": selection.backend,
                "backend_reason": selection.reason,
                "model": self._model_id,
                "model_reload_error": self._model_reload_error,
                **self.latencies.percentiles(),
            },
        )

    def _maintain(self, store: Store, now: float) -> None:
        """Hourly: prune old predictions and check the store's disk budget (warned in the log)."""
        if now - self._last_maintenance < MAINTENANCE_INTERVAL_S:
            return
        self._last_maintenance = now
        storage = self.config.storage
        self._store_usage = store.maintain(storage.prediction_retention_days, storage.max_db_mb)
        expire_clips(
            store, Path(storage.state_dir).expanduser() / CLIPS_DIR, self.config.sync.clip_retention_days
        )

    def _publish_health(self, link: MqttLink, store: Store, payload: dict[str, object]) -> None:
        """To the broker, and to ``<state_dir>/health.json`` for probes that have no broker."""
        link.publish("health", payload, qos=0)
        write_health_file(store.path.parent, payload, self.config.health.interval_s)

    def run(self) -> int:
        config = self.config
        self.sync = FeedbackSync(config) if config.sync.bucket else None
        state_dir = Path(config.storage.state_dir).expanduser()
        self.clips = ClipKeeper(state_dir / CLIPS_DIR) if config.sync.clips else None
        model = open_model(prepare_model(config.model), model_cache_dir(config.storage.state_dir))
        bundle, backend, selection = model.bundle, model.backend, model.selection
        self._model_id = model.model_id
        reloader = ModelReloader(self.config_path, config, model, self.reload_requested)
        store = Store(state_dir)
        link = MqttLink(mqtt_settings(config))
        link.set_feedback_handler(
            lambda payload: link.publish("feedback/ack", handle_feedback(payload, store, self.clips))
        )
        source = config.source
        capture = Capture(SourceSettings(**dataclasses.asdict(config.source)))
        link.start()
        if self.sync:
            self.sync.start()
        settings = segmenter_settings(config)
        segmenter = MotionSegmenter(settings) if settings.mode == "motion" else SlidingWindows(settings)
        meter, cropper = MotionMeter(), FrameCropper(bundle.spec.preprocessing)
        span_s = (
            max(segmenter.settings.max_sign_s, segmenter.settings.window_s)
            + segmenter.settings.pre_roll_s
            + segmenter.settings.post_roll_s
            + 1.0
        )
        # Enough cropped frames for the longest sign with its rolls, at up to twice the nominal rate.
        ring = FrameRing(int(span_s * max(source.fps, 30) * 2), bundle.spec.preprocessing.crop_size)
        sd_notify(f"READY=1\nSTATUS=recognizing with {selection.backend}")
        log.info("running: %s -> %s (%s)", source.uri, link.topic("prediction"), selection.backend)
        try:
            for frame in capture.frames(timeout_s=0.5):
                sd_notify("WATCHDOG=1")
                if reloader.poll():
                    backend, selection = reloader.active.backend, reloader.active.selection
                    ring, cropper = self._adopt(reloader, ring, cropper)
                    self._health(capture, link, store, selection, force=True)
                self._health(capture, link, store, selection)
                if self.stop.is_set():
                    break
                if frame is None:
                    continue
                self._on_frame(frame, ring, meter, cropper, segmenter, backend, store, link, selection)
            last = segmenter.flush()
            if last is not None:
                self._classify(last, ring, backend, store, link, selection)
            self._health(capture, link, store, selection, force=True)
        finally:
            sd_notify("STOPPING=1")
            capture.close()
            self._drain(link)
            link.stop()
            if self.sync:
                self.sync.stop()
            store.close()
            backend.close()
        return 0

    def _adopt(
        self, reloader: ModelReloader, ring: FrameRing, cropper: FrameCropper
    ) -> tuple[FrameRing, FrameCropper]:
        """After a reload attempt: the active model's settings and id; a new crop geometry needs a
        new ring (the sign in progress is lost), the same one keeps it."""
        self.config = dataclasses.replace(self.config, model=reloader.config.model)
        self._model_id, self._model_reload_error = reloader.active.model_id, reloader.error
        preprocessing = reloader.active.bundle.spec.preprocessing
        if preprocessing == cropper.params:
            return ring, cropper
        return FrameRing(len(ring.crops), preprocessing.crop_size), FrameCropper(preprocessing)

    def _on_frame(
        self,
        frame: Frame,
        ring: FrameRing,
        meter: MotionMeter,
        cropper: FrameCropper,
        segmenter: MotionSegmenter | SlidingWindows,
        backend: Backend,
        store: Store,
        link: MqttLink,
        selection: Selection,
    ) -> None:
        arrived = time.monotonic()
        ring.push(cropper(frame.image), frame.timestamp_s, arrived)
        segment = segmenter.update(frame.timestamp_s, meter(frame.image))
        self.latencies.frame_ms.append((time.monotonic() - arrived) * 1000.0)
        self.frames_processed += 1
        if segment is not None:
            self._classify(segment, ring, backend, store, link, selection)

    @staticmethod
    def _drain(link: MqttLink, timeout_s: float = 3.0) -> None:
        """Give queued messages a moment to go out when the broker is reachable."""
        deadline = time.monotonic() + timeout_s
        while link.pending and link.stats.connected and time.monotonic() < deadline:
            time.sleep(0.05)


def run_daemon(config: Config, config_path: Path | None = None) -> int:
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the sign in progress and stopping", signum)
        stop.set()

    daemon = Daemon(config, stop, config_path)

    def request_reload(_signum: int, _frame: object) -> None:
        daemon.reload_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)
    return daemon.run()
