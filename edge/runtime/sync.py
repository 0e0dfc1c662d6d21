"""Feedback to S3, exactly once, whatever the network does: write-ahead CSV batches.

A pass holds ``state_dir/sync.lock`` (``flock``), so the daemon's timer and a manual ``asl-edge
sync`` never upload the same rows twice. It first re-sends every batch that was planned but not
confirmed (its rows, rendered again, give the same bytes under the same key), then plans new
batches: the unsynced rows in id order, up to ``batch_rows`` rows and ``batch_bytes`` bytes, are
recorded in the store as one batch *before* the upload; the upload carries Content-MD5 and a
SHA-256 checksum that the server verifies; only a confirmed upload marks the rows synced. A crash
between upload and mark rewrites the same object with the same bytes, so the bucket never holds a
row twice, and rows arriving meanwhile never change a planned batch.

Keys are Hive-style: ``PREFIX/device=<id>/date=<YYYY-MM-DD>/<first_id>-<last_id>.csv`` (the UTC
date of the batch's first feedback), so Athena, Spark or DuckDB query the fleet's feedback directly.
Consented clips (``edge/runtime/clips.py``) go to ``PREFIX/clips/device=<id>/<prediction_id>.mp4`` before
the batch whose ``clip_key`` column names them, and leave the device once that batch is confirmed.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edge.core.config import Config, SyncConfig
from edge.core.errors import AslEdgeError
from edge.core.utc import utc_iso
from edge.runtime.clips import CLIPS_DIR
from edge.runtime.health_schema import SyncHealth, WorkerHealth
from edge.runtime.s3 import S3Settings, checksum_headers, retryable, s3_client
from edge.runtime.store import Store, StoreError, SyncBatch, SyncRow
from edge.runtime.worker import Backoff, Supervised, every

log = logging.getLogger(__name__)

# A spreadsheet runs a cell starting with one of these as a formula (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LOCK_FILE = "sync.lock"
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


class SyncError(AslEdgeError):
    """A sync pass could not finish; the next pass tries again."""


class SyncNotConfigured(SyncError):
    """``[sync] bucket`` is empty, or the credentials file cannot be used."""


class SyncBusy(SyncError):
    """Another pass (the daemon's or a manual one) holds the sync lock."""


class UploadFailed(SyncError):
    """The server refused an upload, or it kept failing after every retry."""


class SyncInterrupted(SyncError):
    """The daemon is stopping; the pass ended between uploads."""


@dataclass
class PassResult:
    rows: int = 0
    batches: int = 0
    clips: int = 0
    backlog: int = 0


def safe_cell(text: str) -> str:
    """Text a spreadsheet shows as text: a leading formula character gets a single quote."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _under(prefix: str, path: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{path}" if prefix else path


def clip_key(prefix: str, device_id: str, prediction_id: str) -> str:
    return _under(prefix, f"clips/device={device_id}/{prediction_id}.mp4")


def _clip_cell(row: SyncRow, device_id: str, prefix: str) -> str:
    return safe_cell(clip_key(prefix, device_id, row.prediction_id)) if row.clip_file else ""


CellOf = Callable[[SyncRow, str, str], str]
"""A CSV cell from the row, the device id and the key prefix."""

# The batch's columns in order, each with how its cell is written. Readers find columns by name
# and old batches lack the newer ones, so a new column is one line appended at the end.
CSV_FIELDS: tuple[tuple[str, CellOf], ...] = (
    ("feedback_id", lambda row, device, prefix: str(row.feedback_id)),
    ("prediction_id", lambda row, device, prefix: safe_cell(row.prediction_id)),
    ("device_id", lambda row, device, prefix: safe_cell(device)),
    ("received_at", lambda row, device, prefix: utc_iso(row.received_at, "microseconds")),
    ("predicted_at", lambda row, device, prefix: utc_iso(row.predicted_at, "microseconds")),
    ("predicted_word", lambda row, device, prefix: safe_cell(row.predicted_word)),
    ("confidence", lambda row, device, prefix: repr(float(row.confidence))),
    ("top_k", lambda row, device, prefix: safe_cell(row.top_k)),
    ("correct", lambda row, device, prefix: "true" if row.correct else "false"),
    ("label", lambda row, device, prefix: safe_cell(row.label or "")),
    ("model_id", lambda row, device, prefix: safe_cell(row.model_id)),
    ("backend", lambda row, device, prefix: safe_cell(row.backend)),
    ("clip_key", _clip_cell),
    ("model_version", lambda row, device, prefix: safe_cell(row.model_version)),
    ("cohort", lambda row, device, prefix: safe_cell(row.cohort)),
    ("shadow_version", lambda row, device, prefix: safe_cell(row.shadow_version)),
    ("shadow_word", lambda row, device, prefix: safe_cell(row.shadow_word or "")),
    (
        "shadow_confidence",
        lambda row, device, prefix: (
            "" if row.shadow_confidence is None else repr(float(row.shadow_confidence))
        ),
    ),
)
CSV_COLUMNS = tuple(name for name, _ in CSV_FIELDS)


def csv_cells(row: SyncRow, device_id: str, prefix: str) -> list[str]:
    return [cell(row, device_id, prefix) for _, cell in CSV_FIELDS]


def batch_key(prefix: str, device_id: str, first: SyncRow, last_id: int) -> str:
    date = datetime.fromtimestamp(first.received_at, timezone.utc).strftime("%Y-%m-%d")
    return _under(prefix, f"device={device_id}/date={date}/{first.feedback_id}-{last_id}.csv")


@dataclass(frozen=True)
class RenderedBatch:
    body: bytes
    first: SyncRow
    last_id: int
    rows: int
    clips: tuple[tuple[str, str], ...] = ()  # (S3 key, local file name) of the rows' clips

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def render_batch(
    rows: Iterable[SyncRow],
    device_id: str,
    prefix: str,
    max_rows: int | None = None,
    max_bytes: int | None = None,
) -> RenderedBatch | None:
    """The CSV of the leading rows that fit the limits (at least one row); None without rows.

    Deterministic: the same rows always give the same bytes (UTF-8, header row, CRLF line ends).
    """
    line = io.StringIO()
    writer = csv.writer(line)
    writer.writerow(CSV_COLUMNS)
    body = io.BytesIO()
    body.write(line.getvalue().encode("utf-8"))
    first: SyncRow | None = None
    last_id, count = 0, 0
    clips: list[tuple[str, str]] = []
    for row in rows:
        line.seek(0)
        line.truncate()
        writer.writerow(csv_cells(row, device_id, prefix))
        encoded = line.getvalue().encode("utf-8")
        if count and max_bytes is not None and body.tell() + len(encoded) > max_bytes:
            break
        body.write(encoded)
        if row.clip_file:
            clips.append((clip_key(prefix, device_id, row.prediction_id), row.clip_file))
        first = first or row
        last_id, count = row.feedback_id, count + 1
        if max_rows is not None and count >= max_rows:
            break
    if first is None:
        return None
    return RenderedBatch(body.getvalue(), first, last_id, count, tuple(clips))


def s3_settings(settings: SyncConfig) -> S3Settings:
    return S3Settings(settings.endpoint_url, settings.region, settings.credentials_file)


class S3Target:
    """One bucket; every PUT carries checksums the server checks against the body."""

    def __init__(self, settings: SyncConfig) -> None:
        self.bucket = settings.bucket
        self.client: Any = s3_client(s3_settings(settings))

    def put(self, key: str, body: bytes, content_type: str) -> None:
        checksums = checksum_headers(body)
        response = self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **checksums
        )
        echoed = response.get("ChecksumSHA256")
        if echoed is not None and echoed != checksums["ChecksumSHA256"]:
            raise UploadFailed(f"s3://{self.bucket}/{key}: the server stored a different SHA-256")


class FeedbackSync:
    """Sync passes, on demand (``run_pass``) or every ``interval_s`` in a thread (``start``/``stop``)."""

    def __init__(self, config: Config) -> None:
        if not config.sync.bucket:
            raise SyncNotConfigured("sync is disabled: set [sync] bucket in the config to sync feedback")
        self.settings = config.sync
        self.device_id = config.device.id
        self.state_dir = Path(config.storage.state_dir).expanduser()
        self.target = S3Target(config.sync)
        self.last_success: float | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._worker: Supervised | None = None

    def run_pass(self, lock_wait_s: float = 0.0, stop: threading.Event | None = None) -> PassResult:
        """Upload every unsynced row; raises SyncBusy, UploadFailed or SyncInterrupted otherwise."""
        stop = stop or self._stop
        with self._lock(lock_wait_s):
            store = Store(self.state_dir)
            try:
                result = self._upload_all(store, stop)
                result.backlog = store.counts()["pending_feedback"]
            finally:
                store.close()
        self.last_success, self.last_error = time.time(), None
        return result

    def _upload_all(self, store: Store, stop: threading.Event) -> PassResult:
        result = PassResult()
        for batch in store.pending_batches():
            rendered = render_batch(store.sync_rows(batch.key), self.device_id, self.settings.prefix)
            if rendered is None:
                raise SyncError(f"planned batch {batch.key} has no rows in the store")
            if rendered.sha256 != batch.checksum:
                log.warning(
                    "batch %s changed since it was planned (a clip expired, or asl-edge was upgraded); "
                    "sending it as it is now",
                    batch.key,
                )
                store.update_batch_checksum(batch.key, len(rendered.body), rendered.sha256)
            self._send(store, batch.key, rendered, stop, result)
        while True:
            if stop.is_set():
                raise SyncInterrupted("stopping: the pass ends between uploads")
            rendered = render_batch(
                store.sync_rows(),
                self.device_id,
                self.settings.prefix,
                self.settings.batch_rows,
                self.settings.batch_bytes,
            )
            if rendered is None:
                return result
            key = batch_key(self.settings.prefix, self.device_id, rendered.first, rendered.last_id)
            store.plan_batch(
                SyncBatch(
                    key,
                    rendered.first.feedback_id,
                    rendered.last_id,
                    rendered.rows,
                    len(rendered.body),
                    rendered.sha256,
                    time.time(),
                )
            )
            self._send(store, key, rendered, stop, result)

    def _send(
        self, store: Store, key: str, rendered: RenderedBatch, stop: threading.Event, result: PassResult
    ) -> None:
        """The batch's clips first, then its CSV; local clips are deleted once the batch is confirmed."""
        clip_paths = [self.state_dir / CLIPS_DIR / name for _, name in rendered.clips]
        for (clip, _), path in zip(rendered.clips, clip_paths, strict=True):
            try:
                video = path.read_bytes()
            except OSError as exc:
                log.warning(
                    "clip %s is gone (%s); %s will name a clip that is not in the bucket", path, exc, key
                )
                continue
            self._put_with_retries(clip, video, "video/mp4", stop)
            result.clips += 1
        self._put_with_retries(key, rendered.body, "text/csv; charset=utf-8", stop)
        result.rows += store.confirm_batch(key, time.time())
        result.batches += 1
        for path in clip_paths:
            path.unlink(missing_ok=True)
        log.info("uploaded %d feedback rows to s3://%s/%s", rendered.rows, self.settings.bucket, key)

    def _put_with_retries(self, key: str, body: bytes, content_type: str, stop: threading.Event) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        attempts = self.settings.retries + 1
        backoff = Backoff(BACKOFF_BASE_S, BACKOFF_CAP_S, healthy_s=math.inf)
        for attempt in range(attempts):
            try:
                self.target.put(key, body, content_type)
                return
            except (BotoCoreError, ClientError) as exc:
                where = f"s3://{self.settings.bucket}/{key}"
                if not retryable(exc):
                    raise UploadFailed(f"{where}: {exc}") from exc
                if attempt + 1 == attempts:
                    raise UploadFailed(f"{where}: failed {attempts} times, last: {exc}") from exc
                delay_s = backoff.after(0.0) * random.uniform(0.5, 1.0)  # kiosks never retry in step
                log.warning("upload of %s failed (%s); retrying in %.1f s", where, exc, delay_s)
                if stop.wait(delay_s):
                    raise SyncInterrupted("stopping: upload retries abandoned") from exc

    @contextlib.contextmanager
    def _lock(self, wait_s: float) -> Iterator[None]:
        """Exclusive across processes; waits up to ``wait_s`` for a pass in progress to finish."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SyncError(f"cannot open {self.state_dir / LOCK_FILE}: {exc}") from exc
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise SyncBusy(f"another sync pass holds {self.state_dir / LOCK_FILE}") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(descriptor)

    def start(self) -> None:
        """Passes every ``interval_s`` on a supervised thread: a pass that crashes is reported in
        ``sync_last_error`` and the worker restarts with backoff."""
        interval_s = self.settings.interval_s
        job = every(interval_s, self._timed_pass)
        self._worker = Supervised("sync", job, Backoff(1.0, interval_s, 2 * interval_s))
        self._worker.start()

    def stop(self, timeout_s: float = 1.5) -> None:
        """Ends the timer; an upload in flight is abandoned after ``timeout_s`` and re-sent next time."""
        self._stop.set()
        if self._worker is not None:
            self._worker.stop(timeout_s)

    def _timed_pass(self) -> bool:
        """One pass of the timer; False once the daemon is stopping."""
        try:
            result = self.run_pass()
            if result.batches:
                log.info("sync: %d rows in %d batches uploaded", result.rows, result.batches)
        except SyncBusy:
            log.info("sync: a manual pass is running; skipping this one")
        except SyncInterrupted:
            return False
        except (SyncError, StoreError) as exc:
            self.last_error = str(exc)
            log.warning("sync pass failed (retrying in %.0f s): %s", self.settings.interval_s, exc)
        except Exception as exc:  # reported here, restarted by the supervisor
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        return True

    def health(self) -> SyncHealth:
        """The last success as Unix time and as ISO 8601 in UTC (what Home Assistant's timestamp
        sensors read), the last error, and the supervised worker's restarts."""
        success, error = self.last_success, self.last_error
        worker = self._worker.health(error) if self._worker else WorkerHealth.of(error, working=False)
        return SyncHealth(worker, success, None if success is None else utc_iso(success, zulu=False), error)
