"""The SQLite store: durable feedback tied to real predictions, and sync marks."""

import sqlite3
import threading

import pytest

from edge.store import DB_FILE, PredictionRecord, Store, StoreError, UnknownPrediction


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
    [row] = reopened.unsynced_feedback()
    assert (row.id, row.prediction_id, row.label) == (record.id, "p-1", "drink")
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


def test_sync_marks_are_idempotent_and_keep_the_first_key(tmp_path):
    store = Store(tmp_path)
    store.add_prediction(_prediction(1))
    ids = [store.add_feedback("p-1", True, None).id for _ in range(5)]
    assert [r.id for r in store.unsynced_feedback(limit=3)] == ids[:3]
    assert store.mark_synced(ids[:3], "batch-a") == 3
    assert store.mark_synced(ids[:3], "batch-b") == 0
    assert [r.id for r in store.unsynced_feedback()] == ids[3:]
    assert store.counts()["pending_feedback"] == 2


def test_concurrent_writers_lose_nothing(tmp_path):
    store = Store(tmp_path)
    for index in range(4):
        store.add_prediction(_prediction(index))

    def give_feedback(index: int) -> None:
        for _ in range(50):
            store.add_feedback(f"p-{index}", True, None)

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
