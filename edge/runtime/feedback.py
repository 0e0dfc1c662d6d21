"""Feedback from the kiosk UI (MQTT ``.../feedback``): validated, stored, acknowledged.

Anything can arrive on a topic, so every field is checked before the store sees it: size, UTF-8,
JSON, an object with known keys only, types (``correct`` must be a real boolean), identifier and
label lengths and characters. A rejection carries one short reason for the ack topic, an
``error`` code (``invalid``, ``unknown_prediction``, ``already_answered``, ``disk_full``,
``store_failed``, ``busy``, ``failed``) and, whenever the request had a readable one, its
``prediction_id``, so a UI can match acks to its requests.

A prediction is answered once. The same answer again (a double tap, an MQTT QoS 1 redelivery, a
retried POST) gets the first answer's ack again, marked ``duplicate``, and stores nothing; a
different second answer is rejected as ``already_answered``.

``FeedbackDesk`` does this work on its own thread: the SQLite fsync and a consent clip's MP4
encoding never run on paho's network thread, and a burst of feedback waits in a bounded queue
(when that is full, the message is refused at once with the reason). The daemon's predictions are
stored on the same thread (``record``), queued before they are published, so feedback on a word
always finds its prediction stored, and the inference thread never waits for the disk.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol

import cv2

from edge.runtime.clips import ClipKeeper
from edge.runtime.health_schema import FeedbackHealth, WorkerHealth
from edge.runtime.mqtt import MESSAGE_SCHEMA
from edge.runtime.store import AlreadyAnswered, FeedbackRecord, StoreError, StoreFull, UnknownPrediction

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
MAX_LABEL_CHARS = 64
DESK_LIMIT = 256  # feedback messages waiting to be stored
_PREDICTION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_KNOWN_KEYS = {"schema", "prediction_id", "correct", "label", "consent"}


@dataclass(frozen=True)
class Feedback:
    prediction_id: str
    correct: bool
    label: str | None
    consent: bool = False


class FeedbackStore(Protocol):
    """Where feedback is kept: ``Store`` itself, or the daemon's ``StoreKeeper``."""

    def add_feedback(
        self, prediction_id: str, correct: bool, label: str | None, clip_file: str | None = None
    ) -> FeedbackRecord: ...


class FeedbackRejected(ValueError):
    """The message is not valid feedback; the message says why, in one line."""


def _label_ok(label: str) -> bool:
    """Letters (any script), digits, spaces and a little punctuation; no control characters."""
    return (
        all(unicodedata.category(ch)[0] in ("L", "N", "M") or ch in " -'.,/" for ch in label)
        and label == label.strip()
    )


def parse_feedback(payload: bytes) -> Feedback:
    """A validated Feedback, or FeedbackRejected with the reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FeedbackRejected(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise FeedbackRejected("payload is not UTF-8") from None
    except (json.JSONDecodeError, RecursionError):
        raise FeedbackRejected("payload is not JSON") from None
    if not isinstance(data, dict):
        raise FeedbackRejected("payload must be a JSON object")
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise FeedbackRejected(f"unknown keys: {', '.join(sorted(unknown))[:100]}")
    if data.get("schema", MESSAGE_SCHEMA) != MESSAGE_SCHEMA:
        raise FeedbackRejected(f"schema must be {MESSAGE_SCHEMA}")
    prediction_id = data.get("prediction_id")
    if not isinstance(prediction_id, str) or not _PREDICTION_ID.fullmatch(prediction_id):
        raise FeedbackRejected("prediction_id must be a string of 1-64 letters, digits or '_.:-'")
    correct = data.get("correct")
    if not isinstance(correct, bool):
        raise FeedbackRejected("correct must be true or false")
    label = data.get("label")
    if label is not None:
        if not isinstance(label, str):
            raise FeedbackRejected("label must be a string")
        if not 0 < len(label) <= MAX_LABEL_CHARS:
            raise FeedbackRejected(f"label must be 1-{MAX_LABEL_CHARS} characters")
        if not _label_ok(label):
            raise FeedbackRejected("label may hold letters, digits, spaces and - ' . , / only")
    consent = data.get("consent", False)
    if not isinstance(consent, bool):
        raise FeedbackRejected("consent must be true or false")
    return Feedback(prediction_id, correct, label, consent)


def _consented_clip(feedback: Feedback, clips: ClipKeeper | None) -> str | None:
    """Write the sign's clip when clips are on, the word was wrong and the user consented."""
    if clips is None or feedback.correct or not feedback.consent:
        return None
    try:
        return clips.write(feedback.prediction_id)
    except (OSError, cv2.error) as exc:
        log.warning("the clip of %s was not kept: %s", feedback.prediction_id, exc)
        return None


def _prediction_id_of(payload: bytes) -> str | None:
    """The request's ``prediction_id`` when it can be read, even from a request rejected otherwise."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    prediction_id = data.get("prediction_id") if isinstance(data, dict) else None
    if isinstance(prediction_id, str) and _PREDICTION_ID.fullmatch(prediction_id):
        return prediction_id
    return None


def rejected(error: str, reason: str, prediction_id: str | None) -> dict[str, object]:
    """A rejection ack: the ``error`` code, the reason in one line, and the prediction it names."""
    ack: dict[str, object] = {"status": "rejected", "error": error, "reason": reason}
    if prediction_id is not None:
        ack["prediction_id"] = prediction_id
    return ack


def _stored(record: FeedbackRecord, duplicate: bool = False) -> dict[str, object]:
    ack: dict[str, object] = {
        "status": "stored",
        "prediction_id": record.prediction_id,
        "feedback": record.to_json(),
    }
    if duplicate:
        ack["duplicate"] = True
    return ack


def handle_feedback(
    payload: bytes, store: FeedbackStore, clips: ClipKeeper | None = None
) -> dict[str, object]:
    """Validate, store durably, and return the acknowledgement (or rejection) to publish.

    The acknowledgement carries the stored record with the predicted word, so fleet subscribers
    see feedback as it happens; it is only produced after the row is on disk.
    """
    try:
        feedback = parse_feedback(payload)
    except FeedbackRejected as exc:
        log.warning("feedback rejected: %s", exc)
        return rejected("invalid", str(exc), _prediction_id_of(payload))
    clip_file = _consented_clip(feedback, clips)
    try:
        record = store.add_feedback(feedback.prediction_id, feedback.correct, feedback.label, clip_file)
    except StoreError as exc:
        if clips is not None and clip_file is not None:
            (clips.folder / clip_file).unlink(missing_ok=True)
        return _refused(feedback, exc)
    return _stored(record)


def _refused(feedback: Feedback, exc: StoreError) -> dict[str, object]:
    """The ack for feedback the store did not take: a repeat of the first answer, or why not."""
    if isinstance(exc, AlreadyAnswered):
        first = exc.first
        if (first.correct, first.label) == (feedback.correct, feedback.label):
            return _stored(first, duplicate=True)
        log.warning("feedback rejected: %s", exc)
        return rejected("already_answered", str(exc), feedback.prediction_id)
    if isinstance(exc, UnknownPrediction):
        log.warning("feedback rejected: %s", exc)
        return rejected("unknown_prediction", str(exc), feedback.prediction_id)
    log.error("feedback not stored: %s", exc)
    if isinstance(exc, StoreFull):
        reason = "the device's disk is full; feedback cannot be stored now"
        return rejected("disk_full", reason, feedback.prediction_id)
    return rejected("store_failed", "the device could not store feedback; try again", feedback.prediction_id)


Job = Callable[[], object]


class FeedbackDesk:
    """Handles feedback on its own thread: ``submit`` never blocks, each answer is acknowledged
    through ``acknowledge`` (the MQTT ack) and also returned to the submitter's future."""

    def __init__(
        self,
        handle: Callable[[bytes], dict[str, object]],
        acknowledge: Callable[[dict[str, object]], None],
        limit: int = DESK_LIMIT,
    ) -> None:
        self._handle = handle
        self._acknowledge = acknowledge
        self._limit = limit
        # Feedback is bounded by ``limit``; recorded predictions always get in (one per sign).
        self._waiting: queue.Queue[tuple[bytes, Future[dict[str, object]]] | Job | None] = queue.Queue()
        self._feedback_waiting = 0
        self._thread = threading.Thread(target=self._run, name="feedback", daemon=True)
        self.received = self.stored = self.rejected = 0
        self.last_error: str | None = None
        self._counting = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def submit(self, payload: bytes) -> Future[dict[str, object]]:
        answer: Future[dict[str, object]] = Future()
        with self._counting:
            self.received += 1
            full = self._feedback_waiting >= self._limit
            if not full:
                self._feedback_waiting += 1
                self._waiting.put_nowait((payload, answer))
        if full:
            busy = rejected("busy", "too much feedback at once; try again", _prediction_id_of(payload))
            self._answer(busy, answer)
        return answer

    def record(self, job: Job) -> None:
        """Run ``job`` (storing a prediction) on the desk's thread, before any feedback submitted
        after this call; never blocks."""
        self._waiting.put_nowait(job)

    def _run(self) -> None:
        while (item := self._waiting.get()) is not None:
            if callable(item):
                try:
                    item()
                except Exception as exc:  # a bug here must not end feedback handling for good
                    log.exception("recording on the feedback desk failed")
                    self.last_error = f"{type(exc).__name__}: {exc}"
                continue
            payload, answer = item
            with self._counting:
                self._feedback_waiting -= 1
            try:
                ack = self._handle(payload)
                self.last_error = None
            except Exception as exc:  # a bug here must not end feedback handling for good
                log.exception("feedback handling failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
                reason = f"the device failed to handle it: {type(exc).__name__}"
                ack = rejected("failed", reason, _prediction_id_of(payload))
            self._answer(ack, answer)

    def _answer(self, ack: dict[str, object], answer: Future[dict[str, object]]) -> None:
        with self._counting:
            if ack.get("status") == "stored":
                self.stored += 1
            else:
                self.rejected += 1
        self._acknowledge(ack)
        answer.set_result(ack)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Handle what is waiting, then end the thread."""
        if self._thread.is_alive():
            self._waiting.put(None)
            self._thread.join(timeout_s)

    def health(self) -> FeedbackHealth:
        if self._thread.is_alive():
            worker = WorkerHealth.of(self.last_error)
        else:
            worker = WorkerHealth("stopped" if self._thread.ident else "starting", 0, self.last_error)
        return FeedbackHealth(worker, self.received, self.stored, self.rejected, self._feedback_waiting)
