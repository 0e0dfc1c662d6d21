"""The kiosk daemon end to end: GStreamer file source -> segmentation -> demo model -> Mosquitto."""

import csv
import io
import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from asl_edge.cli import main
from tests.conftest import AUTO_CPU_BACKEND
from tests.services import DaemonProcess, Mosquitto, MqttSubscriber, SeaweedFS


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentences")
    assert (
        main(
            [
                "synth",
                "--out",
                str(folder),
                "--clips",
                "0",
                "--seed",
                "31",
                "--sentences",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    return folder, json.loads((folder / "sentences.json").read_text())


@pytest.fixture
def broker(tmp_path):
    service = Mosquitto(tmp_path).start()
    yield service
    service.stop()


def _decode(payload: bytes) -> object:
    """JSON payloads as objects; anything else (our own garbage on the feedback topic) as bytes."""
    try:
        return json.loads(payload)
    except ValueError:
        return payload


class Subscriber(MqttSubscriber):
    """(topic, payload, arrival time) of each message; subscribed when constructed."""

    def __init__(self, port: int, topic: str, session: str = "") -> None:
        super().__init__(port, topic, lambda m: (m.topic, _decode(m.payload), time.monotonic()), session)
        assert self.subscribed.wait(10), "the broker did not confirm the subscription"

    def drain(self) -> list:
        items = []
        while not self.messages.empty():
            items.append(self.messages.get())
        return items


def _config(tmp_path: Path, video: Path, port: int, **source) -> Path:
    lines = [f'uri = "file://{video}"'] + [f"{k} = {json.dumps(v)}" for k, v in source.items()]
    path = tmp_path / "config.toml"
    path.write_text(
        '[device]\nid = "kiosk-test"\n[source]\n' + "\n".join(lines) + f"\n[mqtt]\nport = {port}\n"
        f'[storage]\nstate_dir = "state"\n[health]\ninterval_s = 1.0\n[screen]\nport = 0\n',
        encoding="utf-8",
    )
    return path


def _run(config: Path) -> DaemonProcess:
    return DaemonProcess("run", "--config", str(config))


def _terminate_promptly(process: DaemonProcess, within_s: float = 8.0) -> None:
    """SIGTERM: the daemon finishes the sign in progress, flushes and exits 0 in time."""
    stopped_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err[-2000:]
    assert time.monotonic() - stopped_at < within_s


def test_sentence_video_words_arrive_in_order(sentences, broker, tmp_path):
    folder, entries = sentences
    subscriber = Subscriber(broker.port, "asl/kiosk-test/prediction")
    expected, recognized = [], []
    for entry in entries:
        process = _run(_config(tmp_path, folder / entry["file"], broker.port, realtime=False))
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        _words_until(
            subscriber, recognized, len(_predictions_stored(tmp_path / "state" / "asl-edge.db", 0.0))
        )
        expected += entry["words"]
    subscriber.close()
    hits = sum(1 for a, b in zip(expected, recognized, strict=False) if a == b)
    assert hits >= 0.9 * len(expected), (expected, recognized)
    assert len(recognized) <= len(expected) * 1.1, (expected, recognized)
    db = sqlite3.connect(tmp_path / "state" / "asl-edge.db")
    assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == len(recognized)


def test_feedback_and_sigterm_mid_sign(sentences, broker, tmp_path):
    folder, entries = sentences
    video = folder / entries[0]["file"]
    first_end = entries[0]["spans_s"][0][1]
    subscriber = Subscriber(broker.port, "asl/kiosk-test/#")
    process = _run(_config(tmp_path, video, broker.port, loop=True))
    try:
        prediction = None
        deadline = time.monotonic() + 30
        while prediction is None and time.monotonic() < deadline:
            topic, payload, _ = subscriber.messages.get(timeout=30)
            if topic.endswith("/prediction"):
                prediction = payload
        assert prediction is not None
        # Played in real time: the word arrives within 1 s of the end of the sign's motion, plus
        # the inference time (the segmenter needs rest_s of stillness to know the sign ended).
        assert prediction["sign_end_to_publish_ms"] <= 1000 + prediction["latency_ms"]
        subscriber.client.publish(
            "asl/kiosk-test/feedback",
            json.dumps({"prediction_id": prediction["id"], "correct": False, "label": "fine"}),
            qos=1,
        )
        subscriber.client.publish("asl/kiosk-test/feedback", b"{garbage", qos=1)
        acks = []
        while len(acks) < 2:
            topic, payload, _ = subscriber.messages.get(timeout=10)
            if topic.endswith("/feedback/ack"):
                acks.append(payload)
        assert acks[0]["status"] == "stored"
        assert acks[0]["feedback"]["predicted_word"] == prediction["word"]
        assert acks[1]["status"] == "rejected"
        time.sleep(max(0.0, first_end - 1.0))  # somewhere inside a later sign of the looping video
        _terminate_promptly(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # A clean stop says so: the retained status goes offline (no last will needed).
    _wait_for(
        lambda: any(t.endswith("/status") and p["state"] == "offline" for t, p, _ in subscriber.drain()),
        10,
        "the offline status",
    )
    subscriber.close()
    db = sqlite3.connect(tmp_path / "state" / "asl-edge.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM feedback").fetchone()[0] == 1
    assert db.execute("SELECT label FROM feedback").fetchone()[0] == "fine"


def _predictions_stored(db: Path, after_s: float, before_s: float = float("inf")) -> list[str]:
    """Ids of the predictions the daemon stored between two wall-clock times, oldest first."""
    if not db.exists():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT id FROM predictions WHERE created_at > ? AND created_at < ? ORDER BY created_at",
            (after_s, before_s),
        ).fetchall()
    except sqlite3.OperationalError:  # the daemon has not made its tables yet
        return []
    finally:
        connection.close()
    return [row[0] for row in rows]


def _wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_broker_restart_mid_run_delivers_queued_predictions(sentences, tmp_path):
    """The subscriber's session survives the restart (a persistent broker), so whatever the daemon
    sends after it reconnects reaches it: the predictions stored during the outage must be among
    what arrives, in order, and none is dropped."""
    folder, entries = sentences
    broker = Mosquitto(_folder(tmp_path / "mqtt"), persistent=True).start()
    subscriber = Subscriber(broker.port, "asl/kiosk-test/#", session="outage-witness")
    db = tmp_path / "state" / "asl-edge.db"
    process = _run(_config(tmp_path, folder / entries[0]["file"], broker.port, loop=True))
    try:
        _wait_for(lambda: any(t.endswith("/status") for t, _, _ in subscriber.drain()), 30, "online")
        broker.stop()
        down_at = time.time()
        _wait_for(lambda: len(_predictions_stored(db, down_at)) >= 2, 60, "two signs during the outage")
        assert process.poll() is None, "the daemon must survive a broker outage"
        up_at = time.time()
        broker.start()
        during = _predictions_stored(db, down_at, up_at)
        received: list[str] = []
        health: dict = {}

        def all_arrived() -> bool:
            for topic, payload, _ in subscriber.drain():
                if topic.endswith("/prediction"):
                    received.append(payload["id"])
                elif topic.endswith("/health"):
                    health.update(payload)
            return set(during) <= set(received) and health.get("mqtt_connected") is True

        _wait_for(all_arrived, 40, "the outage's predictions")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subscriber.close()
        broker.stop()
    assert [i for i in received if i in during] == during, "queued predictions arrive in order"
    assert len(received) == len(set(received)), "a prediction arrived twice"
    assert health["mqtt_dropped"] == 0


def _words_until(subscriber: Subscriber, words: list[str], count: int) -> None:
    """Drain the predictions' words into ``words`` until it holds ``count`` (all that were stored)."""

    def enough() -> bool:
        words.extend(payload["word"] for _, payload, _ in subscriber.drain())
        return len(words) >= count

    _wait_for(enough, 10, f"{count} predictions over MQTT")


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_failing_camera_is_restarted_and_reported(broker, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[source]\nuri = "v4l2:///dev/video-missing"\n[mqtt]\nport = {broker.port}\n'
        '[device]\nid = "kiosk-test"\n[storage]\nstate_dir = "state"\n[health]\ninterval_s = 0.5\n'
        "[screen]\nport = 0\n",
        encoding="utf-8",
    )
    subscriber = Subscriber(broker.port, "asl/kiosk-test/health")
    process = _run(config)
    try:
        health = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            _, payload, _ = subscriber.messages.get(timeout=20)
            if payload["capture_restarts"] >= 2:
                health = payload
                break
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subscriber.close()
    assert health is not None
    assert health["capture_error"]
    assert health["frames_in"] == 0
    assert health["model"].startswith("demo_i3d-")
    assert health["pending_feedback"] == health["sync_backlog"] == 0
    assert health["backend"] == AUTO_CPU_BACKEND
    assert process.returncode == 0, err[-2000:]


def test_sliding_mode_publishes_stable_words(sentences, broker, tmp_path):
    folder, entries = sentences
    config = _config(tmp_path, folder / entries[0]["file"], broker.port, realtime=False)
    config.write_text(config.read_text() + '[segmenter]\nmode = "sliding"\nwindow_s = 1.6\nstride_s = 0.4\n')
    subscriber = Subscriber(broker.port, "asl/kiosk-test/prediction")
    process = _run(config)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]
    words: list[str] = []
    _words_until(subscriber, words, len(_predictions_stored(tmp_path / "state" / "asl-edge.db", 0.0)))
    subscriber.close()
    expected = entries[0]["words"]
    # Sliding windows straddle sign boundaries, so demand most words, in order, and no flood.
    found = sum(1 for word in expected if word in words)
    assert found >= len(expected) - 1, (expected, words)
    assert len(words) <= 2 * len(expected), (expected, words)


def test_feedback_reaches_the_bucket_while_the_daemon_runs(sentences, broker, tmp_path):
    folder, entries = sentences
    s3 = SeaweedFS(tmp_path / "seaweedfs").start()
    try:
        s3.client().create_bucket(Bucket="fleet")
        config = _config(tmp_path, folder / entries[0]["file"], broker.port, loop=True)
        config.write_text(
            config.read_text() + f'[sync]\nbucket = "fleet"\nendpoint_url = "{s3.endpoint_url}"\n'
            f'credentials_file = "{s3.write_credentials(tmp_path / "s3-credentials")}"\n'
            "interval_s = 1.0\nclips = true\n",
            encoding="utf-8",
        )
        subscriber = Subscriber(broker.port, "asl/kiosk-test/#")
        process = _run(config)
        try:
            prediction, synced, acked = None, None, False
            deadline = time.monotonic() + 40
            while synced is None and time.monotonic() < deadline:
                topic, payload, _ = subscriber.messages.get(timeout=30)
                if topic.endswith("/prediction") and prediction is None:
                    prediction = payload
                    subscriber.client.publish(
                        "asl/kiosk-test/feedback",
                        json.dumps(
                            {
                                "prediction_id": prediction["id"],
                                "correct": False,
                                "label": "-1",
                                "consent": True,
                            }
                        ),
                        qos=1,
                    )
                elif topic.endswith("/feedback/ack"):
                    assert payload["status"] == "stored"
                    acked = True
                elif topic.endswith("/health") and acked and payload["sync_backlog"] == 0:
                    synced = payload
            _terminate_promptly(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            subscriber.close()
        assert synced is not None, "no health message reported the feedback synced"
        assert synced["sync_last_error"] is None
        assert synced["sync_last_success"] > time.time() - 60
        assert 0 < synced["db_mb"] < 1
        assert synced["db_near_budget"] is False
        client = s3.client()
        clip = f"asl-feedback/clips/device=kiosk-test/{prediction['id']}.mp4"
        [key] = [
            item["Key"] for item in client.list_objects_v2(Bucket="fleet")["Contents"] if item["Key"] != clip
        ]
        assert key.startswith("asl-feedback/device=kiosk-test/date=")
        assert client.head_object(Bucket="fleet", Key=clip)["ContentLength"] > 1000
        assert list((tmp_path / "state" / "clips").iterdir()) == []
        body = client.get_object(Bucket="fleet", Key=key)["Body"].read().decode()
        header, row = body.splitlines()[:2]
        assert header.startswith("feedback_id,prediction_id,device_id,")
        assert f"1,{prediction['id']},kiosk-test," in row
        assert ",false,'-1," in row
        [cells] = csv.DictReader(io.StringIO(body))
        assert (cells["model_id"], cells["backend"], cells["clip_key"]) == (
            prediction["model"],
            AUTO_CPU_BACKEND,
            clip,
        )
        # a local bundle, not a release; no rollout, no shadow
        assert (cells["model_version"], cells["shadow_version"], cells["shadow_word"]) == ("", "", "")
    finally:
        s3.stop()
