"""Camera and video capture through GStreamer (PyGObject), as BGR frames on one stream clock.

Sources are URIs, as in jetson-utils: ``csi://0`` (Jetson camera through nvarguscamerasrc),
``v4l2:///dev/video0``, ``file:///path/video.mp4``, ``rtsp://host/stream``, ``test://`` (a moving
test pattern) or ``gst:<pipeline>`` ending in ``appsink name=sink`` for experts. Each becomes a
pipeline ending in an appsink; a thread pulls samples into a bounded queue.

Capture never blocks the camera: when the consumer falls behind, the oldest frame is dropped and
counted. A file plays at its own frame rate like a camera, or with ``realtime=False`` as fast as the
consumer takes frames, losing none (batch work).

Capture owns stream time. Buffer timestamps start again whenever a pipeline starts (a camera
reconnects, a file loops), so every start opens a new *epoch*: frames carry its number, and their
``timestamp_s`` continues the stream clock from where the last epoch ended, so it never goes back.
Nothing downstream mixes frames of two epochs.

A camera (and a ``gst:`` pipeline) that errors, ends, or stalls (no frame for ``stall_s``) is
restarted with backoff that starts small again once frames have flowed for a while; the error is
in ``stats`` until frames flow again. A file ends the stream (or loops).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.core import checks
from edge.core.config import SourceConfig
from edge.core.errors import AslEdgeError
from edge.runtime.health_schema import CaptureHealth, WorkerHealth
from edge.runtime.worker import Backoff

log = logging.getLogger(__name__)

PULL_TIMEOUT_NS = 100_000_000
BGR_CAPS = "video/x-raw,format=BGR"
FIRST_RETRY_S = 0.5  # or reconnect_max_s, when that is shorter
HEALTHY_S = 5.0  # frames flowing this long make the next outage's retries start small again


class CaptureError(AslEdgeError):
    """A source URI cannot be turned into a pipeline, or GStreamer is missing."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 BGR, read-only
    timestamp_s: float  # stream time: continuous across epochs, never going back
    index: int  # position within its epoch
    epoch: int = 0  # which (re)start of the source the frame comes from
    arrived_s: float = 0.0  # time.monotonic() when capture pulled it from the pipeline


@dataclass
class CaptureStats:
    frames_in: int = 0
    frames_dropped: int = 0
    restarts: int = 0
    stalls: int = 0
    epoch: int = 0
    last_error: str | None = None


def is_live(uri: str) -> bool:
    """Cameras and raw pipelines are restarted when they fail; files end (or loop)."""
    return not uri.startswith("file://")


class StreamClock:
    """Maps each epoch's buffer timestamps onto one clock that never goes back: an epoch starts
    one frame interval after the last frame of the one before."""

    def __init__(self, fps: float) -> None:
        self._interval_s = 1.0 / fps
        self._last_s: float | None = None
        self._offset_s = 0.0
        self._first_pts_s: float | None = None

    def new_epoch(self) -> None:
        self._first_pts_s = None

    def stamp(self, pts_s: float) -> float:
        if self._first_pts_s is None:
            self._first_pts_s = pts_s
            self._offset_s = 0.0 if self._last_s is None else self._last_s + self._interval_s
        stamped = self._offset_s + max(0.0, pts_s - self._first_pts_s)
        if self._last_s is not None and stamped <= self._last_s:  # a buffer out of order: keep the order
            stamped = self._last_s + 1e-6
        self._last_s = stamped
        return stamped


def pipeline_for(settings: SourceConfig) -> str:
    """The GStreamer pipeline description for a source URI."""
    uri, w, h, fps = settings.uri, settings.width, settings.height, settings.fps
    scaled = f"{BGR_CAPS},width={w},height={h}"
    parsed = urllib.parse.urlsplit(uri)
    problem = checks.source_uri(uri)
    if problem:
        raise CaptureError(problem)
    if uri.startswith("gst:"):
        return uri[4:].strip()
    if parsed.scheme == "csi":
        sensor = parsed.netloc or "0"
        return (
            f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={w},height={h},"
            f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! {BGR_CAPS} ! "
            "appsink name=sink max-buffers=2 drop=true sync=false"
        )
    if parsed.scheme == "v4l2":
        device = parsed.path or "/dev/video0"
        return (
            f"v4l2src device={device} ! videoconvert ! videoscale ! videorate ! {scaled},"
            f"framerate={fps}/1 ! appsink name=sink max-buffers=2 drop=true sync=false"
        )
    if parsed.scheme == "rtsp":
        return (
            f"rtspsrc location={uri} latency=200 ! decodebin ! videoconvert ! videoscale ! {scaled} ! "
            "appsink name=sink max-buffers=2 drop=true sync=false"
        )
    if parsed.scheme == "test":
        return (
            f"videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1 ! "
            f"videoconvert ! {BGR_CAPS} ! appsink name=sink max-buffers=2 drop=true sync=false"
        )
    path = urllib.parse.unquote(parsed.path)  # file://, the one scheme left
    sync = "true" if settings.realtime else "false"
    return (
        f'filesrc location="{path}" ! decodebin ! videoconvert ! {BGR_CAPS} ! '
        f"appsink name=sink max-buffers=4 drop=false sync={sync}"
    )


def _gst() -> Any:
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstApp", "1.0")
        gi.require_version("GstVideo", "1.0")
        from gi.repository import Gst, GstApp, GstVideo  # noqa: F401  (GstApp adds try_pull_sample)
    except (ImportError, ValueError) as exc:
        raise CaptureError(f"GStreamer through PyGObject is not available: {exc}") from exc
    Gst.init(None)
    return Gst


def _to_array(sample: Any, gst_video: Any) -> np.ndarray:
    """A BGR sample as a (H, W, 3) array with one copy (out of GStreamer's buffer): the rows'
    padding (the stride) is skipped by a view, not copied away."""
    caps = sample.get_caps()
    info = gst_video.VideoInfo.new_from_caps(caps)
    width, height, stride = info.width, info.height, info.stride[0]
    buffer = sample.get_buffer()
    data = buffer.extract_dup(0, buffer.get_size())
    rows = np.frombuffer(data, dtype=np.uint8, count=stride * height).reshape(height, stride)
    return rows[:, : width * 3].reshape(height, width, 3)


class Capture:
    """Runs a source in a thread; iterate ``frames()`` to consume, ``close()`` to stop.

    ``start()`` starts the thread (the constructor only checks the URI and GStreamer), so that a
    daemon can build everything before it starts anything.
    """

    def __init__(self, settings: SourceConfig) -> None:
        self.settings = settings
        self.description = pipeline_for(settings)
        self.live = is_live(settings.uri)
        self.stats = CaptureStats()
        self._gst = _gst()
        from gi.repository import GstVideo

        self._gst_video = GstVideo
        self._clock = StreamClock(settings.fps)
        self._queue: collections.deque[Frame] = collections.deque()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._flowing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> Capture:
        self._thread.start()
        return self

    def _put(self, frame: Frame) -> None:
        with self._ready:
            if len(self._queue) >= self.settings.queue_frames:
                if self.live or self.settings.realtime:
                    self._queue.popleft()
                    self.stats.frames_dropped += 1
                else:
                    while len(self._queue) >= self.settings.queue_frames and not self._stop.is_set():
                        self._ready.wait(0.1)
            self._queue.append(frame)
            self.stats.frames_in += 1
            self._ready.notify_all()

    def _play_once(self) -> str:
        """Run the pipeline until it ends; returns 'eos', 'error', 'stalled' or 'stopped'."""
        gst = self._gst
        try:
            pipeline = gst.parse_launch(self.description)
        except Exception as exc:  # GLib.Error for a bad description or a missing element
            self.stats.last_error = str(exc)
            return "error"
        sink = pipeline.get_by_name("sink")
        bus = pipeline.get_bus()
        pipeline.set_state(gst.State.PLAYING)
        outcome, index = "stopped", 0
        last_frame_at = time.monotonic()
        try:
            while not self._stop.is_set():
                message = bus.pop_filtered(gst.MessageType.ERROR | gst.MessageType.EOS)
                if message is not None:
                    if message.type == gst.MessageType.ERROR:
                        error, _debug = message.parse_error()
                        self.stats.last_error = error.message
                        outcome = "error"
                    else:
                        outcome = "eos"
                    break
                sample = sink.try_pull_sample(PULL_TIMEOUT_NS)
                if sample is None:
                    if sink.is_eos():
                        outcome = "eos"
                        break
                    if self.live and time.monotonic() - last_frame_at >= self.settings.stall_s:
                        self.stats.stalls += 1
                        self.stats.last_error = f"no frame for {self.settings.stall_s:g} s (stalled)"
                        outcome = "stalled"
                        break
                    continue
                last_frame_at = time.monotonic()
                if index == 0:
                    self._begin_epoch(last_frame_at)
                pts = sample.get_buffer().pts
                pts_s = pts / gst.SECOND if pts != gst.CLOCK_TIME_NONE else index / self.settings.fps
                frame = Frame(
                    _to_array(sample, self._gst_video),
                    self._clock.stamp(pts_s),
                    index,
                    self.stats.epoch,
                    last_frame_at,
                )
                self._put(frame)
                index += 1
        finally:
            pipeline.set_state(gst.State.NULL)
        return outcome

    def _begin_epoch(self, now: float) -> None:
        """The first frame of a (re)start: a new epoch, and the source is healthy again."""
        if self.stats.frames_in:
            self.stats.epoch += 1
        self._clock.new_epoch()
        if self.stats.last_error is not None:
            log.info("capture %s: frames flow again", self.settings.uri)
        self.stats.last_error = None
        self._flowing_since = now

    def _run(self) -> None:
        longest_s = self.settings.reconnect_max_s
        backoff = Backoff(min(FIRST_RETRY_S, longest_s), longest_s, HEALTHY_S)
        try:
            while not self._stop.is_set():
                self._flowing_since = None
                try:
                    outcome = self._play_once()
                except Exception as exc:  # a GStreamer binding surprise must not end capture for good
                    log.exception("capture %s failed", self.settings.uri)
                    self.stats.last_error, outcome = f"{type(exc).__name__}: {exc}", "error"
                if outcome == "stopped":
                    break
                if not self.live:
                    if outcome == "eos" and self.settings.loop:
                        continue
                    if outcome == "error":
                        log.error("capture %s failed: %s", self.settings.uri, self.stats.last_error)
                    break
                if outcome == "eos":
                    self.stats.last_error = "the source ended (end of stream)"
                flowed_s = 0.0 if self._flowing_since is None else time.monotonic() - self._flowing_since
                delay_s = backoff.after(flowed_s)
                self.stats.restarts += 1
                log.warning(
                    "capture %s: %s; restarting in %.1f s", self.settings.uri, self.stats.last_error, delay_s
                )
                if self._stop.wait(delay_s):
                    break
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify_all()

    def frames(self, timeout_s: float = 0.5) -> Iterator[Frame | None]:
        """Frames in order; None when none arrived within ``timeout_s`` (lets callers tick)."""
        while True:
            with self._ready:
                if not self._queue:
                    if self._ended:
                        return
                    self._ready.wait(timeout_s)
                if not self._queue:
                    if self._ended:
                        return
                    frame = None
                else:
                    frame = self._queue.popleft()
                    self._ready.notify_all()
            yield frame

    def health(self) -> CaptureHealth:
        stats = self.stats
        if self._ended:
            worker = WorkerHealth("stopped", stats.restarts, stats.last_error)
        else:
            worker = WorkerHealth.of(stats.last_error, stats.restarts, self._flowing_since is not None)
        return CaptureHealth(
            worker,
            stats.frames_in,
            stats.frames_dropped,
            stats.restarts,
            stats.stalls,
            stats.epoch,
            stats.last_error,
        )

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
