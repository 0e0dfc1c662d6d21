"""Feedback validation: good messages pass, everything else is rejected with a reason."""

import json

import numpy as np
import pytest

from edge.runtime.feedback import Feedback, FeedbackRejected, handle_feedback, parse_feedback
from edge.runtime.store import PredictionRecord, Store


def _payload(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_valid_feedback():
    assert parse_feedback(_payload(prediction_id="p-1", correct=True)) == Feedback("p-1", True, None)
    parsed = parse_feedback(_payload(schema=1, prediction_id="p-1", correct=False, label="thank you"))
    assert parsed == Feedback("p-1", False, "thank you")
    assert parse_feedback(_payload(prediction_id="x", correct=False, label="café")).label == "café"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"x" * 5000, "exceeds 4096"),
        (b"[" * 3000 + b"]" * 3000, "exceeds"),
        (_payload(prediction_id="p", correct=1), "true or false"),
        (_payload(prediction_id="p", correct="yes"), "true or false"),
        (_payload(prediction_id=5, correct=True), "prediction_id"),
        (_payload(prediction_id="../etc/passwd", correct=True), "prediction_id"),
        (_payload(prediction_id="p" * 65, correct=True), "prediction_id"),
        (_payload(prediction_id="p", correct=True, label=""), "1-64 characters"),
        (_payload(prediction_id="p", correct=True, label="a" * 65), "1-64 characters"),
        (_payload(prediction_id="p", correct=True, label="<script>"), "letters, digits"),
        (_payload(prediction_id="p", correct=True, label="bad\nline"), "letters, digits"),
        (_payload(prediction_id="p", correct=True, label=["x"]), "must be a string"),
        (_payload(prediction_id="p", correct=True, admin=True), "unknown keys: admin"),
        (_payload(schema=2, prediction_id="p", correct=True), "schema must be 1"),
    ],
)
def test_invalid_feedback_is_rejected_with_a_reason(payload, reason):
    with pytest.raises(FeedbackRejected, match=reason) as info:
        parse_feedback(payload)
    assert "\n" not in str(info.value)


def test_deeply_nested_json_within_the_size_limit_is_rejected():
    with pytest.raises(FeedbackRejected):
        parse_feedback(b"[" * 2000 + b"]" * 2000)


def test_random_bytes_never_escape_as_another_exception():
    rng = np.random.default_rng(7)
    valid = _payload(prediction_id="p-1", correct=True, label="book")
    for _ in range(2000):
        if rng.random() < 0.5:
            payload = rng.bytes(int(rng.integers(0, 64)))
        else:
            mutated = bytearray(valid)
            for position in rng.integers(0, len(mutated), size=int(rng.integers(1, 4))):
                mutated[position] = int(rng.integers(0, 256))
            payload = bytes(mutated)
        try:
            result = parse_feedback(payload)
        except FeedbackRejected:
            continue
        assert isinstance(result.correct, bool)
        assert len(result.prediction_id) <= 64


def test_acks_name_the_prediction_and_a_second_answer_stores_nothing(tmp_path):
    store = Store(tmp_path)
    store.add_prediction(PredictionRecord("p-1", "book", 0.9, [{"word": "book", "score": 0.9}], "m"))
    first = handle_feedback(_payload(prediction_id="p-1", correct=False, label="drink"), store)
    assert (first["status"], first["prediction_id"], first["feedback"]["label"]) == ("stored", "p-1", "drink")
    assert "duplicate" not in first
    again = handle_feedback(_payload(prediction_id="p-1", correct=False, label="drink"), store)
    assert again == {**first, "duplicate": True}
    other = handle_feedback(_payload(prediction_id="p-1", correct=True), store)
    assert other == {
        "status": "rejected",
        "error": "already_answered",
        "reason": "prediction 'p-1' was already answered",
        "prediction_id": "p-1",
    }
    unknown = handle_feedback(_payload(prediction_id="p-2", correct=True), store)
    assert (unknown["error"], unknown["prediction_id"]) == ("unknown_prediction", "p-2")
    invalid = handle_feedback(_payload(prediction_id="p-1", correct="yes"), store)
    assert (invalid["error"], invalid["prediction_id"]) == ("invalid", "p-1")
    for unreadable in (b"{garbage", _payload(prediction_id="../x", correct=True), b"x" * 5000):
        ack = handle_feedback(unreadable, store)
        assert ack["error"] == "invalid" and "prediction_id" not in ack
    assert store.counts()["feedback"] == 1
