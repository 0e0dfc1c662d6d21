"""Camera and video capture through GStreamer (PyGObject), as BGR frames with stream timestamps.

Sources are URIs, as in jetson-utils: ``csi://0`` (Jetson camera through nvarguscamerasrc),
``v4l2:///dev/video0``, ``file:///path/video.mp4``, ``rtsp://host/stream``, ``test://`` (a moving
test pattern) or ``gst:<pipeline>`` ending in ``appsink name=sink`` for experts. Each becomes a
pipeline ending in an appsink; a thread pulls samples into a bounded queue.

Capture never blocks the camera: when the consumer falls behind, the oldest frame is dropped and
counted. A file plays at its own frame rate like a camera, or with ``realtime=False`` as fast as the
consumer takes frames, losing none (batch work). A live source that errors or ends is restarted
with exponential backoff; a file ends the stream (or loops). Timestamps are the buffers' PTS.
"""

from __future__ import annotations

import collections
import logging
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

PULL_TIMEOUT_NS = 100_000_000
BGR_CAPS = "video/x-raw,format=BGR"


class CaptureError(AslEdgeError):
    """A source URI cannot be turned into a pipeline, or GStreamer is missing."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    timestamp_s: float  # stream time of the frame (buffer PTS)
    index: int


@dataclass(frozen=True)
class SourceSettings:
    uri: str = "test://"
    width: int = 640
    height: int = 480
    fps: int = 30
    loop: bool = False
    realtime: bool = True
    queue_frames: int = 8
    restart_backoff_s: tuple[float, float] = (0.5, 30.0)


@dataclass
class CaptureStats:
    frames_in: int = 0
    frames_dropped: int = 0
    restarts: int = 0
    last_error: str | None = None


def is_live(uri: str) -> bool:
    return not uri.startswith(("file://", "gst:"))


def pipeline_for(settings: SourceSettings) -> str:
    """The GStreamer pipeline description for a source URI."""
    uri, w, h, fps = settings.uri, settings.width, settings.height, settings.fps
    scaled = f"{BGR_CAPS},width={w},height={h}"
    parsed = urllib.parse.urlsplit(uri)
    if uri.startswith("gst:"):
        description = uri[4:].strip()
        if "appsink" not in description or "name=sink" not in description:
            raise CaptureError(f"{uri}: a raw pipeline must end in 'appsink name=sink'")
        return description
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
    if parsed.scheme == "file":
        path = urllib.parse.unquote(parsed.path)
        sync = "true" if settings.realtime else "false"
        return (
            f'filesrc location="{path}" ! decodebin ! videoconvert ! {BGR_CAPS} ! '
            f"appsink name=sink max-buffers=4 drop=false sync={sync}"
        )
    raise CaptureError(f"{uri}: unsupported source; use csi://, v4l2://, file://, rtsp://, test:// or gst:")


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
    """Copy a BGR sample into a (H, W, 3) array, honouring the row stride."""
    caps = sample.get_caps()
    info = gst_video.VideoInfo.new_from_caps(caps)
    width, height, stride = info.width, info.height, info.stride[0]
    buffer = sample.get_buffer()
    data = buffer.extract_dup(0, buffer.get_size())
    rows = np.frombuffer(data, dtype=np.uint8, count=stride * height).reshape(height, stride)
    return rows[:, : width * 3].reshape(height, width, 3).copy()


class Capture:
    """Runs a source in a thread; iterate ``frames()`` to consume, ``close()`` to stop."""

    def __init__(self, settings: SourceSettings) -> None:
        self.settings = settings
        self.description = pipeline_for(settings)
        self.live = is_live(settings.uri)
        self.stats = CaptureStats()
        self._gst = _gst()
        from gi.repository import GstVideo

        self._gst_video = GstVideo
        self._queue: collections.deque[Frame] = collections.deque()
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

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
        """Run the pipeline until it ends; returns 'eos', 'error' or 'stopped'."""
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
                    continue
                pts = sample.get_buffer().pts
                timestamp = pts / gst.SECOND if pts != gst.CLOCK_TIME_NONE else index / self.settings.fps
                self._put(Frame(_to_array(sample, self._gst_video), timestamp, index))
                index += 1
        finally:
            pipeline.set_state(gst.State.NULL)
        return outcome

    def _run(self) -> None:
        delay, longest = self.settings.restart_backoff_s
        while not self._stop.is_set():
            outcome = self._play_once()
            if outcome == "stopped":
                break
            if not self.live:
                if outcome == "eos" and self.settings.loop:
                    continue
                if outcome == "error":
                    log.error("capture %s failed: %s", self.settings.uri, self.stats.last_error)
                break
            self.stats.restarts += 1
            log.warning(
                "capture %s %s (%s); restarting in %.1f s",
                self.settings.uri,
                outcome,
                self.stats.last_error or "end of stream",
                delay,
            )
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, longest)
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

    @property
    def ended(self) -> bool:
        return self._ended and not self._queue

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        self._thread.join(timeout_s)
