"""``asl-edge dataset build``: the SQL on local CSV batches, the split, and a build from a real
SeaweedFS bucket that a real daemon's sync filled (consent clips, revocations, a missing and a
corrupt clip, labels outside the class list, an operator's later correction, a rerun)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import signal
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from asl_edge.cli import main
from calibration.dataset.build import dataset_version
from calibration.dataset.errors import DatasetError
from calibration.dataset.query import FeedbackQuery, open_database
from calibration.dataset.revocations import parse_revocations, read_revocations
from calibration.dataset.split import hash_position, subset_of
from calibration.dataset.videos import BadClip, inspect_clip
from edge.core.bundle import DEMO_BUNDLE, read_labels
from edge.demo.synth import write_dataset
from edge.runtime.clips import CLIPS_DIR, ClipKeeper
from edge.runtime.store import PredictionRecord, Store, SyncRow
from edge.runtime.sync import CSV_COLUMNS, render_batch
from tests.services import Mosquitto, MqttSubscriber, SeaweedFS, free_port, running_daemon

BUCKET = "fleet"
PREFIX = "asl-feedback"
KIOSK = "kiosk-left"
GONE = "kiosk-gone"  # a kiosk whose owner withdrew all its clips


# -- the SQL, on local CSV batches -----------------------------------------------------------


def _row(feedback_id: int, prediction_id: str, received_s: float, **fields: object) -> SyncRow:
    values: dict[str, object] = {
        "predicted_at": received_s - 2.0,
        "predicted_word": "book",
        "confidence": 0.9,
        "top_k": json.dumps([{"word": "book", "score": 0.9}, {"word": "chair", "score": 0.05}]),
        "correct": True,
        "label": None,
        "model_id": "demo",
        "backend": "onnxruntime",
        "clip_file": f"{prediction_id}.mp4",
        "model_version": "1.2.0",
    }
    values.update(fields)
    return SyncRow(feedback_id, prediction_id, received_s, **values)  # type: ignore[arg-type]


def _batch(root: Path, device: str, day: str, rows: list[SyncRow], old: bool = False) -> Path:
    """A CSV batch as sync writes it; ``old``: as asl-edge wrote it before model_version existed."""
    rendered = render_batch(rows, device, PREFIX)
    assert rendered is not None
    body = rendered.body
    if old:
        table = list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))
        end = table[0].index("model_version")  # that column and those appended after it
        text = io.StringIO()
        csv.writer(text).writerows(line[:end] for line in table)
        body = text.getvalue().encode("utf-8")
    path = root / f"device={device}" / f"date={day}" / f"{rows[0].feedback_id}-{rows[-1].feedback_id}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


DAY_S = 1_795_000_000.0  # 2026-11-18 (UTC)


@pytest.fixture
def local_batches(tmp_path):
    """Two kiosks' batches on two days, one batch from before the model_version column."""
    root = tmp_path / "mirror" / PREFIX
    old = _batch(
        root,
        "007",  # a device id that looks like a number stays text
        "2026-11-18",
        [
            _row(1, "p-1", DAY_S, correct=False, label="drink"),
            _row(2, "p-2", DAY_S + 1, correct=False, label="-1"),  # quoted as '-1 in the CSV
            _row(3, "p-3", DAY_S + 2, correct=False, label=None),  # wrong, but not what it was
            _row(4, "p-4", DAY_S + 3, predicted_word="unknown", clip_file=None),  # below the floor
        ],
        old=True,
    )
    new = _batch(
        root,
        "kiosk-b",
        "2026-11-19",
        [
            _row(10, "p-1", DAY_S + 86400, correct=True),  # a later answer for p-1: it wins
            _row(11, "p-5", DAY_S + 86401, predicted_word="go", label="hello", correct=False),
            _row(12, "p-6", DAY_S + 86402, predicted_word="who", clip_file=None),
            _row(13, "p-7", DAY_S + 86403, predicted_word="fine"),
            _row(14, "p-8", DAY_S + 86404, predicted_word="deaf"),
        ],
    )
    tie = _batch(  # the same received_at as p-8's row: the larger feedback_id wins
        root,
        "kiosk-b",
        "2026-11-19",
        [_row(15, "p-8", DAY_S + 86404, predicted_word="deaf", correct=False, label="candy")],
    )
    return tmp_path, [old, new, tie]


def test_the_latest_answer_wins_and_every_prediction_is_counted_once(local_batches):
    tmp_path, files = local_batches
    query = FeedbackQuery(open_database(tmp_path / "db"))
    query.load(files, revoked={"p-7"})
    assert query.vocabulary() == ["book", "chair", "deaf", "go", "who"], "not p-7's word: it is revoked"
    tally = query.classify(["book", "candy", "chair", "drink", "go", "who", "-1"])
    assert (tally.rows, tally.predictions) == (10, 8)
    assert tally.skipped == {
        "label_outside_classes": 1,  # p-5 "hello"
        "no_clip": 1,  # p-6
        "no_label": 2,  # p-3 (wrong, no label), p-4 (right, but the decoder said unknown)
        "revoked": 1,  # p-7
    }
    assert tally.new_words == {"hello": 1}
    usable = {row.prediction_id: row for row in query.usable()}
    assert sorted(usable) == ["p-1", "p-2", "p-8"]
    assert (usable["p-1"].label, usable["p-1"].correct, usable["p-1"].device) == ("book", True, "kiosk-b")
    assert (usable["p-2"].label, usable["p-2"].model_version) == ("-1", ""), "unquoted; old batch: no version"
    assert (usable["p-8"].label, usable["p-8"].date) == ("candy", "2026-11-19")
    assert usable["p-8"].clip_key == f"{PREFIX}/clips/device=kiosk-b/p-8.mp4"
    assert usable["p-1"].model_version == "1.2.0"
    assert set(query.ran) >= {"feedback", "latest", "vocabulary", "examples", "skipped", "usable"}


def test_days_and_device_revocations_choose_the_rows(local_batches):
    tmp_path, files = local_batches
    query = FeedbackQuery(open_database(tmp_path / "db"), since="2026-11-18", until="2026-11-18")
    query.load(files, revoked={"kiosk-b"})
    tally = query.classify(["book", "drink"])
    assert (tally.rows, tally.predictions) == (4, 4)
    assert [row.prediction_id for row in query.usable()] == ["p-1"]
    assert next(iter(query.usable())).label == "drink", "without the later day, the first answer stands"
    everything = FeedbackQuery(open_database(tmp_path / "db2"))
    everything.load(files, revoked={"kiosk-b"})
    assert everything.classify(["book"]).skipped["revoked"] == 5


def test_no_extension_is_needed_and_none_can_be_installed_or_loaded(local_batches):
    import duckdb

    tmp_path, files = local_batches
    query = FeedbackQuery(open_database(tmp_path / "db"))
    query.load(files, revoked=set())
    query.classify(query.vocabulary())
    assert [row.prediction_id for row in query.usable()] == ["p-1", "p-7"]
    assert query.loaded_extensions() == []
    assert list((tmp_path / "db" / "extensions").iterdir()) == []
    with pytest.raises(duckdb.Error):
        query.db.execute("SELECT * FROM read_csv('s3://fleet/x.csv')")  # would need httpfs
    with pytest.raises(duckdb.Error):
        query.db.execute("SET autoinstall_known_extensions = true")  # the configuration is locked
    assert list((tmp_path / "db" / "extensions").iterdir()) == []


def test_an_object_that_is_not_a_csv_batch_stops_the_build_with_one_line(local_batches):
    tmp_path, files = local_batches
    garbage = files[0].with_name("9-9.csv")
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    query = FeedbackQuery(open_database(tmp_path / "db"))
    with pytest.raises(DatasetError, match=r"^feedback.sql: .*9-9.csv") as stopped:
        query.load([*files, garbage], revoked=set())
    assert "\n" not in str(stopped.value)


def test_the_split_is_a_rule_of_each_id_alone():
    ids = [f"{index:032x}" for index in range(6000)]
    subsets = Counter(subset_of(i, "2026-11-18") for i in ids)
    assert abs(subsets["train"] / len(ids) - 0.70) < 0.02
    assert abs(subsets["val"] / len(ids) - 0.15) < 0.02
    assert abs(subsets["test"] / len(ids) - 0.15) < 0.02
    assert [subset_of(i, "2026-11-18") for i in ids[:50]] == [subset_of(i, "2030-01-01") for i in ids[:50]]
    assert hash_position("p-1") == int(hashlib.sha256(b"p-1").hexdigest()[:16], 16) / 2**64
    held = Counter(subset_of(i, "2026-11-18", holdout_since="2026-11-19") for i in ids)
    assert held["test"] == 0 and abs(held["train"] / len(ids) - 0.70 / 0.85) < 0.02
    assert {subset_of(i, "2026-11-19", holdout_since="2026-11-19") for i in ids[:100]} == {"test"}


def test_revocation_lists_take_ids_and_skip_comments_and_blank_lines(tmp_path):
    assert parse_revocations("# withdrawn 2026-12-01\n\np-1\n  kiosk-7  # the whole kiosk\n\r\np-2\n") == {
        "p-1",
        "kiosk-7",
        "p-2",
    }
    (tmp_path / "bad").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DatasetError, match="revocations/bad cannot be read"):
        read_revocations([("revocations/bad", tmp_path / "bad")])


def test_a_clip_is_checked_frame_by_frame(tmp_path):
    rng = np.random.default_rng(0)
    good = tmp_path / "good.mp4"
    writer = cv2.VideoWriter(str(good), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(5):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.release()
    info = inspect_clip(good)
    assert (info.frames, info.width, info.height) == (5, 64, 48)
    with pytest.raises(BadClip, match="more than 4 frames") as too_long:
        inspect_clip(good, max_frames=4)
    assert too_long.value.reason == "clip_too_long"
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x01 not a video" * 50)
    with pytest.raises(BadClip) as junk:
        inspect_clip(tmp_path / "junk.mp4")
    assert junk.value.reason == "clip_unreadable"


def test_the_version_hashes_what_a_consumer_trains_on():
    assert dataset_version(["a", "b"], []) != dataset_version(["b", "a"], [])
    assert len(dataset_version(["a"], [])) == 64


# -- a real kiosk's sync, a real bucket --------------------------------------------------------


PLAN = (
    # (name, correct, label, consent)
    ("right", True, None, True),
    ("corrected", False, "computer", True),
    ("right-no-consent", True, None, False),
    ("new-word", False, "hello", True),
    ("revoked", True, None, True),
    ("missing", True, None, True),
    ("corrupt", True, None, True),
    ("relabeled", True, None, True),  # an operator's later batch says it was "fine"
)


def _answer_signs(broker: Mosquitto, timeout_s: float = 120.0) -> dict[str, dict]:
    """Answer the daemon's next predictions in PLAN's order (the looping video makes one every few
    seconds); returns each name's prediction once every answer is stored and synced (health: no
    backlog)."""
    subscriber = MqttSubscriber(broker.port, f"asl/{KIOSK}/#", lambda m: (m.topic, json.loads(m.payload)))
    answered: dict[str, dict] = {}
    stored = 0
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            topic, payload = subscriber.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if topic.endswith("/prediction") and len(answered) < len(PLAN) and payload["word"] != "unknown":
                name, correct, label, consent = PLAN[len(answered)]
                answered[name] = payload
                feedback = {"prediction_id": payload["id"], "correct": correct, "consent": consent}
                if label is not None:
                    feedback["label"] = label
                subscriber.client.publish(f"asl/{KIOSK}/feedback", json.dumps(feedback), qos=1)
            elif topic.endswith("/feedback/ack"):
                assert payload["status"] == "stored", payload
                stored += 1
            elif topic.endswith("/health") and stored == len(PLAN) and payload["sync_backlog"] == 0:
                return answered
    finally:
        subscriber.close()
    raise AssertionError(f"{stored} of {len(PLAN)} answers stored and synced in {timeout_s} s")


def _gone_kiosk(folder: Path, s3: SeaweedFS) -> None:
    """Another kiosk's consented clips, synced by a real ``asl-edge sync``."""
    state = folder / "state"
    store, keeper = Store(state), ClipKeeper(state / CLIPS_DIR)
    rng = np.random.default_rng(5)
    for index in range(2):
        store.add_prediction(PredictionRecord(f"gone-{index}", "book", 0.9, [], "demo"))
        keeper.remember(f"gone-{index}", list(rng.integers(0, 255, (8, 224, 224, 3), dtype=np.uint8)), 10.0)
        store.add_feedback(f"gone-{index}", True, None, keeper.write(f"gone-{index}"))
    store.close()
    config, credentials = folder / "config.toml", s3.write_credentials(folder / "creds")
    config.write_text(
        f'[device]\nid = "{GONE}"\n[storage]\nstate_dir = "{state}"\n[sync]\nbucket = "{BUCKET}"\n'
        f'endpoint_url = "{s3.endpoint_url}"\ncredentials_file = "{credentials}"\n',
        encoding="utf-8",
    )
    assert main(["sync", "--config", str(config)]) == 0


def _csv(client, key: str) -> list[dict[str, str]]:
    body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode("utf-8")
    return list(csv.DictReader(io.StringIO(body, newline="")))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """A bucket as a fleet leaves it: one daemon's sync (consent clips on, a left-handed signer on
    a looping video), another kiosk's, then a deleted clip, a corrupted clip, revocations of a
    prediction and of the other kiosk, and an operator's correction batch."""
    folder = tmp_path_factory.mktemp("fleet")
    s3 = SeaweedFS(folder / "seaweedfs").start()
    broker = Mosquitto(folder).start()
    try:
        client = s3.client()
        client.create_bucket(Bucket=BUCKET)
        write_dataset(folder / "signer", 0, 41, sentences=1, progress=False, handedness="left")
        config = folder / "kiosk.toml"
        config.write_text(
            f'[device]\nid = "{KIOSK}"\n[source]\nuri = "file://{folder / "signer/sentences/00000.mp4"}"\n'
            f'loop = true\n[mqtt]\nport = {broker.port}\n[storage]\nstate_dir = "{folder / "state"}"\n'
            f"[health]\ninterval_s = 1.0\n[screen]\nport = 0\n"
            f'[sync]\nbucket = "{BUCKET}"\nendpoint_url = "{s3.endpoint_url}"\n'
            f'credentials_file = "{s3.write_credentials(folder / "s3-credentials")}"\n'
            "interval_s = 1.0\nclips = true\n",
            encoding="utf-8",
        )
        with running_daemon(config) as daemon:
            predictions = _answer_signs(broker)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(timeout=30) == 0, daemon.log()[-2000:]
        _gone_kiosk(folder / "gone", s3)
        listing = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
        batches = [key for key in listing if key.startswith(f"{PREFIX}/device={KIOSK}/")]
        rows = {row["prediction_id"]: row for key in batches for row in _csv(client, key)}
        synced = {name: rows[p["id"]] for name, p in predictions.items()}
        clip = {name: f"{PREFIX}/clips/device={KIOSK}/{p['id']}.mp4" for name, p in predictions.items()}
        originals = {
            name: client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            for name, key in clip.items()
            if key in listing
        }

        client.delete_object(Bucket=BUCKET, Key=clip["missing"])
        client.put_object(Bucket=BUCKET, Key=clip["corrupt"], Body=b"\x00\x00\x00\x18ftypmp42 broken" * 40)
        client.put_object(
            Bucket=BUCKET,
            Key=f"{PREFIX}/revocations/2026-12-03.txt",
            Body=f"# consent withdrawn at the kiosk\n{predictions['revoked']['id']}\n\n".encode(),
        )
        client.put_object(
            Bucket=BUCKET, Key=f"{PREFIX}/revocations/kiosks.txt", Body=f"{GONE}  # all of it\n".encode()
        )
        correction = dict(synced["relabeled"])
        received = datetime.fromisoformat(correction["received_at"].replace("Z", "+00:00")).timestamp() + 3600
        correction.update(
            feedback_id="900000",
            received_at=datetime.fromtimestamp(received, timezone.utc).isoformat().replace("+00:00", "Z"),
            correct="false",
            label="fine",
        )
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerow(correction)
        day = batches[0].split("/date=")[1].split("/")[0]
        key = f"{PREFIX}/device={KIOSK}/date={day}/900000-900000.csv"
        client.put_object(Bucket=BUCKET, Key=key, Body=text.getvalue().encode())
        yield {
            "s3": s3,
            "predictions": predictions,
            "synced": synced,
            "clip": clip,
            "originals": originals,
            "listing": listing,
            "credentials": folder / "s3-credentials",
        }
    finally:
        broker.stop()
        s3.stop()


def _build(fleet, out: Path, *options: str) -> int:
    url = f"s3://{BUCKET}/{PREFIX}"
    return main(
        ["dataset", "build", url, "--out", str(out), "--endpoint-url", fleet["s3"].endpoint_url, *options]
    )


def test_right_and_wrong_answers_keep_their_clips_with_consent_and_none_without(fleet):
    for name, _, _, consent in PLAN:
        row, key = fleet["synced"][name], fleet["clip"][name]
        assert (row["clip_key"] == key) is consent, name
        assert (key in fleet["listing"]) is consent, name
        assert row["model_version"] == "", "a local bundle, not a release"
        assert row["correct"] == ("false" if name in ("corrected", "new-word") else "true")


def test_the_build_keeps_consented_answers_and_says_why_it_skipped_the_rest(fleet, tmp_path, capsys):
    out = tmp_path / "dataset"
    credentials = ["--credentials-file", str(fleet["credentials"])]
    assert _build(fleet, out, "--labels", str(DEMO_BUNDLE), "--no-progress", *credentials) == 0
    printed = capsys.readouterr()
    predictions = fleet["predictions"]
    ids = {name: p["id"] for name, p in predictions.items()}
    manifest = json.loads((out / "manifest.json").read_text())
    labels = (out / "labels.txt").read_text().splitlines()
    assert labels == list(read_labels(DEMO_BUNDLE / "labels.txt")), "exactly the model's class list"

    expected = {
        ids["right"]: (predictions["right"]["word"], True),
        ids["corrected"]: ("computer", False),
        ids["relabeled"]: ("fine", False),  # the operator's later correction won
    }
    videos = manifest["videos"]
    assert {pid: (v["label"], v["correct"]) for pid, v in videos.items()} == expected
    split = json.loads((out / "split.json").read_text())
    assert set(split) == set(expected) == {p.stem for p in (out / "videos").iterdir()}
    for pid, entry in split.items():
        video = videos[pid]
        assert entry["action"] == [labels.index(video["label"]), 1, video["frames"]]
        assert entry["subset"] in ("train", "val", "test")
        assert (video["kind"], video["frames"], video["width"], video["height"]) == ("crops", 32, 224, 224)
        data = (out / "videos" / f"{pid}.mp4").read_bytes()
        name = next(n for n, i in ids.items() if i == pid)
        assert data == fleet["originals"][name], "exactly the bytes the kiosk synced"
        assert video["sha256"] == hashlib.sha256(data).hexdigest()
        assert (video["device"], video["clip_key"], video["model_version"]) == (
            KIOSK,
            fleet["clip"][name],
            "",
        )
        assert video["model_id"] == predictions[name]["model"]
        assert video["predicted_word"] == predictions[name]["word"]

    assert manifest["skipped"] == {
        "clip_missing": 1,
        "clip_unreadable": 1,
        "label_outside_classes": 1,
        "no_clip": 1,
        "revoked": 3,  # one prediction, and the two of the kiosk revoked whole
    }
    assert sorted(map(tuple, (e.values() for e in manifest["skipped_examples"]))) == sorted(
        [(ids["missing"], "clip_missing"), (ids["corrupt"], "clip_unreadable")]
    )
    assert manifest["new_word_candidates"] == {"hello": 1}
    counts = manifest["counts"]
    assert (counts["rows"], counts["predictions"], counts["examples"]) == (11, 10, 3)
    assert sum(counts["per_split"].values()) == 3
    assert counts["per_device"] == {KIOSK: 3}
    assert sum(counts["per_class"].values()) == 3 and list(counts["per_class"]) == labels
    lineage = manifest["lineage"]
    assert (lineage["consented_clips"], lineage["devices"], lineage["revocations"]) == (3, [KIOSK], 3)
    assert lineage["days"] == sorted({v["date"] for v in videos.values()})
    assert lineage["licence"] == "consented kiosk clips (asl-edge feedback)"
    assert (manifest["kind"], manifest["format"], len(manifest["version"])) == ("asl-edge-dataset", 1, 64)
    source = manifest["source"]
    assert source["uri"] == f"s3://{BUCKET}/{PREFIX}"
    assert len(source["keys"]) >= 3 and any(key.endswith("/900000-900000.csv") for key in source["keys"])
    assert any(f"device={GONE}/" in key for key in source["keys"])
    assert len(source["revocation_keys"]) == 2
    assert "ROW_NUMBER() OVER" in manifest["sql"]["latest"].upper()
    assert "read_csv" in manifest["sql"]["feedback"]

    warnings = [line for line in printed.err.splitlines() if line.startswith("asl-edge: skipped")]
    assert len(warnings) == 2 and any(ids["missing"] in line for line in warnings)
    assert f"dataset {manifest['version']} in {out}: 3 examples" in printed.out
    cache = out / ".cache" / "objects"
    assert not (cache / fleet["clip"]["revoked"]).exists(), "no copy of a revoked clip is kept"
    assert not list(cache.glob(f"{PREFIX}/clips/device={GONE}/*"))
    assert (cache / fleet["clip"]["right"]).is_file()


def test_a_rerun_fetches_nothing_new_and_a_new_revocation_removes_its_clip(fleet, tmp_path, capsys):
    out = tmp_path / "dataset"
    client = fleet["s3"].client()
    relabeled = fleet["predictions"]["relabeled"]["id"]
    assert _build(fleet, out, "--no-progress") == 0
    first = json.loads((out / "manifest.json").read_text())
    assert "fetched 0 batches" not in capsys.readouterr().out
    assert _build(fleet, out, "--no-progress") == 0
    assert "fetched 0 batches, 0 revocation lists and 0 clips" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["version"] == first["version"]

    key = f"{PREFIX}/revocations/later.txt"
    client.put_object(Bucket=BUCKET, Key=key, Body=f"{relabeled}\n".encode())
    try:
        assert _build(fleet, out, "--no-progress") == 0
        assert "fetched 0 batches, 1 revocation lists and 0 clips" in capsys.readouterr().out
        withdrawn = json.loads((out / "manifest.json").read_text())
        assert relabeled not in withdrawn["videos"]
        assert relabeled not in json.loads((out / "split.json").read_text())
        assert not (out / "videos" / f"{relabeled}.mp4").exists()
        assert not (out / ".cache" / "objects" / fleet["clip"]["relabeled"]).exists()
        assert withdrawn["version"] != first["version"]
        assert withdrawn["lineage"]["revocations"] == first["lineage"]["revocations"] + 1
    finally:
        client.delete_object(Bucket=BUCKET, Key=key)
    assert _build(fleet, out, "--no-progress") == 0
    assert "fetched 0 batches, 0 revocation lists and 1 clips" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["version"] == first["version"]


def test_without_a_class_list_the_feedback_gives_it_and_a_holdout_day_takes_the_test_split(fleet, tmp_path):
    out = tmp_path / "dataset"
    assert _build(fleet, out, "--no-progress", "--holdout-since", "2000-01-01") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    revoked = {fleet["predictions"]["revoked"]["id"]}
    words = set()
    for row in fleet["synced"].values():
        if row["prediction_id"] not in revoked:
            words.add(row["predicted_word"])
            words |= {entry["word"] for entry in json.loads(row["top_k"])}
    assert (out / "labels.txt").read_text().splitlines() == sorted(words - {"unknown"})
    assert manifest["counts"]["per_split"] == {"train": 0, "val": 0, "test": manifest["counts"]["examples"]}
    assert manifest["split"]["holdout_since"] == "2000-01-01"


def test_bad_sources_and_arguments_are_one_line_errors(fleet, tmp_path, capsys):
    url = f"s3://{BUCKET}/{PREFIX}"
    endpoint = ["--endpoint-url", fleet["s3"].endpoint_url]
    out = ["--out", str(tmp_path / "out"), "--no-progress"]
    cases = [
        (["dataset", "build", url, *out, "--endpoint-url", f"http://127.0.0.1:{free_port()}"], 1, "connect"),
        (["dataset", "build", "s3://no-such-bucket/x", *out, *endpoint], 1, "NoSuchBucket"),
        (["dataset", "build", f"s3://{BUCKET}/nothing-here", *out, *endpoint], 2, "no feedback batches"),
        (["dataset", "build", url, *out, *endpoint, "--until", "2000-01-01"], 2, "between the first day and"),
        (
            ["dataset", "build", url, *out, *endpoint, "--since", "2026-02-01", "--until", "2026-01-31"],
            2,
            "after",
        ),
        (["dataset", "build", "http://x/y", *out, *endpoint], 2, "s3://"),
        (["dataset", "build", url, *out, *endpoint, "--labels", str(tmp_path / "none.txt")], 2, "none.txt"),
    ]
    for command, code, words in cases:
        assert main(command) == code, command
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("asl-edge: error: ") and words in line, line
    with pytest.raises(SystemExit) as bad_day:
        main(["dataset", "build", url, *out, "--since", "yesterday"])
    assert bad_day.value.code == 2
    assert "expected a day as YYYY-MM-DD" in capsys.readouterr().err
