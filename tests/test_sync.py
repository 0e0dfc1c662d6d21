"""Feedback sync against a real SeaweedFS: batching, CSV content, outages, crashes, concurrency."""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import io
import itertools
import json
import logging
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from asl_edge.cli import main
from edge.core.config import load_config
from edge.core.utc import utc_iso
from edge.runtime.clips import CLIPS_DIR, ClipKeeper, expire_clips
from edge.runtime.health_schema import WorkerHealth
from edge.runtime.store import DB_FILE, PredictionRecord, Store
from edge.runtime.sync import CSV_COLUMNS, FeedbackSync, SyncBusy
from tests.backlog import write_backlog
from tests.services import SeaweedFS, free_port_pair

ROOT = Path(__file__).resolve().parent.parent
_buckets = itertools.count()


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    service = SeaweedFS(tmp_path_factory.mktemp("seaweedfs")).start()
    yield service
    service.stop()


@pytest.fixture
def bucket(s3):
    name = f"feedback-{next(_buckets)}"
    s3.client().create_bucket(Bucket=name)
    return name


def _config(folder: Path, s3: SeaweedFS, bucket: str, **sync: object) -> Path:
    """A real TOML config: state in ``folder/state``, credentials from a file beside it."""
    s3.write_credentials(folder / "s3-credentials")
    settings = {
        "bucket": bucket,
        "endpoint_url": s3.endpoint_url,
        "credentials_file": "s3-credentials",
        **sync,
    }
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in settings.items())
    path = folder / "config.toml"
    path.write_text(
        f'[device]\nid = "kiosk-9"\n[storage]\nstate_dir = "state"\n[sync]\n{lines}\n', encoding="utf-8"
    )
    return path


def _objects(s3: SeaweedFS, bucket: str) -> dict[str, bytes]:
    client = s3.client()
    listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read() for item in listing}


def _csv_rows(objects: dict[str, bytes]) -> list[dict[str, str]]:
    rows = []
    for key, body in objects.items():
        if not key.endswith(".csv"):
            continue
        reader = csv.DictReader(io.StringIO(body.decode("utf-8"), newline=""))
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows += list(reader)
    return rows


def _sync_cli(config: Path, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "asl_edge", *options, "sync", "--config", str(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _feedback_ids(state: Path) -> list[int]:
    db = sqlite3.connect(state / DB_FILE)
    ids = [row[0] for row in db.execute("SELECT id FROM feedback ORDER BY id")]
    db.close()
    return ids


def test_batches_follow_the_limits_and_the_key_layout(s3, bucket, tmp_path, capsys):
    config = _config(tmp_path, s3, bucket, prefix="/fleet/a/", batch_rows=10)
    day = 86400.0
    write_backlog(tmp_path / "state", 15, start_s=1_795_000_000.0)
    write_backlog(tmp_path / "state", 8, start_s=1_795_000_000.0 + 3 * day)
    assert main(["sync", "--config", str(config)]) == 0
    assert "uploaded 23 feedback rows in 3 batches and 0 clips to s3://" in capsys.readouterr().out
    objects = _objects(s3, bucket)
    assert sorted(objects) == [
        "fleet/a/device=kiosk-9/date=2026-11-18/1-10.csv",
        "fleet/a/device=kiosk-9/date=2026-11-18/11-20.csv",
        "fleet/a/device=kiosk-9/date=2026-11-21/21-23.csv",
    ]
    head = s3.client().head_object(Bucket=bucket, Key=sorted(objects)[0], ChecksumMode="ENABLED")
    body = objects[sorted(objects)[0]]
    assert head["ContentType"].startswith("text/csv")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert main(["sync", "--config", str(config)]) == 0
    assert "uploaded 0 feedback rows in 0 batches and 0 clips" in capsys.readouterr().out
    assert Store(tmp_path / "state").counts()["pending_feedback"] == 0

    small = tmp_path / "small"
    small.mkdir()
    config = _config(small, s3, bucket, prefix="bytes", batch_bytes=1024)
    write_backlog(small / "state", 20)
    assert main(["sync", "--config", str(config)]) == 0
    sizes = [len(body) for key, body in _objects(s3, bucket).items() if key.startswith("bytes/")]
    assert len(sizes) > 3
    assert max(sizes) <= 1024
    assert len(_csv_rows({k: v for k, v in _objects(s3, bucket).items() if k.startswith("bytes/")})) == 20


HOSTILE_LABELS = [
    '=HYPERLINK("http://evil","x")',
    "+1+1",
    "-2",
    "@SUM(A1)",
    "\tindent",
    "\rreturn",
    'quote " and, comma',
    "line\nbreak\r\nand more",
    "emoji 🤟 and ñ, ü, 日本語",
    "nul\x00inside",
    "",
    "'already quoted",
    None,
]


def test_the_csv_round_trips_every_character_and_neutralises_formulas(s3, bucket, tmp_path):
    config = _config(tmp_path, s3, bucket, batch_rows=4)
    store = Store(tmp_path / "state")
    for index, label in enumerate(HOSTILE_LABELS):
        word = "=cmd|' /C calc'!A0" if index == 0 else "book"
        store.add_prediction(
            PredictionRecord(
                f"p-{index}",
                word,
                0.25 + index / 100,
                [{"word": word, "score": 0.5}],
                "m-1",
                backend="trt",
                model_version="2026.12.1" if index % 3 else "",
            )
        )
        store.add_feedback(f"p-{index}", index % 2 == 0, label)
    expected = list(store.sync_rows())
    store.close()
    assert main(["sync", "--config", str(config)]) == 0
    rows = sorted(_csv_rows(_objects(s3, bucket)), key=lambda r: int(r["feedback_id"]))
    assert len(rows) == len(expected) == len(HOSTILE_LABELS)
    for row, stored in zip(rows, expected, strict=True):
        label = stored.label or ""
        assert row["label"] == ("'" + label if label[:1] in ("=", "+", "-", "@", "\t", "\r") else label)
        assert row["feedback_id"] == str(stored.feedback_id)
        assert row["prediction_id"] == stored.prediction_id
        assert row["device_id"] == "kiosk-9"
        assert row["received_at"] == utc_iso(stored.received_at, "microseconds")
        assert row["predicted_at"] == utc_iso(stored.predicted_at, "microseconds")
        assert float(row["confidence"]) == stored.confidence
        assert row["correct"] == ("true" if stored.correct else "false")
        assert (row["model_id"], row["backend"]) == ("m-1", "trt")
        assert row["model_version"] == stored.model_version
    assert rows[0]["predicted_word"] == "'=cmd|' /C calc'!A0"
    assert rows[0]["top_k"].startswith("[")
    assert rows[2]["label"] == "'-2"
    assert rows[11]["label"] == "'already quoted"


def test_new_columns_are_appended_so_old_readers_keep_their_positions():
    first_release = (
        "feedback_id",
        "prediction_id",
        "device_id",
        "received_at",
        "predicted_at",
        "predicted_word",
        "confidence",
        "top_k",
        "correct",
        "label",
        "model_id",
        "backend",
        "clip_key",
    )
    assert CSV_COLUMNS[: len(first_release)] == first_release
    assert CSV_COLUMNS[len(first_release) :] == (
        "model_version",
        "cohort",
        "shadow_version",
        "shadow_word",
        "shadow_confidence",
    )


def test_a_server_outage_marks_nothing_and_the_next_pass_catches_up(tmp_path, capsys):
    server = SeaweedFS(tmp_path / "outage").start()
    try:
        server.client().create_bucket(Bucket="outage")
        config = _config(tmp_path, server, "outage", batch_rows=5, retries=1)
        write_backlog(tmp_path / "state", 12)
        server.stop()
        started = time.monotonic()
        assert main(["sync", "--config", str(config)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0
        assert "failed 2 times" in err
        assert "device=kiosk-9" in err
        assert time.monotonic() - started < 10
        store = Store(tmp_path / "state")
        assert store.counts()["pending_feedback"] == 12
        [planned] = store.pending_batches()
        assert (planned.first_id, planned.last_id) == (1, 5)
        server.start()
        assert main(["sync", "--config", str(config)]) == 0
        assert store.counts()["pending_feedback"] == 0
        assert store.pending_batches() == []
        rows = _csv_rows(_objects(server, "outage"))
        assert sorted(int(r["feedback_id"]) for r in rows) == list(range(1, 13))
        store.close()
    finally:
        server.stop()


def _planned_but_uploaded(state: Path, s3: SeaweedFS, bucket: str) -> int:
    """Batches the store still calls pending whose object the bucket already has: a kill landed
    between the upload and its mark."""
    store = Store(state)
    pending = store.pending_batches()
    store.close()
    present = set(_objects(s3, bucket))
    return sum(1 for batch in pending if batch.key in present)


def _kill_between_upload_and_mark(config: Path, s3: SeaweedFS, bucket: str, state: Path) -> str:
    """The one fault that matters, made on purpose: a batch planned (an upload that failed left it
    so), then a pass that uploads it while the test holds the store's write lock, so that marking
    it synced waits; the pass is killed once the object is in the bucket. Returns the batch key."""
    unreachable = config.parent / "unreachable.toml"
    unreachable.write_text(
        config.read_text().replace(s3.endpoint_url, f"http://127.0.0.1:{free_port_pair()}") + "retries = 0\n",
        encoding="utf-8",
    )
    assert main(["sync", "--config", str(unreachable)]) == 1
    store = Store(state)
    [planned] = store.pending_batches()
    store.close()
    lock = sqlite3.connect(state / DB_FILE, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the pass can read and upload, but not mark
    try:
        process = _sync_cli(config)
        deadline = time.monotonic() + 30
        while planned.key not in _objects(s3, bucket):
            assert process.poll() is None and time.monotonic() < deadline, (
                "the planned batch was not uploaded"
            )
            time.sleep(0.02)
        process.kill()
        process.wait()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    return planned.key


def test_killed_between_upload_and_mark_or_at_random_the_bucket_holds_every_row_exactly_once(
    s3, bucket, tmp_path
):
    config = _config(tmp_path, s3, bucket, batch_rows=2)
    state = tmp_path / "state"
    write_backlog(state, 600)
    key = _kill_between_upload_and_mark(config, s3, bucket, state)
    assert _planned_but_uploaded(state, s3, bucket) == 1
    store = Store(state)
    assert [batch.key for batch in store.pending_batches()] == [key]
    store.close()
    rng = random.Random(6)
    for run in range(3):  # and a few kills anywhere in a pass
        process = _sync_cli(config, "-v")
        assert process.stderr is not None
        process.stderr.readline()  # the first upload: from here on, every moment is upload or mark
        time.sleep(rng.uniform(0.0, 0.15))
        process.kill()
        process.wait()
        write_backlog(state, 3, seed=run + 1)
    final = _sync_cli(config)
    _, err = final.communicate(timeout=60)
    assert final.returncode == 0, err
    ids = Counter(int(row["feedback_id"]) for row in _csv_rows(_objects(s3, bucket)))
    assert sorted(ids) == _feedback_ids(state)
    assert set(ids.values()) == {1}


def test_daemon_and_manual_passes_at_once_upload_each_row_once(s3, bucket, tmp_path):
    config_path = _config(tmp_path, s3, bucket, batch_rows=7)
    state = tmp_path / "state"
    write_backlog(state, 1500)
    daemon_side = FeedbackSync(load_config(config_path))
    busy = 0
    manual = [_sync_cli(config_path) for _ in range(2)]
    writer = threading.Thread(target=lambda: [write_backlog(state, 5, seed=i) for i in range(10)])
    writer.start()
    store = Store(state)
    deadline = time.monotonic() + 30
    while store.counts()["pending_feedback"] >= 1500 and time.monotonic() < deadline:
        time.sleep(0.01)  # until a manual pass is under way
    store.close()
    while any(process.poll() is None for process in manual):
        try:
            daemon_side.run_pass()
        except SyncBusy:
            busy += 1
        time.sleep(0.01)
    writer.join()
    for process in manual:
        _, err = process.communicate()
        assert process.returncode == 0, err
    daemon_side.run_pass()
    assert busy >= 1
    ids = Counter(int(row["feedback_id"]) for row in _csv_rows(_objects(s3, bucket)))
    assert sorted(ids) == _feedback_ids(state)
    assert len(ids) == 1550
    assert set(ids.values()) == {1}


def test_a_100k_row_backlog_syncs_in_bounded_memory(s3, bucket, tmp_path):
    batch_bytes = 1_000_000
    config = load_config(_config(tmp_path, s3, bucket, batch_rows=100_000, batch_bytes=batch_bytes))
    write_backlog(tmp_path / "state", 100_000)
    sync = FeedbackSync(config)
    tracemalloc.start()
    try:
        result = sync.run_pass()
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    objects = s3.client().list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"]
    total_bytes = sum(item["Size"] for item in objects)
    assert (result.rows, result.backlog) == (100_000, 0)
    assert result.batches == len(objects) > 15
    assert max(item["Size"] for item in objects) <= batch_bytes
    assert total_bytes > 15 * batch_bytes
    assert peak_bytes < 6 * batch_bytes, (
        f"peak {peak_bytes / 1e6:.1f} MB for {total_bytes / 1e6:.1f} MB of CSV"
    )


def test_the_daemon_timer_syncs_reports_health_and_stops_at_once(s3, bucket, tmp_path):
    config = load_config(_config(tmp_path, s3, bucket, interval_s=1.0))
    write_backlog(tmp_path / "state", 5)
    sync = FeedbackSync(config)
    idle = sync.health()
    assert (idle.sync_last_success, idle.sync_last_success_utc, idle.sync_last_error) == (None, None, None)
    assert idle.worker.state == "starting"
    sync.start()
    try:
        deadline = time.monotonic() + 10
        while sync.last_success is None and time.monotonic() < deadline:
            time.sleep(0.05)
        health = sync.health()
        assert health.sync_last_success is not None
        assert health.worker == WorkerHealth("running", 0, None)
        # The same moment for Home Assistant's timestamp sensor: ISO 8601 in UTC, to the second.
        assert health.sync_last_success_utc.endswith("+00:00")
        assert (
            abs(datetime.fromisoformat(health.sync_last_success_utc).timestamp() - health.sync_last_success)
            < 1
        )
        write_backlog(tmp_path / "state", 2, seed=1)
        deadline = time.monotonic() + 10
        while Store(tmp_path / "state").counts()["pending_feedback"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert Store(tmp_path / "state").counts()["pending_feedback"] == 0
    finally:
        started = time.monotonic()
        sync.stop()
        assert time.monotonic() - started < 1.6
    assert len(_csv_rows(_objects(s3, bucket))) == 7


def test_a_failing_timer_pass_is_reported_in_health(tmp_path):
    config = load_config(
        _config(tmp_path, SeaweedFS(tmp_path / "nothing"), "missing", retries=0, interval_s=60.0)
    )
    write_backlog(tmp_path / "state", 1)
    sync = FeedbackSync(config)
    sync.start()
    deadline = time.monotonic() + 10
    while sync.last_error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sync.stop()
    assert sync.health().sync_last_success is None
    assert "Could not connect" in str(sync.health().sync_last_error)


def test_a_pass_that_crashes_is_reported_and_the_worker_restarts(s3, bucket, tmp_path):
    """Any exception, not only the sync errors it expects (here a raw SQLite error), is reported in
    health and the worker comes back with backoff, instead of dying while health shows the last
    success."""
    config = load_config(_config(tmp_path, s3, bucket, interval_s=60.0))
    write_backlog(tmp_path / "state", 3)
    sync = FeedbackSync(config)
    upload_all = sync._upload_all
    crashes = []

    def crash_once(store, stop):
        if not crashes:
            crashes.append(1)
            raise sqlite3.OperationalError("database disk image is malformed")
        return upload_all(store, stop)

    sync._upload_all = crash_once  # type: ignore[method-assign]
    sync.start()
    try:
        deadline = time.monotonic() + 10
        while sync.last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        crashed = sync.health()
        while sync.last_success is None and time.monotonic() < deadline:
            time.sleep(0.05)
        recovered = sync.health()
    finally:
        sync.stop()
    error = "OperationalError: database disk image is malformed"
    assert (crashed.sync_last_success, crashed.sync_last_success_utc, crashed.sync_last_error) == (
        None,
        None,
        error,
    )
    assert (crashed.worker.state, crashed.worker.restarts, crashed.worker.last_error) == ("failing", 1, error)
    assert recovered.sync_last_error is None and recovered.sync_last_success is not None
    assert recovered.worker.restarts == 1  # the crash stays counted
    assert len(_csv_rows(_objects(s3, bucket))) == 3


def test_sync_needs_a_bucket_and_readable_credentials(tmp_path, capsys):
    empty = tmp_path / "empty.toml"
    empty.write_text("[sync]\n", encoding="utf-8")
    assert main(["sync", "--config", str(empty)]) == 2
    assert "set [sync] bucket" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text('[sync]\nbucket = "fleet"\ncredentials_file = "nope"\n', encoding="utf-8")
    assert main(["sync", "--config", str(broken)]) == 2
    assert "sync.credentials_file: cannot read" in capsys.readouterr().err
    (tmp_path / "partial").write_text("[default]\naws_access_key_id = AKIA-secret-id\n", encoding="utf-8")
    broken.write_text('[sync]\nbucket = "fleet"\ncredentials_file = "partial"\n', encoding="utf-8")
    assert main(["sync", "--config", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "needs aws_access_key_id and aws_secret_access_key" in err
    assert "AKIA-secret-id" not in err


def test_the_systemd_credential_is_used_when_no_file_is_configured(s3, bucket, tmp_path, monkeypatch, capsys):
    config = _config(tmp_path, s3, bucket)
    text = config.read_text().replace('credentials_file = "s3-credentials"\n', "")
    config.write_text(text, encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    s3.write_credentials(credentials / "s3-credentials")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-such-file"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-such-file"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    write_backlog(tmp_path / "state", 3)
    assert main(["sync", "--config", str(config)]) == 0
    assert len(_csv_rows(_objects(s3, bucket))) == 3
    (credentials / "s3-credentials").write_text("\n", encoding="utf-8")  # as the installer leaves it
    write_backlog(tmp_path / "state", 1, seed=1)
    assert main(["sync", "--config", str(config)]) == 1
    assert "Unable to locate credentials" in capsys.readouterr().err, (
        "an empty credential means the AWS chain"
    )
    (credentials / "s3-credentials").unlink()
    assert main(["sync", "--config", str(config)]) == 1
    assert "Unable to locate credentials" in capsys.readouterr().err


def _feedback_with_clips(state: Path, with_clip: list[bool]) -> dict[str, bytes]:
    """One wrong prediction per entry, with a consented clip where asked; returns the clips' bytes."""
    store = Store(state)
    keeper = ClipKeeper(state / CLIPS_DIR)
    rng = np.random.default_rng(3)
    for index, keep in enumerate(with_clip):
        store.add_prediction(PredictionRecord(f"p-{index}", "book", 0.9, [], "m"))
        keeper.remember(f"p-{index}", list(rng.integers(0, 255, (8, 224, 224, 3), dtype=np.uint8)), 10.0)
        store.add_feedback(f"p-{index}", False, "drink", keeper.write(f"p-{index}") if keep else None)
    store.close()
    return {path.name: path.read_bytes() for path in (state / CLIPS_DIR).iterdir()}


def test_clips_go_up_with_their_batch_and_leave_the_device(s3, bucket, tmp_path, capsys):
    config = _config(tmp_path, s3, bucket, batch_rows=2)
    state = tmp_path / "state"
    local = _feedback_with_clips(state, [True, False, True])
    assert sorted(local) == ["p-0.mp4", "p-2.mp4"]
    assert main(["sync", "--config", str(config)]) == 0
    assert "uploaded 3 feedback rows in 2 batches and 2 clips" in capsys.readouterr().out
    objects = _objects(s3, bucket)
    keys = [f"asl-feedback/clips/device=kiosk-9/p-{index}.mp4" for index in (0, 2)]
    assert [objects[key] for key in keys] == [local["p-0.mp4"], local["p-2.mp4"]]
    rows = sorted(_csv_rows(objects), key=lambda r: int(r["feedback_id"]))
    assert [row["clip_key"] for row in rows] == [keys[0], "", keys[1]]
    assert list((state / CLIPS_DIR).iterdir()) == []


def test_a_clip_expired_after_its_batch_was_planned_is_left_out(s3, bucket, tmp_path, caplog):
    state = tmp_path / "state"
    _feedback_with_clips(state, [True])
    offline = _config(tmp_path, SeaweedFS(tmp_path / "never-started"), bucket, retries=0)
    assert main(["sync", "--config", str(offline)]) == 1
    store = Store(state)
    [planned] = store.pending_batches()
    old = time.time() - 30 * 86400
    os.utime(state / CLIPS_DIR / "p-0.mp4", (old, old))
    assert expire_clips(store, state / CLIPS_DIR, retention_days=7) == 1
    store.close()
    online = _config(tmp_path, s3, bucket)
    with caplog.at_level(logging.WARNING, logger="edge.runtime.sync"):
        assert main(["sync", "--config", str(online)]) == 0
    assert "changed since it was planned" in caplog.text
    objects = _objects(s3, bucket)
    assert list(objects) == [planned.key]
    [row] = _csv_rows(objects)
    assert (row["feedback_id"], row["clip_key"]) == ("1", "")


def test_a_refused_upload_fails_at_once_and_a_held_lock_is_waited_for_then_reported(s3, tmp_path, capsys):
    config = _config(tmp_path, s3, "no-such-bucket", retries=4)
    write_backlog(tmp_path / "state", 2)
    started = time.monotonic()
    assert main(["sync", "--config", str(config)]) == 1
    assert time.monotonic() - started < 2, "a refusal is not retried"
    assert "(AccessDenied) when calling the PutObject operation" in capsys.readouterr().err
    with open(tmp_path / "state" / "sync.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        assert main(["sync", "--config", str(config), "--wait-s", "0.5"]) == 1
        assert 0.5 <= time.monotonic() - started < 2
    assert "another sync pass holds" in capsys.readouterr().err


def test_stopping_the_timer_never_waits_for_a_hanging_upload(s3, tmp_path):
    """A server that accepts the connection and never answers: stop() still returns at once."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = _config(tmp_path, s3, "hangs")
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config.write_text(config.read_text().replace(s3.endpoint_url, endpoint), encoding="utf-8")
        write_backlog(tmp_path / "state", 1)
        sync = FeedbackSync(load_config(config))
        sync.start()
        time.sleep(1.0)
        uploading = sync.health()
        assert (uploading.sync_last_success, uploading.sync_last_error) == (None, None), "still uploading"
        assert uploading.worker == WorkerHealth("running", 0, None)
        started = time.monotonic()
        sync.stop()
        assert time.monotonic() - started < 2.0
