"""The daemon's store as a state: a full disk is reported and recovered from, never a crash.

``StoreKeeper`` holds the daemon's one ``Store``. A write that fails because the disk is full is
reported (the prediction was still published, and is counted as unstored; feedback is refused
with the reason) and the next write simply tries again; the first one that succeeds clears the
fault. A store that cannot be opened because the disk is full does not stop the daemon either:
it recognizes and publishes without a store, and the keeper tries to open it again at every
health tick. Any other reason a store cannot be opened (a damaged file, a newer schema, no
permission) is a configuration problem and stops the start with that reason.

Free space, the store's size and its backlog are measured at every health tick (a ``statvfs``,
two ``stat``s and a SQLite ``COUNT``) by ``measure``, on the health reporter's thread, never the
inference thread's; so health shows a filling disk before it is full.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from edge.runtime.health_schema import StoreHealth, WorkerHealth
from edge.runtime.store import (
    AlreadyAnswered,
    FeedbackRecord,
    PredictionRecord,
    Store,
    StoreError,
    StoreFull,
    StoreUsage,
    UnknownPrediction,
    free_space_mb,
)

log = logging.getLogger(__name__)


class StoreUnavailable(StoreError):
    """The store is not open (the disk was full when the daemon tried to open it)."""


class StoreKeeper:
    """Thread-safe: the inference thread records predictions, the feedback worker feedback."""

    def __init__(self, state_dir: Path, max_db_mb: float) -> None:
        self.state_dir = state_dir
        self.max_db_mb = max_db_mb
        self.fault: StoreError | None = None  # why the last write or open failed; None while it works
        self.unstored_predictions = 0
        self.usage: StoreUsage | None = None
        self.free_mb: float | None = None
        self.pending: int | None = None
        self._store: Store | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        """At start: a full disk is a state; any other failure is raised (the start fails)."""
        try:
            self._store = Store(self.state_dir)
        except StoreFull as exc:
            self._fault(exc)

    @property
    def store(self) -> Store | None:
        return self._store

    def _open_store(self) -> Store:
        with self._lock:
            if self._store is None:
                try:
                    self._store = Store(self.state_dir)
                except StoreError as exc:
                    raise StoreUnavailable(str(exc)) from exc
            return self._store

    @property
    def error(self) -> str | None:
        return None if self.fault is None else str(self.fault)

    @property
    def disk_full(self) -> bool:
        """The last fault was a full disk (also when it kept the store from opening)."""
        fault = self.fault
        return isinstance(fault, StoreFull) or isinstance(getattr(fault, "__cause__", None), StoreFull)

    def _fault(self, exc: StoreError) -> None:
        if str(exc) != self.error:
            log.error("store: %s; recognizing goes on, feedback is refused until there is room", exc)
        self.fault = exc

    def _healthy(self) -> None:
        if self.fault is not None:
            log.info("store: writable again (was: %s)", self.fault)
            self.fault = None

    def add_prediction(self, record: PredictionRecord) -> bool:
        """Store a prediction; False (counted, reported) when the store cannot take it."""
        try:
            self._open_store().add_prediction(record)
        except StoreError as exc:
            self.unstored_predictions += 1
            self._fault(exc)
            return False
        self._healthy()
        return True

    def set_shadow(self, prediction_id: str, version: str, word: str, confidence: float) -> None:
        """Record a shadow model's answer on a prediction; a store that cannot write only reports it
        (the answer is lost, the serving word is not)."""
        try:
            self._open_store().set_shadow(prediction_id, version, word, confidence)
        except StoreError as exc:
            self._fault(exc)
            return
        self._healthy()

    def add_feedback(
        self, prediction_id: str, correct: bool, label: str | None, clip_file: str | None = None
    ) -> FeedbackRecord:
        """``Store.add_feedback``; a store that cannot write raises (the caller refuses the feedback)."""
        try:
            record = self._open_store().add_feedback(prediction_id, correct, label, clip_file)
        except UnknownPrediction as exc:
            if self.fault is not None:  # likely one of the predictions the store could not take
                kind = StoreFull if self.disk_full else StoreError
                raise kind(f"{exc}; {self.fault}") from exc
            raise
        except AlreadyAnswered:  # an answer to refuse, not a fault of the store
            raise
        except StoreError as exc:
            self._fault(exc)
            raise
        self._healthy()
        return record

    def measure(self) -> None:
        """Free space, the store's size and its backlog; open a store that could not be opened
        yet. Disk I/O: the health reporter's thread calls it."""
        self.free_mb = free_space_mb(self.state_dir)
        store = self._store
        if store is None:
            try:
                store = self._open_store()
                self._healthy()
            except StoreUnavailable as exc:
                self._fault(exc)
                return
        self.usage = store.usage(self.max_db_mb)
        try:
            self.pending = store.counts()["pending_feedback"]
        except StoreError as exc:
            self._fault(exc)
            self.pending = None

    def maintain(self, retention_days: float) -> None:
        """Prune old predictions and warn near the disk budget; a store fault is only reported."""
        if self._store is None:
            return
        try:
            self.usage = self._store.maintain(retention_days, self.max_db_mb)
        except StoreError as exc:
            self._fault(exc)

    def health(self) -> StoreHealth:
        """The last measurement (``measure``) and the last write's outcome; no disk I/O."""
        usage, error = self.usage, self.error
        return StoreHealth(
            WorkerHealth.of(error),
            self.pending,
            self.pending,
            error,
            self.unstored_predictions,
            self.free_mb,
            usage.db_mb if usage else None,
            usage.near_budget if usage else None,
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
