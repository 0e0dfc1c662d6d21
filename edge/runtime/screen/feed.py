"""What the kiosk screen shows, and the live feed that carries it to every open page.

The daemon's threads hand events in (a prediction, an acknowledgement, the model's labels, each
health message for the banner); each one updates a small snapshot that goes to every connected page as one
Server-Sent Event, so a page only ever renders the latest snapshot and a page that connects gets
it at once. Nothing here blocks the caller: each page has a bounded queue, and a page that falls
that far behind is dropped (its browser reconnects and starts again from the snapshot).
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from edge.core.decode import UNKNOWN_WORD

log = logging.getLogger(__name__)

SENTENCE_WORDS = 8
STREAM_QUEUE_EVENTS = 32
MAX_STREAMS = 8
RECONNECT_MS = 1000
CAMERA_STALL_S = 2.0
BROKER_OFFLINE = "broker offline: words are kept and sent later"


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One Server-Sent Event; JSON never holds a raw newline, so one ``data:`` line suffices."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {text}\n\n".encode()


class Stream:
    """One connected page: the events it has yet to receive, in order."""

    def __init__(self) -> None:
        self._events: queue.Queue[bytes | None] = queue.Queue(maxsize=STREAM_QUEUE_EVENTS)
        self.closed = threading.Event()

    def offer(self, event: bytes) -> bool:
        """Queue an event without waiting; False (and the stream closed) when the page is too far
        behind."""
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self.close()
            return False
        return True

    def next(self, timeout_s: float) -> bytes | None:
        """The next event, or None after ``timeout_s`` without one (or once closed)."""
        if self.closed.is_set():
            return None
        try:
            return self._events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(queue.Full):  # wakes the writer now when there is room
            self._events.put_nowait(None)


def _problems(status: Mapping[str, Any], camera_stalled: bool) -> list[dict[str, str]]:
    """What is wrong, in words for the screen's banner, most urgent first."""
    problems = []
    if status.get("capture_error") and camera_stalled:
        problems.append({"kind": "camera", "text": f"camera problem: {status['capture_error']}"})
    if status.get("model_reloading"):
        problems.append({"kind": "model", "text": "loading a new model: words continue with the current one"})
    elif status.get("model_reload_error"):
        problems.append(
            {
                "kind": "model",
                "text": f"model reload failed, the previous model stays: {status['model_reload_error']}",
            }
        )
    if status.get("mqtt_connected") is False:
        problems.append({"kind": "broker", "text": BROKER_OFFLINE})
    return problems


class ScreenFeed:
    """The screen's state and its connected pages; every method is safe from any thread."""

    def __init__(self, clips: bool = False, max_streams: int = MAX_STREAMS, self_view: bool = False) -> None:
        self._lock = threading.Lock()
        self._self_view = self_view
        self._activity: dict[str, Any] = {"state": "idle", "at": time.time()}
        self._streams: list[Stream] = []
        self._max_streams = max_streams
        self._clips = clips
        self._labels: list[str] = []
        self._model = ""
        self._prediction: dict[str, Any] | None = None
        self._answer: dict[str, Any] | None = None
        self._sentence: collections.deque[dict[str, str]] = collections.deque(maxlen=SENTENCE_WORDS)
        self._status: dict[str, Any] = {"problems": [], "mqtt_connected": None}
        self._frames_in: object = None
        self._frames_changed_at = time.monotonic()
        self.dropped_streams = 0

    @property
    def streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def snapshot(self) -> dict[str, Any]:
        """Everything the page renders except the labels (sent once per connection and model)."""
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> dict[str, Any]:
        return {
            "prediction": self._prediction,
            "answer": self._answer,
            "sentence": [entry["word"] for entry in self._sentence],
            "status": self._status,
            "clips": self._clips,
            "model": self._model,
            "activity": self._activity,
            "self_view": self._self_view,
        }

    def labels(self) -> dict[str, Any]:
        with self._lock:
            return {"labels": list(self._labels), "model": self._model}

    def open_stream(self) -> Stream:
        """A new page: it gets the labels and the snapshot first. Past ``max_streams`` the oldest
        page is dropped (a kiosk that reloads its page must always get in)."""
        stream = Stream()
        with self._lock:
            while len(self._streams) >= self._max_streams:
                self._streams.pop(0).close()
                self.dropped_streams += 1
            stream.offer(f"retry: {RECONNECT_MS}\n\n".encode())
            stream.offer(sse("labels", {"labels": list(self._labels), "model": self._model}))
            stream.offer(sse("state", self._snapshot_locked()))
            self._streams.append(stream)
        return stream

    def close_stream(self, stream: Stream) -> None:
        stream.close()
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)

    def close_all(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()

    def _broadcast_locked(self, event: str, data: dict[str, Any]) -> None:
        frame = sse(event, data)
        for stream in list(self._streams):
            if not stream.offer(frame):
                self._streams.remove(stream)
                self.dropped_streams += 1
                log.info("screen: dropped a page that stopped reading its events")

    def set_model(self, labels: tuple[str, ...] | list[str], model_id: str) -> None:
        """The active model's labels, for the page's word picker (at start and after a reload)."""
        with self._lock:
            if list(labels) == self._labels and model_id == self._model:
                return
            self._labels, self._model = list(labels), model_id
            self._broadcast_locked("labels", {"labels": self._labels, "model": model_id})
            self._broadcast_locked("state", self._snapshot_locked())

    def publish_prediction(self, payload: dict[str, Any]) -> None:
        """A word as published on MQTT (``id``, ``word``, ``confidence``, ``top_k``)."""
        prediction: dict[str, Any] = {
            "id": str(payload["id"]),
            "word": str(payload["word"]),
            "confidence": float(payload["confidence"]),
            "top_k": [{"word": str(s["word"]), "score": float(s["score"])} for s in payload["top_k"]],
        }
        with self._lock:
            self._prediction, self._answer = prediction, None
            if prediction["word"] != UNKNOWN_WORD:
                self._sentence.append({"id": str(payload["id"]), "word": str(payload["word"])})
            self._broadcast_locked("state", self._snapshot_locked())

    def publish_ack(self, ack: dict[str, Any]) -> None:
        """A stored answer, from this screen or any MQTT client: the page shows it, and a corrected
        word replaces the recognized one in the sentence. Rejections go only to who asked."""
        feedback = ack.get("feedback")
        if ack.get("status") != "stored" or not isinstance(feedback, dict):
            return
        prediction_id, label = feedback.get("prediction_id"), feedback.get("label")
        answer = {"prediction_id": prediction_id, "correct": feedback.get("correct"), "label": label}
        with self._lock:
            changed = False
            if self._prediction is not None and self._prediction["id"] == prediction_id:
                changed = answer != self._answer
                self._answer = answer
            if not feedback.get("correct") and isinstance(label, str):
                for entry in self._sentence:
                    if entry["id"] == prediction_id and entry["word"] != label:
                        entry["word"], changed = label, True
            if changed:
                self._broadcast_locked("state", self._snapshot_locked())

    def set_activity(self, activity: dict[str, Any]) -> None:
        """What the kiosk is doing (``edge.runtime.activity``): a small event of its own, at once,
        since the signer watches it while they sign."""
        with self._lock:
            self._activity = activity
            self._broadcast_locked("activity", activity)

    def clear_sentence(self) -> None:
        with self._lock:
            if self._sentence:
                self._sentence.clear()
                self._broadcast_locked("state", self._snapshot_locked())

    def publish_status(self, status: Mapping[str, Any]) -> None:
        """A health message (its ``capture_error``, ``frames_in``, ``mqtt_connected``,
        ``model_reloading`` and ``model_reload_error`` count): a change of what is wrong reaches the
        pages at once. A capture error counts only while no frame arrived for ``CAMERA_STALL_S`` (a
        camera that came back is fine)."""
        frames_in, now = status.get("frames_in"), time.monotonic()
        with self._lock:
            if frames_in != self._frames_in:
                self._frames_in, self._frames_changed_at = frames_in, now
            stalled = now - self._frames_changed_at >= CAMERA_STALL_S
            summary = {
                "problems": _problems(status, stalled),
                "mqtt_connected": status.get("mqtt_connected"),
            }
            if summary != self._status:
                self._status = summary
                self._broadcast_locked("state", self._snapshot_locked())
