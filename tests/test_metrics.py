"""Prometheus metrics: the textfile of a running daemon, linted by promtool and parsed back, agrees
with what the daemon published; rendering and faults without a daemon."""

from __future__ import annotations

import json
import math
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from edge import __version__
from edge.runtime.metrics import InferenceHistogram, MetricsSnapshot, MetricsTextfile, render
from tests.services import ROOT, Mosquitto, MqttSubscriber, running_daemon, synthetic_sentence

DEVICE = "kiosk-metrics"
PREFIX = f"asl/{DEVICE}"
PROMTOOL = shutil.which("promtool") or "promtool"  # Debian package prometheus (requirements/apt.txt)


def promtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    with path.open("rb") as metrics:
        return subprocess.run(
            [PROMTOOL, "check", "metrics"], stdin=metrics, capture_output=True, text=True, check=False
        )


def samples(text: str) -> dict[str, float]:
    """Each sample as ``name{label="value",...}`` (labels sorted) -> value."""
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            result[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return result


HEALTH = {
    "frames_in": 900,
    "frames_dropped": 3,
    "predictions": 4,
    "capture_restarts": 1,
    "capture_error": None,
    "mqtt_dropped": 0,
    "mqtt_pending": 2,
    "sync_backlog": 5,
    "sync_last_success": None,
    "db_mb": 0.123,
    "feedback_received": 2,
    "feedback_rejected": 1,
    "model": 'demo "i3d" \\ v1',
    "backend": "onnxruntime",
    "workers": {
        "capture": {"state": "running", "restarts": 1, "last_error": None},
        "sync": {"state": "failing", "restarts": 2, "last_error": "RuntimeError: crash"},
    },
}


def test_render_lints_clean_and_parses_back(tmp_path):
    inference = InferenceHistogram()
    for seconds in (0.01, 0.3, 0.3, 20.0):
        inference.observe(seconds)
    path = tmp_path / "asl-edge.prom"
    path.write_bytes(render(MetricsSnapshot(HEALTH, inference.snapshot(), up=True)))
    checked = promtool_check(path)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked
    values = samples(path.read_text())
    assert values["asl_edge_up"] == 1
    assert values["asl_edge_frames_received_total"] == 900
    assert values["asl_edge_frames_dropped_total"] == 3
    assert values["asl_edge_predictions_total"] == 4
    assert values["asl_edge_capture_restarts_total"] == 1
    assert values["asl_edge_camera_problem"] == 0
    assert values["asl_edge_mqtt_messages_pending"] == 2
    assert values["asl_edge_sync_backlog_rows"] == 5
    assert values["asl_edge_store_size_bytes"] == 123_000
    assert values["asl_edge_feedback_received_total"] == 2
    assert values["asl_edge_feedback_rejected_total"] == 1
    assert values['asl_edge_worker_restarts_total{worker="sync"}'] == 2
    assert values['asl_edge_worker_problem{worker="sync"}'] == 1
    assert values['asl_edge_worker_problem{worker="capture"}'] == 0
    # Never synced: no timestamp at all rather than a misleading 0 (1970).
    assert not any(name.startswith("asl_edge_sync_last_success") for name in values)
    [info] = [f for f in text_string_to_metric_families(path.read_text()) if f.name == "asl_edge_info"]
    assert info.samples[0].labels == {
        "model": HEALTH["model"],
        "backend": "onnxruntime",
        "version": __version__,
    }
    histogram = "asl_edge_inference_duration_seconds"
    assert values[f'{histogram}_bucket{{le="0.025"}}'] == 1
    assert values[f'{histogram}_bucket{{le="0.5"}}'] == 3
    assert values[f'{histogram}_bucket{{le="10.0"}}'] == 3
    assert values[f'{histogram}_bucket{{le="+Inf"}}'] == values[f"{histogram}_count"] == 4
    assert math.isclose(values[f"{histogram}_sum"], 20.61)


def test_the_readmes_alert_rules_pass_promtool(tmp_path):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- prometheus-rules:start -->")[1].split("<!-- prometheus-rules:end -->")[0]
    rules = tmp_path / "asl-edge.rules.yml"
    rules.write_text(block.strip().removeprefix("```yaml").removesuffix("```"), encoding="utf-8")
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0 and "SUCCESS: 3 rules found" in checked.stdout, checked


def test_an_unwritable_textfile_is_a_fault_in_health_until_it_is_fixed(tmp_path):
    folder = tmp_path / "node-exporter"
    folder.write_text("a file where the directory should be", encoding="utf-8")
    textfile = MetricsTextfile(folder / "asl-edge.prom", InferenceHistogram())
    textfile.update(HEALTH)
    assert str(folder / "asl-edge.prom") in str(textfile.health().metrics_error)
    assert textfile.health().worker.state == "failing"
    folder.unlink()
    folder.mkdir()
    textfile.update(HEALTH)
    assert textfile.health().metrics_error is None
    textfile.stop()
    assert [p.name for p in folder.iterdir()] == ["asl-edge.prom"]
    # node_exporter reads it as another user, whatever the service's UMask.
    assert stat.S_IMODE((folder / "asl-edge.prom").stat().st_mode) == 0o644
    assert samples((folder / "asl-edge.prom").read_text())["asl_edge_up"] == 0


def test_a_daemons_textfile_agrees_with_what_it_published(tmp_path):
    video = synthetic_sentence(tmp_path)
    textfile = tmp_path / "node-exporter" / "asl-edge.prom"
    textfile.parent.mkdir()
    broker = Mosquitto(tmp_path).start()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[device]\nid = "{DEVICE}"\n[source]\nuri = "file://{video}"\n'
        f'loop = true\n[mqtt]\nport = {broker.port}\n[storage]\nstate_dir = "state"\n'
        f'[health]\ninterval_s = 0.5\n[metrics]\ntextfile = "{textfile}"\n',
        encoding="utf-8",
    )
    subscriber = MqttSubscriber(broker.port, f"{PREFIX}/#", lambda m: (m.topic, bytes(m.payload)))
    messages: list[tuple[str, bytes]] = []

    def published(suffix: str) -> list[dict]:
        return [json.loads(payload) for topic, payload in messages if topic == f"{PREFIX}/{suffix}"]

    def wait_for(suffix: str, count: int = 1) -> dict:
        while len(published(suffix)) < count:
            messages.append(subscriber.messages.get(timeout=30))
        return published(suffix)[count - 1]

    try:
        # Subscribed before the daemon starts, so every prediction it publishes is counted here.
        assert subscriber.subscribed.wait(10)
        with running_daemon(config) as daemon:
            prediction = wait_for("prediction")
            assert samples(textfile.read_text())["asl_edge_up"] == 1
            feedback = json.dumps({"prediction_id": prediction["id"], "correct": True})
            subscriber.client.publish(f"{PREFIX}/feedback", feedback, qos=1)
            subscriber.client.publish(f"{PREFIX}/feedback", b"{garbage", qos=1)
            wait_for("feedback/ack", 2)
            daemon.send_signal(signal.SIGTERM)
            _, log = daemon.communicate(timeout=20)
            assert daemon.returncode == 0, log[-2000:]
        # The offline status comes after everything else the daemon published.
        while not any(topic == f"{PREFIX}/status" and b"offline" in payload for topic, payload in messages):
            messages.append(subscriber.messages.get(timeout=10))
    finally:
        subscriber.close()
        broker.stop()
    checked = promtool_check(textfile)
    assert checked.returncode == 0 and checked.stdout + checked.stderr == "", checked
    values = samples(textfile.read_text())
    predictions, last_health = published("prediction"), published("health")[-1]
    assert values["asl_edge_up"] == 0
    assert values["asl_edge_predictions_total"] == len(predictions) == last_health["predictions"] >= 1
    assert values["asl_edge_inference_duration_seconds_count"] == len(predictions)
    assert values["asl_edge_frames_received_total"] == last_health["frames_in"] > 0
    assert values["asl_edge_frames_dropped_total"] == last_health["frames_dropped"]
    assert values["asl_edge_mqtt_messages_dropped_total"] == last_health["mqtt_dropped"] == 0
    assert values["asl_edge_feedback_received_total"] == last_health["feedback_received"] == 2
    assert values["asl_edge_feedback_rejected_total"] == last_health["feedback_rejected"] == 1
    assert [ack["status"] for ack in published("feedback/ack")] == ["stored", "rejected"]
