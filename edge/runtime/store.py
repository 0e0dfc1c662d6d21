"""The device's durable record: predictions, the feedback users give on them, and sync batches.

SQLite in WAL mode. Feedback is the data that trains better models, so a feedback row is committed
with ``synchronous=FULL`` before ``add_feedback`` returns, and only then may the caller acknowledge
it. Predictions are recorded so that feedback can refer to them and carry the predicted word.

Sync is write-ahead: a batch of feedback rows is recorded (``plan_batch``) before it is uploaded,
and its rows are marked synced (``confirm_batch``) only after the upload was confirmed. A batch
never changes once planned, so a crash anywhere re-sends the same rows under the same key.

Each ``Store`` is one connection guarded by a lock (the daemon's inference and MQTT threads share
one); other processes (a manual ``asl-edge sync``) open their own and wait for SQLite's write lock
up to ``BUSY_TIMEOUT_S``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

DB_FILE = "asl-edge.db"
BUSY_TIMEOUT_S = 10.0
BUDGET_WARNING_FRACTION = 0.9
LOW_SPACE_MB = 1.0  # below this, an I/O error of SQLite is taken for a full disk
SQLITE_FULL = 13
_PAGE_ROWS = 500

# Schema migrations: entry N brings a database from version N-1 to N, keeping every row. A new
# database runs them all, so the upgrade path is the path every install takes.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE predictions (
            id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            word TEXT NOT NULL,
            confidence REAL NOT NULL,
            top_k TEXT NOT NULL,
            start_s REAL,
            end_s REAL,
            latency_ms REAL,
            model_id TEXT NOT NULL
        )""",
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            prediction_id TEXT NOT NULL REFERENCES predictions(id),
            received_at REAL NOT NULL,
            correct INTEGER NOT NULL,
            label TEXT,
            predicted_word TEXT NOT NULL,
            synced_key TEXT
        )""",
        "CREATE INDEX feedback_unsynced ON feedback(id) WHERE synced_key IS NULL",
    ),
    (
        "ALTER TABLE predictions ADD COLUMN backend TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE feedback ADD COLUMN batch_key TEXT",
        "ALTER TABLE feedback ADD COLUMN clip_file TEXT",
        """CREATE TABLE sync_batches (
            key TEXT PRIMARY KEY,
            first_id INTEGER NOT NULL,
            last_id INTEGER NOT NULL,
            row_count INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            checksum TEXT NOT NULL,
            planned_at REAL NOT NULL,
            uploaded_at REAL
        )""",
        "CREATE INDEX feedback_batch ON feedback(batch_key) WHERE batch_key IS NOT NULL",
        "CREATE INDEX feedback_prediction ON feedback(prediction_id)",
        "CREATE INDEX predictions_created ON predictions(created_at)",
    ),
    # The release version that made each prediction ("" for a local bundle, and for older rows).
    ("ALTER TABLE predictions ADD COLUMN model_version TEXT NOT NULL DEFAULT ''",),
    # Staged rollouts: the kiosk's cohort when it predicted, and a candidate's answer in shadow
    # (filled in when it arrives; NULL where no shadow ran on the sign).
    (
        "ALTER TABLE predictions ADD COLUMN cohort TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE predictions ADD COLUMN shadow_version TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE predictions ADD COLUMN shadow_word TEXT",
        "ALTER TABLE predictions ADD COLUMN shadow_confidence REAL",
    ),
)
DB_SCHEMA = len(_MIGRATIONS)


class StoreError(AslEdgeError):
    """The store cannot be opened or written."""


class StoreFull(StoreError):
    """The disk holding the store has no room: a state the daemon reports and recovers from."""


class UnknownPrediction(StoreError):
    """Feedback names a prediction this device never made (or no longer has)."""


class AlreadyAnswered(StoreError):
    """Feedback names a prediction that already has its answer; ``first`` is that answer."""

    def __init__(self, first: FeedbackRecord) -> None:
        super().__init__(f"prediction {first.prediction_id!r} was already answered")
        self.first = first


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
    backend: str = ""
    model_version: str = ""  # the release that made it; "" for a local bundle
    cohort: str = ""  # canary or stable in a staged rollout; "" without a release channel


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    prediction_id: str
    received_at: float
    correct: bool
    label: str | None
    predicted_word: str

    def to_json(self) -> dict[str, object]:
        return {
            "feedback_id": self.id,
            "prediction_id": self.prediction_id,
            "received_at": self.received_at,
            "correct": self.correct,
            "label": self.label,
            "predicted_word": self.predicted_word,
        }


@dataclass(frozen=True)
class SyncRow:
    """One feedback row joined with its prediction: what a sync batch carries."""

    feedback_id: int
    prediction_id: str
    received_at: float
    predicted_at: float
    predicted_word: str
    confidence: float
    top_k: str
    correct: bool
    label: str | None
    model_id: str
    backend: str
    clip_file: str | None = None
    model_version: str = ""
    cohort: str = ""
    shadow_version: str = ""
    shadow_word: str | None = None
    shadow_confidence: float | None = None


@dataclass(frozen=True)
class SyncBatch:
    """A write-ahead record of one upload: these rows, under this key, with this checksum."""

    key: str
    first_id: int
    last_id: int
    row_count: int
    bytes: int
    checksum: str
    planned_at: float
    uploaded_at: float | None = None


@dataclass(frozen=True)
class StoreUsage:
    db_mb: float
    max_db_mb: float

    @property
    def near_budget(self) -> bool:
        return self.db_mb >= BUDGET_WARNING_FRACTION * self.max_db_mb


_SYNC_ROW_SQL = (
    "SELECT f.id, f.prediction_id, f.received_at, p.created_at, f.predicted_word, p.confidence, p.top_k, "
    "f.correct, f.label, p.model_id, p.backend, f.clip_file, p.model_version, p.cohort, p.shadow_version, "
    "p.shadow_word, p.shadow_confidence "
    "FROM feedback f JOIN predictions p ON p.id = f.prediction_id "
)  # in SyncRow's field order


class Store:
    """Predictions, feedback and sync batches in ``state_dir/asl-edge.db``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / DB_FILE
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise self._failure("cannot open the store", exc) from exc
        self._migrate()

    def _failure(self, action: str, exc: BaseException) -> StoreError:
        """The error to raise for ``exc``: ``StoreFull``, with the space left, when the disk has
        no room (SQLite says so, or an I/O error on a disk with almost nothing free)."""
        message = f"{self.path}: {action}: {exc}"
        free_mb = free_space_mb(self.path.parent)
        full = (
            getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL
            or "disk is full" in str(exc)
            or getattr(exc, "errno", None) == errno.ENOSPC
            or (
                isinstance(exc, (sqlite3.OperationalError, OSError))
                and free_mb is not None
                and free_mb < LOW_SPACE_MB
            )
        )
        if full:
            where = f"{free_mb:.1f} MB free" if free_mb is not None else "free space unknown"
            return StoreFull(f"{message} (the disk is full: {where} in {self.path.parent})")
        return StoreError(message)

    @contextlib.contextmanager
    def _atomic(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE) so it never fails half way."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (a full disk does): roll back only what is
                    # left, and never let the rollback hide the error that caused it.
                    with contextlib.suppress(sqlite3.Error):
                        if self._db.in_transaction:
                            self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.DatabaseError, OSError) as exc:
                raise self._failure(action, exc) from exc

    def _migrate(self) -> None:
        """Create or upgrade the schema in one transaction (another process may race us to it); a
        current store is only read, so it opens on a full disk too."""
        current = self._read("PRAGMA user_version")[0][0]
        if current == DB_SCHEMA:
            return
        with self._atomic("cannot open the store") as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > DB_SCHEMA:
                raise StoreError(
                    f"{self.path}: written by a newer asl-edge (schema {version}); upgrade asl-edge"
                )
            if 0 < version < DB_SCHEMA:
                log.info("%s: migrating the store from schema %d to %d", self.path, version, DB_SCHEMA)
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={DB_SCHEMA}")

    def _write(self, sql: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, parameters)
            except sqlite3.DatabaseError as exc:
                raise self._failure("write failed", exc) from exc

    def _read(self, sql: str, parameters: tuple[object, ...] = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, parameters).fetchall()
            except sqlite3.DatabaseError as exc:
                raise self._failure("read failed", exc) from exc

    def add_prediction(self, record: PredictionRecord) -> None:
        self._write(
            "INSERT INTO predictions (id, created_at, word, confidence, top_k, start_s, end_s, latency_ms, "
            "model_id, backend, model_version, cohort) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                record.backend,
                record.model_version,
                record.cohort,
            ),
        )

    def set_shadow(self, prediction_id: str, version: str, word: str, confidence: float) -> None:
        """A shadow model's answer on a stored prediction (it comes after the serving one)."""
        self._write(
            "UPDATE predictions SET shadow_version = ?, shadow_word = ?, shadow_confidence = ? WHERE id = ?",
            (version, word, confidence, prediction_id),
        )

    def prediction_word(self, prediction_id: str) -> str | None:
        rows = self._read("SELECT word FROM predictions WHERE id = ?", (prediction_id,))
        return rows[0][0] if rows else None

    def add_feedback(
        self, prediction_id: str, correct: bool, label: str | None, clip_file: str | None = None
    ) -> FeedbackRecord:
        """Store feedback durably; raises UnknownPrediction for an id this device never issued.

        A prediction is answered at most once: a second answer raises AlreadyAnswered with the
        first (checked in the same write transaction, so two racing answers store one row).
        ``clip_file`` names the consented clip of the sign (under ``state_dir/clips``), if any.
        """
        with self._atomic("cannot store feedback") as db:
            found = db.execute("SELECT word FROM predictions WHERE id = ?", (prediction_id,)).fetchone()
            if found is None:
                raise UnknownPrediction(f"unknown prediction_id {prediction_id!r}")
            word = found[0]
            first = db.execute(
                "SELECT id, received_at, correct, label FROM feedback WHERE prediction_id = ? "
                "ORDER BY id LIMIT 1",
                (prediction_id,),
            ).fetchone()
            if first is not None:
                raise AlreadyAnswered(
                    FeedbackRecord(first[0], prediction_id, first[1], bool(first[2]), first[3], word)
                )
            received = time.time()
            cursor = db.execute(
                "INSERT INTO feedback (prediction_id, received_at, correct, label, predicted_word, "
                "clip_file) VALUES (?, ?, ?, ?, ?, ?)",
                (prediction_id, received, int(correct), label, word, clip_file),
            )
        return FeedbackRecord(int(cursor.lastrowid or 0), prediction_id, received, correct, label, word)

    def sync_rows(self, batch_key: str | None = None, page_rows: int = _PAGE_ROWS) -> Iterator[SyncRow]:
        """The rows of a planned batch, or (no key) the unsynced rows no batch holds yet; id order.

        Read page by page, so a backlog of any size streams in bounded memory.
        """
        where = "f.batch_key = ?" if batch_key is not None else "f.batch_key IS NULL AND f.synced_key IS NULL"
        selector: tuple[object, ...] = (batch_key,) if batch_key is not None else ()
        after = 0
        while True:
            rows = self._read(
                _SYNC_ROW_SQL + f"WHERE {where} AND f.id > ? ORDER BY f.id LIMIT ?",
                (*selector, after, page_rows),
            )
            for row in rows:
                fields = (*row[:7], bool(row[7]), *row[8:])  # SQLite keeps a boolean as 0 or 1
                yield SyncRow(*fields)
            if len(rows) < page_rows:
                return
            after = rows[-1][0]

    def plan_batch(self, batch: SyncBatch) -> None:
        """Record a batch and assign its rows to it, atomically, before anything is uploaded.

        Refused (and nothing recorded) unless exactly ``row_count`` unsynced, unassigned rows lie in
        its id range: anything else means the batch was built from a stale view.
        """
        with self._atomic(f"cannot plan batch {batch.key}") as db:
            db.execute(
                "INSERT INTO sync_batches VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                (
                    batch.key,
                    batch.first_id,
                    batch.last_id,
                    batch.row_count,
                    batch.bytes,
                    batch.checksum,
                    batch.planned_at,
                ),
            )
            assigned = db.execute(
                "UPDATE feedback SET batch_key = ? WHERE id BETWEEN ? AND ? "
                "AND batch_key IS NULL AND synced_key IS NULL",
                (batch.key, batch.first_id, batch.last_id),
            ).rowcount
            if assigned != batch.row_count:
                raise StoreError(
                    f"{self.path}: batch {batch.key}: {assigned} rows to assign, expected {batch.row_count}"
                )

    def update_batch_checksum(self, key: str, size_bytes: int, checksum: str) -> None:
        """A planned batch rendered differently (an upgrade changed the CSV): record what is sent."""
        self._write(
            "UPDATE sync_batches SET bytes = ?, checksum = ? WHERE key = ?", (size_bytes, checksum, key)
        )

    def pending_batches(self) -> list[SyncBatch]:
        """Batches planned but not confirmed uploaded, oldest first."""
        rows = self._read("SELECT * FROM sync_batches WHERE uploaded_at IS NULL ORDER BY first_id")
        return [SyncBatch(*row) for row in rows]

    def confirm_batch(self, key: str, uploaded_at: float) -> int:
        """Mark the batch uploaded and its rows synced, atomically; returns the rows marked now."""
        with self._atomic(f"cannot confirm batch {key}") as db:
            db.execute("UPDATE sync_batches SET uploaded_at = ? WHERE key = ?", (uploaded_at, key))
            return db.execute(
                "UPDATE feedback SET synced_key = ? WHERE batch_key = ? AND synced_key IS NULL", (key, key)
            ).rowcount

    def forget_clip(self, clip_file: str) -> None:
        """An expired clip: unsynced rows stop naming it (a planned batch is then sent without it)."""
        self._write(
            "UPDATE feedback SET clip_file = NULL WHERE clip_file = ? AND synced_key IS NULL", (clip_file,)
        )

    def prune(self, retention_days: float, now: float | None = None) -> int:
        """Delete predictions older than ``retention_days`` that carry no feedback; feedback stays."""
        cutoff = (now if now is not None else time.time()) - retention_days * 86400.0
        cursor = self._write(
            "DELETE FROM predictions WHERE created_at < ? "
            "AND NOT EXISTS (SELECT 1 FROM feedback WHERE feedback.prediction_id = predictions.id)",
            (cutoff,),
        )
        return cursor.rowcount

    def maintain(self, retention_days: float, max_db_mb: float) -> StoreUsage:
        """Prune old predictions, then measure the disk budget and warn when it is nearly spent."""
        pruned = self.prune(retention_days)
        if pruned:
            log.info("pruned %d predictions older than %g days without feedback", pruned, retention_days)
        usage = self.usage(max_db_mb)
        if usage.near_budget:
            log.warning(
                "the store %s uses %.1f MB of its %.0f MB budget ([storage] max_db_mb); unsynced feedback "
                "is never pruned: sync it, or lower [storage] prediction_retention_days",
                self.path,
                usage.db_mb,
                max_db_mb,
            )
        return usage

    def usage(self, max_db_mb: float) -> StoreUsage:
        """The database's size on disk (with its WAL) against its budget."""
        size = sum(
            path.stat().st_size
            for path in (self.path, self.path.with_name(DB_FILE + "-wal"))
            if path.exists()
        )
        return StoreUsage(round(size / 1e6, 3), max_db_mb)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return _counts(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def free_space_mb(folder: Path) -> float | None:
    """Megabytes free for this process on the file system holding ``folder`` (None if unknown)."""
    try:
        return round(shutil.disk_usage(folder).free / 1e6, 3)
    except OSError:
        return None


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
