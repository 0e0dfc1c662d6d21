"""``asl-edge run``: the kiosk daemon. Camera in, words out over MQTT, feedback kept safe.

One process. ``run`` first builds everything (the model on this thread, the store, the MQTT link,
capture, the feedback, sync and health workers) without starting any of it, then starts the
workers, and unwinds whatever it started if anything fails; the config was validated whole before
(``run`` and ``check-config`` share ``edge.runtime.preflight``), and the model bundle preflight
loaded is the one the daemon starts on.

This (inference) thread owns the backend: it takes each frame from capture's bounded queue and
feeds the ``SignPipeline``; each sign it returns is handed to the feedback desk's thread to be
stored and then published at once (MQTT and the screen only queue it); on a canary kiosk of a
shadow rollout the sign's crops are then offered to the shadow's thread, whose answer is only
stored (edge/runtime/shadow.py). It does no disk I/O and
opens no socket per frame: between frames it takes a health snapshot (memory only: each worker's
typed section, edge/runtime/health_schema.py) and hands it to the health reporter's thread, which
measures the store, publishes the message, and writes ``health.json`` and the metrics file (every
``[health] interval_s``; the screen's banner gets one twice a second). The workers run on their
own threads: capture restarts a camera that fails or stalls, the MQTT link reconnects and says why
it cannot, the feedback desk stores feedback off paho's thread, sync and the updater are
supervised and restarted when they crash, and the store is a state that a full disk does not
crash. SIGTERM/SIGINT set one stop event; shutdown classifies the sign in progress, then stops
capture, the health reporter (after its last message), sync, the screen, the shadow, feedback,
MQTT (after a flush) and the store.

systemd gets ``READY=1`` once the model is loaded and the workers run (the camera may still be
connecting: capture's state is in ``STATUS=`` and health), and ``WATCHDOG=1`` from this loop, over
one kept socket, at most once a second, with or without frames. The loop pauses the pings while
it classifies a sign (every model input of the sign: well under a second with TensorRT, a few
seconds at most for a long sign on a CPU) or opens and smoke-tests a reloaded model (seconds: the
slow part, reading the bundle and building an engine, runs on a helper thread); both are far
inside the unit's ``WatchdogSec=30s``. A stuck inference stops the pings and gets the process
restarted; a dead camera does not (it is capture's to restart and health's to report). SIGHUP
reloads the model between two frames (``edge.runtime.reload``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from edge.core.bundle import Bundle
from edge.core.config import Config
from edge.runtime.activity import Activity, ActivityState
from edge.runtime.capture import Capture
from edge.runtime.clips import CLIPS_DIR, ClipKeeper, expire_clips
from edge.runtime.feedback import FeedbackDesk, handle_feedback, rejected
from edge.runtime.health_schema import (
    HealthSnapshot,
    MetricsHealth,
    RecognitionHealth,
    ScreenHealth,
    ShadowHealth,
    SyncHealth,
    UpdateHealth,
)
from edge.runtime.homeassistant import DiscoveryPublisher
from edge.runtime.keeper import StoreKeeper
from edge.runtime.metrics import MetricsTextfile
from edge.runtime.model import ModelKeeper, first_model, model_cache_dir
from edge.runtime.mqtt import MqttLink, mqtt_settings
from edge.runtime.pipeline import Sign, SignPipeline
from edge.runtime.reload import ModelReloader
from edge.runtime.reporter import HealthReporter
from edge.runtime.screen.server import ScreenServer
from edge.runtime.shadow import ShadowAnswer, ShadowRunner
from edge.runtime.store import PredictionRecord, StoreError
from edge.runtime.sync import FeedbackSync
from edge.runtime.updater import Updater

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 3600.0
FRAME_WAIT_S = 0.5  # the loop ticks (watchdog, health, reload) at least this often
BANNER_INTERVAL_S = 0.5  # [screen] how often the banner gets a fresh snapshot
WATCHDOG_INTERVAL_S = 1.0  # the most often WATCHDOG=1 is sent
SCREEN_FEEDBACK_WAIT_S = 10.0  # [screen] how long a POST waits for the feedback desk's answer


class SystemdNotifier:
    """``sd_notify`` over one datagram socket kept for the whole run; silent outside systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET") if address is None else address
        self._socket: socket.socket | None = None
        self._pinged_at = float("-inf")
        if address:
            if address.startswith("@"):
                address = "\0" + address[1:]
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                self._socket.connect(address)
            except OSError as exc:
                log.warning("sd_notify: cannot reach %s: %s", address, exc)
                self.close()

    def notify(self, message: str) -> None:
        if self._socket is None:
            return
        try:
            self._socket.send(message.encode())
        except OSError as exc:
            log.debug("sd_notify failed: %s", exc)

    def ping(self) -> None:
        """``WATCHDOG=1``, at most every ``WATCHDOG_INTERVAL_S``."""
        now = time.monotonic()
        if now - self._pinged_at >= WATCHDOG_INTERVAL_S:
            self._pinged_at = now
            self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class Daemon:
    """Wires capture, the sign pipeline, the store, MQTT and the workers for one run."""

    def __init__(
        self,
        config: Config,
        stop: threading.Event | None = None,
        config_path: Path | None = None,
        bundle: Bundle | None = None,
    ) -> None:
        self.config = config  # as started; the model's settings are ``self.models.active.config``
        self.config_path = config_path
        self.bundle = bundle
        self.stop = stop or threading.Event()
        self.reload_requested = threading.Event()
        self.predictions = 0
        self._status = ""
        self._published_at = float("-inf")
        self._shown_at = float("-inf")
        self._last_maintenance = float("-inf")
        self._tick: tuple[float, int, int] = (time.monotonic(), 0, 0)  # (when, frames in, frames processed)
        self.systemd = SystemdNotifier()
        self.metrics: MetricsTextfile | None = None
        self.screen: ScreenServer | None = None  # [screen] the kiosk page (issue 13)
        self.sync: FeedbackSync | None = None
        self.updater: Updater | None = None
        self.shadow: ShadowRunner | None = None  # [update] a candidate run beside the serving model

    # -- building and starting ---------------------------------------------------------------

    def run(self) -> int:
        config = self.config
        state_dir = Path(config.storage.state_dir).expanduser()
        with contextlib.ExitStack() as started:
            started.callback(self.systemd.close)
            # [update] the last verified release in the state directory, else [model] bundle
            startup = first_model(config, self.bundle)
            self.models = ModelKeeper(startup.model, model_cache_dir(config.storage.state_dir))
            started.callback(self.models.close)
            self.reloader = ModelReloader(self.config_path, config, self.models, self.reload_requested)
            if config.update.channel:
                self.shadow = ShadowRunner(config, self._shadow_answered)
                self.updater = Updater(
                    config, self.reloader.load_release, self.models, startup.error, self.shadow
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
            self.capture = Capture(config.source)
            active = self.models.active
            # [screen] what the kiosk is doing, live on the page (the signer sees it see them)
            activity = (
                Activity(config.screen.dark_luma, config.screen.dark_s, self._activity_changed)
                if config.screen.enabled
                else None
            )
            self.pipeline = SignPipeline(
                config.segmenter, active.config, active.bundle.spec, config.source.fps, activity
            )
            if config.metrics.textfile:
                # Registered before the workers start, so its stop runs after theirs: the file left
                # behind says up 0 and holds the final counts.
                self.metrics = MetricsTextfile(
                    Path(config.metrics.textfile), self.pipeline.latencies.inference_s
                )
                started.callback(self.metrics.stop)
            if config.screen.enabled:  # [screen] the kiosk page (a missing token stops the start here)
                self.screen = ScreenServer(config.screen, self._screen_feedback, clips=config.sync.clips)
                self.screen.set_model(active.bundle.spec.labels, active.model_id)
            self.reporter = HealthReporter(
                self.link,
                state_dir,
                config.health.interval_s,
                self.keeper,
                self._maintain,
                self.metrics,
                self.screen,
            )

            self.link.start()
            started.callback(self.link.stop)
            self.desk.start()
            started.callback(self.desk.stop)
            if self.shadow is not None:  # stopped before the desk, which records its answers
                self.shadow.start()
                started.callback(self.shadow.stop)
            if self.screen is not None:  # [screen] stopped before the desk and the store
                self.screen.start()
                started.callback(self.screen.stop)
            if self.sync:
                self.sync.start()
                started.callback(self.sync.stop)
            if self.updater:
                self.updater.start()
                started.callback(self.updater.stop)
            self.reporter.start()  # stopped before MQTT and the screen: its last message goes out
            started.callback(self.reporter.stop)
            self.capture.start()
            started.callback(self.capture.close)
            started.callback(self.systemd.notify, "STOPPING=1")

            self._set_status(f"recognizing with {active.selection.backend}")
            self.systemd.notify("READY=1")
            log.info(
                "running: %s -> %s (%s)",
                config.source.uri,
                self.link.topic("prediction"),
                active.selection.backend,
            )
            self._loop()
        return 0

    # -- the inference loop --------------------------------------------------------------------

    def _loop(self) -> None:
        for frame in self.capture.frames(timeout_s=FRAME_WAIT_S):
            self.systemd.ping()
            if self.reloader.poll():
                self._adopt()
            self._report()
            if self.stop.is_set():
                break
            if frame is not None:
                sign = self.pipeline.feed(frame, self.models.active.backend)
                if sign is not None:
                    self._publish(sign)
                self._show_self(frame.image)
            elif self.pipeline.activity is not None and self.capture.stats.last_error is not None:
                self.pipeline.activity.camera_lost()
        last = self.pipeline.finish(self.models.active.backend)
        if last is not None:
            self._publish(last)
        self._report(force=True)

    def _adopt(self) -> None:
        """After a reload attempt: the active model's settings in the pipeline, and in health."""
        active = self.models.active
        self.pipeline.adopt(active.config, active.bundle.spec)
        if self.screen is not None:  # [screen] the picker offers the new model's labels
            self.screen.set_model(active.bundle.spec.labels, active.model_id)
        self._set_status(f"recognizing with {active.selection.backend}")
        self._report(force=True)

    def _publish(self, sign: Sign) -> None:
        """Hand the prediction to the desk's thread to be stored (a full disk only counts it as
        unstored; feedback on it, which can only come after the publish, is stored after it), then
        publish it."""
        active = self.models.active
        prediction_id = uuid.uuid4().hex
        top_k = [{"word": s.word, "score": round(s.score, 6)} for s in sign.top_k]
        record = PredictionRecord(
            prediction_id,
            sign.word,
            sign.confidence,
            top_k,
            active.model_id,
            sign.start_s,
            sign.end_s,
            sign.inference_ms,
            backend=active.selection.backend,
            model_version=active.release.version if active.release else "",
            cohort=(self.updater.cohort or "") if self.updater else "",
        )
        self.desk.record(lambda: self.keeper.add_prediction(record))
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
        if self.shadow is not None:  # after the serving word is out; skipped while the shadow is busy
            crops = self.pipeline.segment_crops(sign)
            self.shadow.offer(prediction_id, crops, active.bundle.spec.preprocessing)

    def _shadow_answered(self, answer: ShadowAnswer) -> None:
        """The shadow's thread: its answer goes into the prediction's row, after the row itself
        (both through the desk), and nowhere else: never to MQTT, never to the screen."""
        self.desk.record(
            lambda: self.keeper.set_shadow(
                answer.prediction_id, answer.version, answer.word, answer.confidence
            )
        )

    # -- health ------------------------------------------------------------------------------

    def _report(self, force: bool = False) -> None:
        """Between frames: a snapshot for the health reporter when health is due (or ``force``),
        or for the screen's banner; memory only, the reporter does the rest."""
        now = time.monotonic()
        publish = force or now - self._published_at >= self.config.health.interval_s
        banner = self.screen is not None and now - self._shown_at >= BANNER_INTERVAL_S
        if not (publish or banner):
            return
        snapshot = self.snapshot(now)
        self._shown_at = now
        if publish:
            self._published_at = now
            self._tick = (now, self.capture.stats.frames_in, self.pipeline.frames)
        self.reporter.offer(snapshot, publish)
        problem = snapshot.capture.capture_error or snapshot.store.store_error
        backend = snapshot.model.backend
        self._set_status(f"problem: {problem}" if problem else f"recognizing with {backend}")

    def snapshot(self, now: float) -> HealthSnapshot:
        """Every part's section, as each worker reports it (rates over the last health interval,
        so a camera that stalls shows at once)."""
        since, frames_in, frames_out = self._tick
        elapsed_s = max(1e-6, now - since)
        recognition = RecognitionHealth(
            round((self.capture.stats.frames_in - frames_in) / elapsed_s, 2),
            round((self.pipeline.frames - frames_out) / elapsed_s, 2),
            self.pipeline.signs_cut,
            self.pipeline.speculations,
            self.pipeline.speculations_discarded,
            self.predictions,
        )
        return HealthSnapshot(
            capture=self.capture.health(),
            recognition=recognition,
            mqtt=self.link.health(),
            feedback=self.desk.health(),
            store=self.keeper.health(),
            sync=self.sync.health() if self.sync else SyncHealth.disabled(),
            reporter=self.reporter.health(),
            metrics=self.metrics.health() if self.metrics else MetricsHealth.disabled(),
            model=self.reloader.health(),
            updater=self.updater.health() if self.updater else UpdateHealth.disabled(),
            shadow=self.shadow.health() if self.shadow else ShadowHealth.disabled(),
            screen=self.screen.health() if self.screen else ScreenHealth.disabled(),
            latency=self.pipeline.latencies.health(),
        )

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

    def _maintain(self) -> None:
        """Hourly, on the health reporter's thread: prune old predictions, check the store's disk
        budget, expire unsent clips."""
        now = time.monotonic()
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
            self.systemd.notify(f"STATUS={status}")


def run_daemon(config: Config, config_path: Path | None = None, bundle: Bundle | None = None) -> int:
    """Run until SIGTERM/SIGINT (or a file source's end); ``bundle`` is the ``[model]`` bundle that
    preflight already loaded and verified."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("signal %d: finishing the sign in progress and stopping", signum)
        stop.set()

    daemon = Daemon(config, stop, config_path, bundle)

    def request_reload(_signum: int, _frame: object) -> None:
        daemon.reload_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)
    return daemon.run()
