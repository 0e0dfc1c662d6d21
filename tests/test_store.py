"""The SQLite store: durable feedback tied to real predictions, write-ahead sync batches, schema
migration, retention and the disk budget."""

import logging
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from edge.runtime.store import (
    DB_FILE,
    DB_SCHEMA,
    AlreadyAnswered,
    FeedbackRecord,
    PredictionRecord,
    Store,
    StoreError,
    SyncBatch,
    UnknownPrediction,
)


def _prediction(index: int) -> PredictionRecord:
    return PredictionRecord(
        id=f"p-{index}", word="book", confidence=0.9, top_k=[{"word": "book", "score": 0.9}], model_id="m"
    )


def test_feedback_survives_a_reopen_and_carries_the_predicted_word(tmp_path):
    store = Store(tmp_path)
    store.add_prediction(_prediction(1))
    record = store.add_feedback("p-1", False, "drink")
    assert (record.predicted_word, record.label, record.correct) == ("book", "drink", False)
    store.close()
    reopened = Store(tmp_path)
    [row] = reopened.sync_rows()
    assert (row.feedback_id, row.prediction_id, row.label, row.correct) == (record.id, "p-1", "drink", False)
    assert reopened.counts() == {"predictions": 1, "feedback": 1, "pending_feedback": 1}
    journal = sqlite3.connect(tmp_path / DB_FILE).execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_unknown_prediction_and_duplicate_ids_are_refused(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(UnknownPrediction, match="unknown prediction_id 'nope'"):
        store.add_feedback("nope", True, None)
    store.add_prediction(_prediction(1))
    with pytest.raises(StoreError, match="write failed"):
        store.add_prediction(_prediction(1))
    assert store.counts()["feedback"] == 0


def _batch(key: str, first_id: int, last_id: int, rows: int) -> SyncBatch:
    return SyncBatch(key, first_id, last_id, rows, 100, "sum", time.time())


def test_batches_are_planned_before_upload_and_confirmed_after(tmp_path):
    store = Store(tmp_path)
    for index in range(1, 7):
        store.add_prediction(_prediction(index))
    ids = [store.add_feedback(f"p-{index}", True, None).id for index in range(1, 6)]
    assert [r.feedback_id for r in store.sync_rows(page_rows=2)] == ids
    store.plan_batch(_batch("a", ids[0], ids[2], 3))
    assert [r.feedback_id for r in store.sync_rows()] == ids[3:]
    assert [r.feedback_id for r in store.sync_rows("a")] == ids[:3]
    assert [b.key for b in store.pending_batches()] == ["a"]
    assert store.counts()["pending_feedback"] == 5
    with pytest.raises(StoreError, match="1 rows to assign, expected 2"):
        store.plan_batch(_batch("stale", ids[2], ids[3], 2))
    assert [b.key for b in store.pending_batches()] == ["a"]
    assert store.confirm_batch("a", time.time()) == 3
    assert store.confirm_batch("a", time.time()) == 0
    assert store.pending_batches() == []
    assert store.counts()["pending_feedback"] == 2
    new = store.add_feedback("p-6", False, "x").id
    assert [r.feedback_id for r in store.sync_rows()] == [*ids[3:], new]


def test_a_version_1_database_is_migrated_keeping_every_row(tmp_path, caplog):
    v1 = sqlite3.connect(tmp_path / DB_FILE)
    v1.executescript(
        """
        CREATE TABLE predictions (id TEXT PRIMARY KEY, created_at REAL NOT NULL, word TEXT NOT NULL,
            confidence REAL NOT NULL, top_k TEXT NOT NULL, start_s REAL, end_s REAL, latency_ms REAL,
            model_id TEXT NOT NULL);
        CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT,
            prediction_id TEXT NOT NULL REFERENCES predictions(id), received_at REAL NOT NULL,
            correct INTEGER NOT NULL, label TEXT, predicted_word TEXT NOT NULL, synced_key TEXT);
        CREATE INDEX feedback_unsynced ON feedback(id) WHERE synced_key IS NULL;
        INSERT INTO predictions VALUES ('p-1', 1.0, 'book', 0.9, '[]', 0.1, 0.9, 12.5, 'm1');
        INSERT INTO predictions VALUES ('p-2', 2.0, 'drink', 0.5, '[]', NULL, NULL, NULL, 'm1');
        INSERT INTO feedback VALUES (1, 'p-1', 3.0, 0, 'drink', 'book', NULL);
        INSERT INTO feedback VALUES (2, 'p-2', 4.0, 1, NULL, 'drink', 'old-key');
        PRAGMA user_version=1;
        """
    )
    v1.close()
    with caplog.at_level(logging.INFO, logger="edge.runtime.store"):
        store = Store(tmp_path)
    assert f"from schema 1 to {DB_SCHEMA}" in caplog.text
    assert store.counts() == {"predictions": 2, "feedback": 2, "pending_feedback": 1}
    [row] = store.sync_rows()
    assert (row.feedback_id, row.predicted_at, row.label, row.model_id, row.backend) == (
        1,
        1.0,
        "drink",
        "m1",
        "",
    )
    store.add_prediction(PredictionRecord("p-3", "go", 0.7, [], "m2", backend="onnxruntime"))
    assert store.add_feedback("p-3", True, None).id == 3
    store.close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    assert db.execute("PRAGMA user_version").fetchone()[0] == DB_SCHEMA
    assert db.execute("SELECT backend FROM predictions WHERE id = 'p-3'").fetchone() == ("onnxruntime",)


def _schema_2_store(folder: Path) -> None:
    """A store as asl-edge wrote it before predictions named their release: the schema-1 tables,
    then schema 2's columns, a pending batch, a synced row and a consent clip."""
    db = sqlite3.connect(folder / DB_FILE)
    db.executescript(
        """
        CREATE TABLE predictions (id TEXT PRIMARY KEY, created_at REAL NOT NULL, word TEXT NOT NULL,
            confidence REAL NOT NULL, top_k TEXT NOT NULL, start_s REAL, end_s REAL, latency_ms REAL,
            model_id TEXT NOT NULL, backend TEXT NOT NULL DEFAULT '');
        CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT,
            prediction_id TEXT NOT NULL REFERENCES predictions(id), received_at REAL NOT NULL,
            correct INTEGER NOT NULL, label TEXT, predicted_word TEXT NOT NULL, synced_key TEXT,
            batch_key TEXT, clip_file TEXT);
        CREATE TABLE sync_batches (key TEXT PRIMARY KEY, first_id INTEGER NOT NULL,
            last_id INTEGER NOT NULL, row_count INTEGER NOT NULL, bytes INTEGER NOT NULL,
            checksum TEXT NOT NULL, planned_at REAL NOT NULL, uploaded_at REAL);
        CREATE INDEX feedback_unsynced ON feedback(id) WHERE synced_key IS NULL;
        INSERT INTO predictions VALUES ('p-1', 1.0, 'book', 0.9, '[]', 0.1, 0.9, 12.5, 'm1', 'openvino');
        INSERT INTO predictions VALUES ('p-2', 2.0, 'drink', 0.5, '[]', NULL, NULL, NULL, 'm1', 'ort');
        INSERT INTO predictions VALUES ('p-3', 3.0, 'go', 0.4, '[]', NULL, NULL, NULL, 'm1', 'onnxruntime');
        INSERT INTO feedback VALUES (1, 'p-1', 3.0, 0, 'drink', 'book', NULL, 'k-1', 'p-1.mp4');
        INSERT INTO feedback VALUES (2, 'p-2', 4.0, 1, NULL, 'drink', 'old-key', 'old-key', NULL);
        INSERT INTO sync_batches VALUES ('k-1', 1, 1, 1, 100, 'sum', 5.0, NULL);
        PRAGMA user_version=2;
        """
    )
    db.close()


def test_a_version_2_database_is_migrated_and_new_predictions_name_their_release(tmp_path, caplog):
    _schema_2_store(tmp_path)
    with caplog.at_level(logging.INFO, logger="edge.runtime.store"):
        store = Store(tmp_path)
    assert f"from schema 2 to {DB_SCHEMA}" in caplog.text
    assert store.counts() == {"predictions": 3, "feedback": 2, "pending_feedback": 1}
    assert [b.key for b in store.pending_batches()] == ["k-1"]
    [row] = store.sync_rows("k-1")
    assert (row.prediction_id, row.label, row.backend, row.clip_file, row.model_version) == (
        "p-1",
        "drink",
        "openvino",
        "p-1.mp4",
        "",
    )
    store.add_prediction(PredictionRecord("p-4", "who", 0.8, [], "m2", model_version="2026.12.1"))
    store.add_feedback("p-4", True, None)
    store.add_feedback("p-3", False, "chair")
    versions = {r.prediction_id: r.model_version for r in store.sync_rows()}
    assert versions == {"p-3": "", "p-4": "2026.12.1"}
    store.close()
    db = sqlite3.connect(tmp_path / DB_FILE)
    assert db.execute("PRAGMA user_version").fetchone()[0] == DB_SCHEMA == 4
    assert db.execute("SELECT COUNT(*) FROM predictions WHERE model_version = ''").fetchone() == (3,)


def test_a_version_3_database_keeps_every_row_and_new_ones_carry_cohort_and_shadow(tmp_path, caplog):
    _schema_2_store(tmp_path)
    db = sqlite3.connect(tmp_path / DB_FILE)
    db.executescript(
        "ALTER TABLE predictions ADD COLUMN model_version TEXT NOT NULL DEFAULT '';"
        "UPDATE predictions SET model_version = '1.0.0' WHERE id = 'p-1'; PRAGMA user_version=3;"
    )
    db.close()
    with caplog.at_level(logging.INFO, logger="edge.runtime.store"):
        store = Store(tmp_path)
    assert "from schema 3 to 4" in caplog.text
    assert store.counts() == {"predictions": 3, "feedback": 2, "pending_feedback": 1}
    [old] = store.sync_rows("k-1")
    assert (old.model_version, old.cohort, old.shadow_version, old.shadow_word, old.shadow_confidence) == (
        "1.0.0",
        "",
        "",
        None,
        None,
    )
    store.add_prediction(
        PredictionRecord("p-4", "who", 0.8, [], "m2", model_version="1.0.0", cohort="canary")
    )
    store.set_shadow("p-4", "2.0.0", "chair", 0.625)
    store.add_feedback("p-4", True, None)
    [row] = store.sync_rows()
    assert (row.cohort, row.shadow_version, row.shadow_word, row.shadow_confidence) == (
        "canary",
        "2.0.0",
        "chair",
        0.625,
    )
    store.close()


def test_retention_prunes_old_predictions_without_feedback_only(tmp_path):
    store = Store(tmp_path)
    day = 86400.0
    now = time.time()
    for index, age_days in enumerate([40, 40, 10]):
        store.add_prediction(
            PredictionRecord(f"p-{index}", "book", 0.9, [], "m", created_at=now - age_days * day)
        )
    store.add_feedback("p-0", False, "drink")
    assert store.prune(30, now) == 1
    assert store.prediction_word("p-1") is None
    assert store.prediction_word("p-0") == "book"
    assert store.prediction_word("p-2") == "book"
    assert store.counts() == {"predictions": 2, "feedback": 1, "pending_feedback": 1}


def test_the_disk_budget_warns_near_its_limit(tmp_path, caplog):
    store = Store(tmp_path)
    for index in range(200):
        store.add_prediction(PredictionRecord(f"p-{index}", "w" * 500, 0.9, [], "m"))
    size_mb = store.usage(1.0).db_mb
    assert size_mb > 0.05
    with caplog.at_level(logging.WARNING, logger="edge.runtime.store"):
        assert not store.maintain(30, size_mb / 0.8).near_budget
        assert caplog.text == ""
        usage = store.maintain(30, size_mb / 0.95)
    assert usage.near_budget
    assert "max_db_mb" in caplog.text


def test_a_second_connection_waits_for_the_write_lock(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    first.add_prediction(_prediction(1))
    holder = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release.start()
    started = time.monotonic()
    second.add_feedback("p-1", True, None)
    assert time.monotonic() - started >= 0.4
    release.join()
    assert first.counts()["feedback"] == 1


def test_concurrent_writers_lose_nothing(tmp_path):
    store = Store(tmp_path)
    for index in range(200):
        store.add_prediction(_prediction(index))

    def give_feedback(index: int) -> None:
        for offset in range(50):
            store.add_feedback(f"p-{index * 50 + offset}", True, None)

    threads = [threading.Thread(target=give_feedback, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.counts()["feedback"] == 200


def test_a_damaged_or_newer_database_is_a_clear_error(tmp_path):
    (tmp_path / DB_FILE).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(tmp_path)
    newer = tmp_path / "newer"
    newer.mkdir()
    db = sqlite3.connect(newer / DB_FILE)
    db.execute("PRAGMA user_version=99")
    db.close()
    with pytest.raises(StoreError, match="newer asl-edge"):
        Store(newer)


def test_a_prediction_is_answered_once_even_by_racing_answers(tmp_path):
    store = Store(tmp_path)
    store.add_prediction(_prediction(1))
    outcomes: list[object] = []

    def answer(label: str) -> None:
        try:
            outcomes.append(store.add_feedback("p-1", False, label))
        except AlreadyAnswered as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=answer, args=(f"word{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    [stored] = [o for o in outcomes if isinstance(o, FeedbackRecord)]
    refused = [o for o in outcomes if isinstance(o, AlreadyAnswered)]
    assert len(refused) == 7
    assert all(exc.first == stored for exc in refused)
    assert "already answered" in str(refused[0])
    assert store.counts()["feedback"] == 1
