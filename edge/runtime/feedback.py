"""Validation of feedback messages from the kiosk UI (MQTT ``.../feedback``).

Anything can arrive on a topic, so every field is checked before the store sees it: size, UTF-8,
JSON, an object with known keys only, types (``correct`` must be a real boolean), identifier and
label lengths and characters. A rejection carries one short reason for the ack topic, an
``error`` code (``invalid``, ``unknown_prediction``, ``already_answered``, ``store_failed``) and,
whenever the request had a readable one, its ``prediction_id``, so a UI can match acks to requests.

A prediction is answered once. The same answer again (a double tap, an MQTT QoS 1 redelivery, a
retried POST) gets the first answer's ack again, marked ``duplicate``, and stores nothing; a
different second answer is rejected as ``already_answered``.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass

import cv2

from edge.runtime.clips import ClipKeeper
from edge.runtime.mqtt import MESSAGE_SCHEMA
from edge.runtime.store import AlreadyAnswered, FeedbackRecord, Store, StoreError, UnknownPrediction

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
MAX_LABEL_CHARS = 64
_PREDICTION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_KNOWN_KEYS = {"schema", "prediction_id", "correct", "label", "consent"}


@dataclass(frozen=True)
class Feedback:
    prediction_id: str
    correct: bool
    label: str | None
    consent: bool = False


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


def _rejected(error: str, reason: str, prediction_id: str | None) -> dict[str, object]:
    if error != "store_failed":
        log.warning("feedback rejected: %s", reason)
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


def handle_feedback(payload: bytes, store: Store, clips: ClipKeeper | None = None) -> dict[str, object]:
    """Validate, store durably, and return the acknowledgement (or rejection) to publish.

    The acknowledgement carries the stored record with the predicted word, so fleet subscribers
    see feedback as it happens; it is only produced after the row is on disk.
    """
    try:
        feedback = parse_feedback(payload)
    except FeedbackRejected as exc:
        return _rejected("invalid", str(exc), _prediction_id_of(payload))
    clip_file = _consented_clip(feedback, clips)
    try:
        record = store.add_feedback(feedback.prediction_id, feedback.correct, feedback.label, clip_file)
    except StoreError as exc:
        if clips is not None and clip_file is not None:
            (clips.folder / clip_file).unlink(missing_ok=True)
        if isinstance(exc, AlreadyAnswered):
            first = exc.first
            if (first.correct, first.label) == (feedback.correct, feedback.label):
                return _stored(first, duplicate=True)
            return _rejected("already_answered", str(exc), feedback.prediction_id)
        if isinstance(exc, UnknownPrediction):
            return _rejected("unknown_prediction", str(exc), feedback.prediction_id)
        log.error("feedback not stored: %s", exc)
        return _rejected(
            "store_failed", "the device could not store feedback; try again", feedback.prediction_id
        )
    return _stored(record)
