"""``asl-edge run``: the kiosk daemon. Camera in, words out over MQTT, feedback kept safe.

One process. ``run`` first builds everything (the model on this thread, the store, the MQTT link,
capture, the feedback and sync workers) without starting any of it, then starts the workers, and
unwinds whatever it started if anything fails; the config was validated whole before (``run``
and ``check-config`` share ``edge.runtime.preflight``).

This (inference) thread owns the backend: it takes each frame from capture's bounded queue and
feeds the ``SignPipeline``; each sign it returns is stored (when the disk allows) and published.
The workers run on their own threads and report through ``health()``: capture restarts a camera
that fails or stalls, the MQTT link reconnects and says why it cannot, the feedback desk stores
feedback off paho's thread, sync is supervised and restarted when it crashes, and the store is a
state that a full disk does not crash. Every ``[health] interval_s`` the daemon publishes their
fields (and writes ``health.json``). SIGTERM/SIGINT set one stop event; shutdown classifies the
sign in progress, then stops capture, sync, feedback, MQTT (after a flush) and the store.

systemd gets ``READY=1`` once the model is loaded and the workers run (the camera may still be
connecting: capture's state is in ``STATUS=`` and health), and ``WATCHDOG=1`` from this loop at
least every half second, with or without frames: a stuck inference stops the pings and gets the
process restarted, a dead camera does not (it is capture's to restart and health's to report).
SIGHUP reloads the model between two frames (``edge.runtime.reload``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from edge.core.config import Config
from edge.runtime.activity import Activity, ActivityState
from edge.runtime.capture import Capture, SourceSettings
from edge.runtime.clips import CLIPS_DIR, ClipKeeper, expire_clips
from edge.runtime.feedback import FeedbackDesk, handle_feedback, rejected
from edge.runtime.health import write_health_file
from edge.runtime.homeassistant import DiscoveryPublisher
from edge.runtime.keeper import StoreKeeper
from edge.runtime.metrics import MetricsTextfile
from edge.runtime.mqtt import MqttLink, mqtt_settings
from edge.runtime.pipeline import Sign, SignPipeline
from edge.runtime.reload import ActiveModel, ModelReloader
from edge.runtime.screen.server import ScreenServer
from edge.runtime.store import PredictionRecord, StoreError
from edge.runtime.sync import FeedbackSync
from edge.runtime.updater import NO_CHANNEL_HEALTH, Updater, open_first_model

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 3600.0
FRAME_WAIT_S = 0.5  # the loop ticks (watchdog, health, reload) at least this often
SCREEN_FEEDBACK_WAIT_S = 10.0  # [screen] how long a POST waits for the feedback desk's answer


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


class Daemon:
    """Wires capture, the sign pipeline, the store, MQTT and the workers for one run."""

    def __init__(
        self, config: Config, stop: threading.Event | None = None, config_path: Path | None = None
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.stop = stop or threading.Event()
        self.reload_requested = threading.Event()
        self.predictions = 0
        self._status = ""
        self._health_file_error: str | None = None
        self._last_health = float("-inf")
        self._last_maintenance = float("-inf")
        self._tick: tuple[float, int, int] = (time.monotonic(), 0, 0)  # (when, frames in, frames processed)
        self.metrics: MetricsTextfile | None = None
        self.screen: ScreenServer | None = None  # [screen] the kiosk page (issue 13)

    # -- building and starting ---------------------------------------------------------------

    def run(self) -> int:
        config = self.config
        state_dir = Path(config.storage.state_dir).expanduser()
        with contextlib.ExitStack() as started:
            # [update] the last verified release in the state directory, else [model] bundle
            startup = open_first_model(config)
            model = startup.model
            try:
                release = startup.release.bundle if startup.release else None
                self.reloader = ModelReloader(self.config_path, config, model, self.reload_requested, release)
            except BaseException:
                model.backend.close()
                raise
            started.callback(self._close_model)
            self.updater = (
                Updater(config, self.reloader.load_release, startup) if config.update.channel else None
            )
            self.keeper = StoreKeeper(state_dir, config.storage.max_db_mb)
            self.keeper.open()
            started.callback(self.keeper.close)
            self.clips = ClipKeeper(state_dir / CLIPS_DIR) if config.sync.clips else None
            self.link = MqttLink(mqtt_settings(config))
            self.desk = FeedbackDesk(
                lambda payload: handle_feedback(payload, self.keeper, self.clips),
                self._acknowledge,
            )
            self.link.subscribe(self.link.topic("feedback"), self.desk.submit)
            if config.homeassistant.enabled:
                DiscoveryPublisher(config, self.link).start()
            self.sync = FeedbackSync(config) if config.sync.bucket else None
            self.capture = Capture(SourceSettings(**dataclasses.asdict(config.source)))
            # [screen] what the kiosk is doing, live on the page (the signer sees it see them)
            activity = (
                Activity(config.screen.dark_luma, config.screen.dark_s, self._activity_changed)
                if config.screen.enabled
                else None
            )
            self.pipeline = SignPipeline(
                config.segmenter, config.model, model.bundle.spec, config.source.fps, activity
            )
            if config.metrics.textfile:
                # Registered before the workers start, so its stop runs after theirs: the file left
                # behind says up 0 and holds the final counts.
                self.metrics = MetricsTextfile(
                    Path(config.metrics.textfile), self.pipeline.latencies.inference_s
                )
                started.callback(self.metrics.stop)
            if config.screen.enabled:  # [screen] the kiosk page (a missing token stops the start here)
                self.screen = ScreenServer(
                    config.screen, self._screen_feedback, self._screen_status, clips=config.sync.clips
                )
                self.screen.set_model(model.bundle.spec.labels, model.model_id)

            self.link.start()
            started.callback(self.link.stop)
            self.desk.start()
            started.callback(self.desk.stop)
            if self.screen is not None:  # [screen] stopped before the desk and the store
                self.screen.start()
                started.callback(self.screen.stop)
            if self.sync:
                self.sync.start()
                started.callback(self.sync.stop)
            if self.updater:
                self.updater.start()
                started.callback(self.updater.stop)
            self.capture.start()
            started.callback(self.capture.close)
            started.callback(sd_notify, "STOPPING=1")

            self._set_status(f"recognizing with {model.selection.backend}")
            sd_notify("READY=1")
            log.info(
                "running: %s -> %s (%s)",
                config.source.uri,
                self.link.topic("prediction"),
                model.selection.backend,
            )
            self._loop()
        return 0

    def _close_model(self) -> None:
        """The model active at the end, whichever reload brought it."""
        self.reloader.active.backend.close()

    # -- the inference loop --------------------------------------------------------------------

    def _loop(self) -> None:
        for frame in self.capture.frames(timeout_s=FRAME_WAIT_S):
            sd_notify("WATCHDOG=1")
            if self.reloader.poll():
                self._adopt(self.reloader.active)
            self._health()
            if self.stop.is_set():
                break
            if frame is not None:
                sign = self.pipeline.feed(frame, self.reloader.active.backend)
                if sign is not None:
                    self._publish(sign)
                self._show_self(frame.image)
            elif self.pipeline.activity is not None and self.capture.stats.last_error is not None:
                self.pipeline.activity.camera_lost()
        last = self.pipeline.finish(self.reloader.active.backend)
        if last is not None:
            self._publish(last)
        self._health(force=True)

    def _adopt(self, active: ActiveModel) -> None:
        """After a reload attempt: the active model's settings in the pipeline, and in health."""
        self.config = dataclasses.replace(self.config, model=self.reloader.config.model)
        self.pipeline.adopt(self.config.model, active.bundle.spec)
        if self.screen is not None:  # [screen] the picker offers the new model's labels
            self.screen.set_model(active.bundle.spec.labels, active.model_id)
        self._set_status(f"recognizing with {active.selection.backend}")
        self._health(force=True)

    def _publish(self, sign: Sign) -> None:
        """Store the prediction (a full disk only counts it as unstored), then publish it."""
        active = self.reloader.active
        prediction_id = uuid.uuid4().hex
        top_k = [{"word": s.word, "score": round(s.score, 6)} for s in sign.top_k]
        self.keeper.add_prediction(
            PredictionRecord(
                prediction_id,
                sign.word,
                sign.confidence,
                top_k,
                active.model_id,
                sign.start_s,
                sign.end_s,
                sign.inference_ms,
                backend=active.selection.backend,
            )
        )
        if self.clips is not None:
            self.clips.remember(prediction_id, sign.frames, sign.fps)
        end_to_publish_ms = (time.monotonic() - sign.ended_at) * 1000.0
        prediction = {
            "id": prediction_id,
            "word": sign.word,
            "confidence": round(sign.confidence, 6),
            "top_k": top_k,
            "start_s": round(sign.start_s, 3),
            "end_s": round(sign.end_s, 3),
            "latency_ms": round(sign.inference_ms, 1),
            "sign_end_to_publish_ms": round(end_to_publish_ms, 1),
            "model": active.model_id,
            "backend": active.selection.backend,
        }
        self.link.publish("prediction", prediction)
        if self.screen is not None:  # [screen] the word on the kiosk page (never blocks)
            self.screen.publish_prediction(prediction)
        self.predictions += 1
        self.pipeline.latencies.sign_end_to_publish_ms.append(end_to_publish_ms)
        log.info("sign %.2f-%.2f s: %s (%.2f)", sign.start_s, sign.end_s, sign.word, sign.confidence)

    # -- health ------------------------------------------------------------------------------

    def _health(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_health < self.config.health.interval_s:
            return
        self._last_health = now
        self.keeper.tick()
        self._maintain(now)
        payload = self.health_payload(now)
        self.link.publish_periodic("health", payload)
        self._write_health_file(payload)
        if self.metrics:
            self.metrics.update(payload)
        problem = payload["capture_error"] or payload["store_error"]
        active = self.reloader.active
        self._set_status(f"problem: {problem}" if problem else f"recognizing with {active.selection.backend}")

    def health_payload(self, now: float) -> dict[str, object]:
        """Every part's state in one message (schema 1 fields are kept as they were)."""
        capture = self.capture.health()
        since, frames_in, frames_out = self._tick
        elapsed_s = max(1e-6, now - since)
        self._tick = (now, self.capture.stats.frames_in, self.pipeline.frames)
        backlog = self.keeper.pending_feedback()
        active = self.reloader.active
        return {
            **capture,
            # Over the last health interval, so a camera that stalls shows at once.
            "fps_in": round((self.capture.stats.frames_in - frames_in) / elapsed_s, 2),
            "fps_out": round((self.pipeline.frames - frames_out) / elapsed_s, 2),
            "signs_cut": self.pipeline.signs_cut,
            "speculations": self.pipeline.speculations,
            "speculations_discarded": self.pipeline.speculations_discarded,
            "predictions": self.predictions,
            **self.link.health(),
            **self.desk.health(),
            # pending_feedback since the first health schema; sync_backlog beside the sync fields.
            "pending_feedback": backlog,
            "sync_backlog": backlog,
            **(
                self.sync.health()
                if self.sync
                else {"sync_last_success": None, "sync_last_success_utc": None, "sync_last_error": None}
            ),
            **self.keeper.health(),
            "health_file_error": self._health_file_error,
            **(self.metrics.health() if self.metrics else {}),
            "backend": active.selection.backend,
            "backend_reason": active.selection.reason,
            "model": active.model_id,
            **(self.updater.health() if self.updater else NO_CHANNEL_HEALTH),
            "model_reload_error": self.reloader.error,
            # [screen] screen_url, screen_clients, screen_error
            **(
                self.screen.health()
                if self.screen
                else {
                    "screen_url": None,
                    "screen_clients": 0,
                    "screen_error": None,
                    "screen_self_view_fps": 0.0,
                    "screen_self_view_frames": 0,
                }
            ),
            **self.pipeline.latencies.percentiles(),
        }

    # -- [screen] the kiosk page's hooks (issue 13) ------------------------------------------

    def _activity_changed(self, activity: ActivityState) -> None:
        """On the inference thread, as the frame that caused it is handled: never blocks."""
        if self.screen is not None:
            self.screen.feed.set_activity(activity.to_json())

    def _show_self(self, image: np.ndarray) -> None:
        """The frame for the self-view, only while a page watches it (a reference, no copy)."""
        view = self.screen.self_view if self.screen is not None else None
        if view is not None and view.viewers:
            view.offer(image, self.pipeline.crop_box(image.shape))

    def _acknowledge(self, ack: dict[str, object]) -> None:
        """The feedback desk's answer, to MQTT and to the page (answers from any client show)."""
        self.link.publish("feedback/ack", ack)
        if self.screen is not None:
            self.screen.publish_ack(ack)

    def _screen_feedback(self, payload: bytes) -> dict[str, object]:
        """A POST from the page: the same desk as MQTT feedback; waits on the screen's thread."""
        try:
            return self.desk.submit(payload).result(timeout=SCREEN_FEEDBACK_WAIT_S)
        except concurrent.futures.TimeoutError:
            return rejected("busy", "the device is still storing earlier feedback; try again", None)

    def _screen_status(self) -> dict[str, object]:
        """What the page's banner shows; read on the screen's thread."""
        return {
            "capture_error": self.capture.stats.last_error,
            "frames_in": self.capture.stats.frames_in,
            "mqtt_connected": self.link.stats.connected,
            "model_reloading": self.reloader.reloading,
            "model_reload_error": self.reloader.error,
        }

    def _write_health_file(self, payload: dict[str, object]) -> None:
        error = write_health_file(
            Path(self.config.storage.state_dir).expanduser(), payload, self.config.health.interval_s
        )
        if error != self._health_file_error:
            if error:
                log.warning("cannot write health.json: %s", error)
            else:
                log.info("health.json is written again")
        self._health_file_error = error

    def _maintain(self, now: float) -> None:
        """Hourly: prune old predictions, check the store's disk budget, expire unsent clips."""
        if now - self._last_maintenance < MAINTENANCE_INTERVAL_S:
            return
        self._last_maintenance = now
        storage = self.config.storage
        self.keeper.maintain(storage.prediction_retention_days)
        if self.keeper.store is None:
            return
        try:
            expire_clips(
                self.keeper.store,
                Path(storage.state_dir).expanduser() / CLIPS_DIR,
                self.config.sync.clip_retention_days,
            )
        except (StoreError, OSError) as exc:  # retried at the next maintenance
            log.warning("expiring old clips failed: %s", exc)

    def _set_status(self, status: str) -> None:
        if status != self._status:
            self._status = status
            sd_notify(f"STATUS={status}")


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
