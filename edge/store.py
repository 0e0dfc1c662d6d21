"""The device's durable record: predictions and the feedback users give on them (SQLite, WAL).

Feedback is the data that trains better models, so a feedback row is committed with
``synchronous=FULL`` before ``add_feedback`` returns, and only then may the caller acknowledge
it. Predictions are recorded so that feedback can refer to them and carry the predicted word.
Rows are marked synced only after their batch was uploaded (``mark_synced``), so a crash between
upload and mark re-sends the same rows, never loses them. One connection, guarded by a lock, is
shared by the inference and MQTT threads.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge.errors import AslEdgeError

DB_FILE = "asl-edge.db"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    word TEXT NOT NULL,
    confidence REAL NOT NULL,
    top_k TEXT NOT NULL,
    start_s REAL,
    end_s REAL,
    latency_ms REAL,
    model_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prediction_id TEXT NOT NULL REFERENCES predictions(id),
    received_at REAL NOT NULL,
    correct INTEGER NOT NULL,
    label TEXT,
    predicted_word TEXT NOT NULL,
    synced_key TEXT
);
CREATE INDEX IF NOT EXISTS feedback_unsynced ON feedback(id) WHERE synced_key IS NULL;
"""


class StoreError(AslEdgeError):
    """The store cannot be opened or written."""


class UnknownPrediction(StoreError):
    """Feedback names a prediction this device never made (or no longer has)."""


@dataclass(frozen=True)
class PredictionRecord:
    id: str
    word: str
    confidence: float
    top_k: list[dict[str, object]]
    model_id: str
    start_s: float | None = None
    end_s: float | None = None
    latency_ms: float | None = None
    created_at: float = 0.0


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    prediction_id: str
    received_at: float
    correct: bool
    label: str | None
    predicted_word: str
    synced_key: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "feedback_id": self.id,
            "prediction_id": self.prediction_id,
            "received_at": self.received_at,
            "correct": self.correct,
            "label": self.label,
            "predicted_word": self.predicted_word,
        }


class Store:
    """Predictions and feedback in ``state_dir/asl-edge.db``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / DB_FILE
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: written by a newer asl-edge (schema {version}); upgrade asl-edge"
                )
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc}") from exc

    def _write(self, sql: str, parameters: tuple[object, ...]) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, parameters)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.path}: write failed: {exc}") from exc

    def add_prediction(self, record: PredictionRecord) -> None:
        self._write(
            "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.created_at or time.time(),
                record.word,
                record.confidence,
                json.dumps(record.top_k),
                record.start_s,
                record.end_s,
                record.latency_ms,
                record.model_id,
            ),
        )

    def prediction_word(self, prediction_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT word FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
        return row[0] if row else None

    def add_feedback(self, prediction_id: str, correct: bool, label: str | None) -> FeedbackRecord:
        """Store feedback durably; raises UnknownPrediction for an id this device never issued."""
        word = self.prediction_word(prediction_id)
        if word is None:
            raise UnknownPrediction(f"unknown prediction_id {prediction_id!r}")
        received = time.time()
        cursor = self._write(
            "INSERT INTO feedback (prediction_id, received_at, correct, label, predicted_word) "
            "VALUES (?, ?, ?, ?, ?)",
            (prediction_id, received, int(correct), label, word),
        )
        return FeedbackRecord(int(cursor.lastrowid or 0), prediction_id, received, correct, label, word)

    def unsynced_feedback(self, limit: int = 1000) -> list[FeedbackRecord]:
        """Oldest first, so batches have stable, increasing id ranges."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, prediction_id, received_at, correct, label, predicted_word, synced_key "
                "FROM feedback WHERE synced_key IS NULL ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [FeedbackRecord(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows]

    def mark_synced(self, ids: list[int], key: str) -> int:
        """Mark rows as uploaded under ``key``; rows already marked keep their first key."""
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        cursor = self._write(
            f"UPDATE feedback SET synced_key = ? WHERE synced_key IS NULL AND id IN ({marks})", (key, *ids)
        )
        return cursor.rowcount

    def counts(self) -> dict[str, int]:
        with self._lock:
            return _counts(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    predictions = db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
    feedback, pending = db.execute("SELECT COUNT(*), COUNT(*) - COUNT(synced_key) FROM feedback").fetchone()
    return {"predictions": predictions, "feedback": feedback, "pending_feedback": pending}


def read_counts(state_dir: Path) -> dict[str, int] | None:
    """``Store.counts`` through a read-only connection, safe beside a running daemon (WAL readers
    never block the writer); None when there is no store yet."""
    path = Path(state_dir) / DB_FILE
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the store read-only: {exc}") from exc
    try:
        return _counts(db)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot read the store: {exc}") from exc
    finally:
        db.close()
