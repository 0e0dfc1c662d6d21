"""Consent clips: bounded memory of recent signs, written only for consented answers, expired."""

import json
import os
import time

import cv2
import numpy as np

from edge.runtime.clips import CLIPS_DIR, ClipKeeper, expire_clips
from edge.runtime.feedback import handle_feedback
from edge.runtime.store import PredictionRecord, Store


def _frames(seed: int, count: int = 32, size: int = 224) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(count)]


def test_the_keeper_remembers_the_last_few_signs_and_writes_a_playable_video(tmp_path):
    keeper = ClipKeeper(tmp_path / CLIPS_DIR, remembered=3)
    for index in range(5):
        keeper.remember(f"p-{index}", _frames(index), fps=16.0)
    assert keeper.write("p-0") is None
    assert keeper.write("p-1") is None
    assert keeper.write("p-4") == "p-4.mp4"
    assert keeper.write("p-4") is None, "a clip is written once, then forgotten"
    video = cv2.VideoCapture(str(tmp_path / CLIPS_DIR / "p-4.mp4"))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 32
    assert frames[0].shape == (224, 224, 3)
    assert video.get(cv2.CAP_PROP_FPS) == 16.0
    assert sorted(p.name for p in (tmp_path / CLIPS_DIR).iterdir()) == ["p-4.mp4"]


def _feedback(prediction_id: str, correct: bool, **extra: object) -> bytes:
    return json.dumps({"prediction_id": prediction_id, "correct": correct, **extra}).encode()


def test_consented_answers_right_or_corrected_keep_a_clip_and_no_others(tmp_path):
    store = Store(tmp_path)
    keeper = ClipKeeper(tmp_path / CLIPS_DIR, remembered=5)
    for index in range(1, 6):
        store.add_prediction(PredictionRecord(f"p-{index}", "book", 0.9, [], "m"))
        keeper.remember(f"p-{index}", _frames(index, count=8), fps=10.0)
    acks = [
        handle_feedback(_feedback("p-1", False, label="drink", consent=True), store, keeper),
        handle_feedback(_feedback("p-2", False, label="drink"), store, keeper),
        handle_feedback(_feedback("p-3", True, consent=True), store, keeper),
        handle_feedback(_feedback("p-4", False, consent=True), store, None),
        handle_feedback(_feedback("p-5", False, consent="yes"), store, keeper),
    ]
    assert [ack["status"] for ack in acks] == ["stored"] * 4 + ["rejected"]
    assert acks[4]["reason"] == "consent must be true or false"
    clips = {row.prediction_id: row.clip_file for row in store.sync_rows()}
    assert clips == {"p-1": "p-1.mp4", "p-2": None, "p-3": "p-3.mp4", "p-4": None}
    assert sorted(p.name for p in (tmp_path / CLIPS_DIR).iterdir()) == ["p-1.mp4", "p-3.mp4"]


def test_clips_past_their_retention_are_deleted_and_no_longer_named(tmp_path):
    store = Store(tmp_path)
    keeper = ClipKeeper(tmp_path / CLIPS_DIR)
    for index in (1, 2):
        store.add_prediction(PredictionRecord(f"p-{index}", "book", 0.9, [], "m"))
        keeper.remember(f"p-{index}", _frames(index, count=4), fps=10.0)
        store.add_feedback(f"p-{index}", False, None, keeper.write(f"p-{index}"))
    old = time.time() - 8 * 86400
    os.utime(tmp_path / CLIPS_DIR / "p-1.mp4", (old, old))
    assert expire_clips(store, tmp_path / CLIPS_DIR, retention_days=7) == 1
    assert [p.name for p in (tmp_path / CLIPS_DIR).iterdir()] == ["p-2.mp4"]
    assert {row.prediction_id: row.clip_file for row in store.sync_rows()} == {"p-1": None, "p-2": "p-2.mp4"}
    assert expire_clips(store, tmp_path / "nothing-here", retention_days=7) == 0
