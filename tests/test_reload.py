"""Model reload on SIGHUP in a running daemon (real Mosquitto, GStreamer test source): a new bundle
is swapped in between frames, a broken one leaves the old model running and is reported."""

import json
import re
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from edge.core.bundle import DEMO_BUNDLE, MODEL_FILE, sha256_of, update_manifest
from tests.services import Mosquitto, MqttSubscriber, running_daemon


@pytest.fixture
def broker(tmp_path):
    service = Mosquitto(tmp_path).start()
    yield service
    service.stop()


class Messages(MqttSubscriber):
    """Every message under the kiosk's prefix, decoded, in arrival order."""

    def __init__(self, port: int, prefix: str) -> None:
        super().__init__(port, f"{prefix}/#", lambda m: (m.topic.rsplit("/", 1)[1], json.loads(m.payload)))

    def next(self, kind: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            topic, payload = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if topic == kind:
                return payload

    def next_prediction_of(self, model: str, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            payload = self.next("prediction", max(0.01, deadline - time.monotonic()))
            if payload["model"] == model:
                return payload


@pytest.fixture
def messages(broker):
    subscriber = Messages(broker.port, "asl/kiosk-reload")
    yield subscriber
    subscriber.close()


def _write_config(
    path: Path, port: int, bundle: str, health_interval_s: float = 60.0, watch_s: float = 0.0
) -> None:
    # A long health interval: after the first one, each health message is a reload's report.
    path.write_text(
        f'[device]\nid = "kiosk-reload"\n[model]\nbundle = "{bundle}"\nwatch_s = {watch_s}\n'
        f'[source]\nuri = "test://"\nfps = 15\n[segmenter]\nmax_sign_s = 1.0\n[mqtt]\nport = {port}\n'
        f'[storage]\nstate_dir = "state"\n[health]\ninterval_s = {health_interval_s}\n[screen]\nport = 0\n',
        encoding="utf-8",
    )


def _nan_logits_bundle(target: Path) -> Path:
    """The demo model with its logits multiplied by NaN: it loads, and only a smoke inference can
    tell (as an engine that overflows in FP16 would)."""
    import onnx

    bundle = shutil.copytree(DEMO_BUNDLE, target)
    model = onnx.load(bundle / MODEL_FILE)
    model.graph.node[-1].output[0] = "raw_logits"
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(np.nan, np.float32), "nan"))
    model.graph.node.append(onnx.helper.make_node("Mul", ["raw_logits", "nan"], ["logits"]))
    onnx.save(model, bundle / MODEL_FILE)
    # Its INT8 models are the demo's own, which OpenVINO's auto would run instead: not this one's.
    for name in ("model.int8.onnx", "model.openvino.int8.xml", "model.openvino.int8.bin"):
        (bundle / name).unlink()
    update_manifest(bundle, {MODEL_FILE: sha256_of(bundle / MODEL_FILE)}, {})
    return bundle


def _manifest_id(bundle: Path) -> str:
    return json.loads((bundle / "manifest.json").read_text())["model_id"]


def test_sighup_swaps_the_model_and_keeps_the_old_one_when_the_new_one_is_broken(
    broker, messages, tmp_path, tiny_bundle
):
    demo_id, tiny_id = _manifest_id(DEMO_BUNDLE), _manifest_id(tiny_bundle)
    current = shutil.copytree(DEMO_BUNDLE, tmp_path / "current")
    checksum_mismatch = shutil.copytree(DEMO_BUNDLE, tmp_path / "checksum-mismatch")
    with open(checksum_mismatch / MODEL_FILE, "r+b") as model:
        model.seek(-64, 2)
        model.write(b"\0" * 64)
    unloadable = shutil.copytree(DEMO_BUNDLE, tmp_path / "unloadable")
    # Every model file of the bundle (OpenVINO's auto runs its INT8 model, not model.onnx).
    for name in (MODEL_FILE, "model.openvino.int8.xml"):
        (unloadable / name).write_bytes(b"not a model")
        update_manifest(unloadable, {name: sha256_of(unloadable / name)}, {})
    _nan_logits_bundle(tmp_path / "nan-logits")
    cropped = shutil.copytree(DEMO_BUNDLE, tmp_path / "cropped")
    update_manifest(
        cropped,
        {},
        {"preprocessing": {"resize_short_side": 256, "crop_size": 224, "roi": [0.1, 0.1, 0.8, 0.8]}},
    )

    config = tmp_path / "config.toml"
    _write_config(config, broker.port, "current")
    with running_daemon(config) as daemon:

        def reload(bundle: str, **config_changes: float) -> dict:
            _write_config(config, broker.port, bundle, **config_changes)
            daemon.send_signal(signal.SIGHUP)
            return messages.next("health")

        first = messages.next("health")
        assert (first["model"], first["model_reload_error"]) == (demo_id, None)

        # The bundle's files change in place (a re-converted model, T=32 -> T=16, 12 -> 10 classes).
        shutil.rmtree(current)
        shutil.copytree(tiny_bundle, current)
        health = reload("current")
        assert (health["model"], health["model_reload_error"]) == (tiny_id, None)
        assert messages.next_prediction_of(tiny_id)["word"] in [f"gloss{i}" for i in range(10)] + ["unknown"]

        health = reload("missing")
        assert health["model"] == tiny_id
        assert "bundle directory not found" in health["model_reload_error"]
        health = reload("checksum-mismatch")
        assert health["model"] == tiny_id
        assert "does not match the manifest" in health["model_reload_error"]
        health = reload("unloadable")
        assert health["model"] == tiny_id
        assert re.search("ONNX Runtime cannot load|OpenVINO cannot read", health["model_reload_error"])
        health = reload("nan-logits")
        assert health["model"] == tiny_id
        assert health["model_reload_error"] == "smoke inference: the logits are not all finite"
        config.write_text("[model\n", encoding="utf-8")
        daemon.send_signal(signal.SIGHUP)
        health = messages.next("health")
        assert health["model"] == tiny_id
        assert "invalid TOML" in health["model_reload_error"]
        assert messages.next_prediction_of(tiny_id), "the old model keeps recognizing"

        # Another directory with another crop geometry; [health] is not half-applied.
        health = reload("cropped", health_interval_s=0.5)
        assert (health["model"], health["model_reload_error"]) == (demo_id, None)
        assert messages.next_prediction_of(demo_id)["model"] == demo_id
        assert daemon.poll() is None, "a reload never stops the daemon"
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=15)
    assert daemon.returncode == 0, err[-2000:]
    assert "[health] changed; only [model] is reloaded" in err
    assert err.count("reload failed, keeping") == 5


def test_a_bundle_replaced_on_disk_or_a_re_pointed_config_reloads_without_a_signal(
    broker, messages, tmp_path, tiny_bundle
):
    demo_id, tiny_id = _manifest_id(DEMO_BUNDLE), _manifest_id(tiny_bundle)
    current = shutil.copytree(DEMO_BUNDLE, tmp_path / "current")
    shutil.copytree(DEMO_BUNDLE, tmp_path / "other")
    config = tmp_path / "config.toml"
    _write_config(config, broker.port, "current", watch_s=0.2)
    with running_daemon(config) as daemon:
        assert messages.next("health")["model"] == demo_id
        shutil.rmtree(current)
        shutil.copytree(tiny_bundle, current)
        health = messages.next("health")
        assert (health["model"], health["model_reload_error"]) == (tiny_id, None)
        _write_config(config, broker.port, "other", watch_s=0.2)
        health = messages.next("health")
        assert (health["model"], health["model_reload_error"]) == (demo_id, None)
        time.sleep(1.0)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=15)
    assert daemon.returncode == 0, err[-2000:]
    assert err.count("changed on disk") == 2, "each change reloads once, and a settled one never again"


def test_the_daemon_starts_on_the_bundle_preflight_loaded(tmp_path):
    """``run`` reads and hashes the bundle once: preflight's copy is the one the model runs."""
    from edge.runtime.model import first_model
    from edge.runtime.preflight import load_checked

    config = tmp_path / "config.toml"
    config.write_text(
        f'[model]\nbundle = "{DEMO_BUNDLE}"\n[storage]\nstate_dir = "state"\n', encoding="utf-8"
    )
    checked = load_checked(config)
    assert checked.bundle is not None
    startup = first_model(checked.config, checked.bundle)
    try:
        assert startup.model.bundle is checked.bundle
        assert (startup.model.version, startup.error) == ("", None)
    finally:
        startup.model.backend.close()
