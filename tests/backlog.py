"""Feedback backlogs written straight into the store, for sync tests and bench/sync.py."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

from edge.runtime.store import DB_FILE, Store

WORDS = ("book", "drink", "computer", "before", "chair", "go", "clothes", "who", "candy", "cousin")


def write_backlog(
    state_dir: Path, count: int, start_s: float = 1_795_000_000.0, seed: int = 0, spacing_s: float = 1.0
) -> None:
    """``count`` predictions, each with one unsynced feedback row, in one transaction (fast)."""
    Store(state_dir).close()
    rng = random.Random(seed)
    db = sqlite3.connect(Path(state_dir) / DB_FILE)
    first = db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    predictions, feedback = [], []
    for index in range(first, first + count):
        word = rng.choice(WORDS)
        top_k = json.dumps([{"word": word, "score": 0.8}, {"word": rng.choice(WORDS), "score": 0.1}])
        created = start_s + index * spacing_s
        correct = rng.random() < 0.7
        predictions.append(
            (f"pred-{index}", created, word, 0.8, top_k, 0.0, 1.5, 40.0, "demo_i3d-test", "onnxruntime")
        )
        feedback.append(
            (f"pred-{index}", created + 2.0, int(correct), None if correct else rng.choice(WORDS), word)
        )
    with db:
        db.executemany(
            "INSERT INTO predictions (id, created_at, word, confidence, top_k, start_s, end_s, latency_ms, "
            "model_id, backend) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            predictions,
        )
        db.executemany(
            "INSERT INTO feedback (prediction_id, received_at, correct, label, predicted_word) "
            "VALUES (?, ?, ?, ?, ?)",
            feedback,
        )
    db.close()
