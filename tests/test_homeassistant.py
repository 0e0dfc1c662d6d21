"""Home Assistant discovery against a real Mosquitto and a running daemon: the retained config,
every template rendered with Jinja2 on the daemon's real messages, availability through the last
will, rediscovery when Home Assistant comes online, and removal."""

from __future__ import annotations

import contextlib
import json
import queue
import re
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from asl_edge.cli import main
from edge.core.config import parse_config
from edge.core.utc import utc_iso
from edge.runtime.homeassistant import discovery_payload, object_id
from tests.services import Mosquitto, MqttSubscriber, running_daemon, synthetic_sentence

DEVICE = "lobby.kiosk_1"
PREFIX = f"asl/{DEVICE}"
CONFIG_TOPIC = f"homeassistant/device/{object_id(DEVICE)}/config"
# Home Assistant renders templates in a sandboxed Jinja2 environment; strict undefined makes a
# template that reads a field the message lacks fail here instead of rendering empty there.
JINJA = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)


def render(template: str, payload: bytes) -> str:
    """As Home Assistant does: ``value`` is the payload text, ``value_json`` its JSON when it
    parses (and absent when it does not)."""
    variables: dict[str, object] = {"value": payload.decode("utf-8")}
    with contextlib.suppress(ValueError):
        variables["value_json"] = json.loads(payload)
    return JINJA.from_string(template).render(variables).strip()


class Recorder(MqttSubscriber):
    """Every message under ``#`` as (topic, payload bytes, retain flag), in arrival order."""

    def __init__(self, port: int) -> None:
        super().__init__(port, "#", lambda m: (m.topic, bytes(m.payload), m.retain))
        self.seen: list[tuple[str, bytes, bool]] = []

    def wait_for(self, predicate, start: int = 0, timeout_s: float = 30.0) -> int:
        """The index of the first message from ``start`` on that ``predicate(topic, payload,
        retain)`` accepts, waiting for it to arrive."""
        deadline = time.monotonic() + timeout_s
        index = start
        while True:
            while index < len(self.seen):
                if predicate(*self.seen[index]):
                    return index
                index += 1
            try:
                self.seen.append(self.messages.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no such message within {timeout_s} s") from None

    def last(self, topic: str) -> bytes:
        return next(payload for t, payload, _ in reversed(self.seen) if t == topic)


def test_object_ids_are_valid_and_never_shared_by_two_devices():
    ids = ["kiosk-1", "kiosk.1", "kiosk_1", "kiosk__1", "kiosk_d1", "kiosk._1", "kiosk_.1", "a.b.c", "a_d_b"]
    object_ids = [object_id(device) for device in ids]
    assert len(set(object_ids)) == len(ids)
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]+", oid) for oid in object_ids)
    assert object_id("kiosk-1") == "kiosk-1"


def test_the_payload_follows_the_config():
    config, problems = parse_config(
        {"device": {"id": "k.2"}, "mqtt": {"topic_prefix": "site/7"}, "homeassistant": {"enabled": True}}
    )
    assert problems == []
    payload = discovery_payload(config)
    assert payload["availability"][0]["topic"] == "site/7/status"
    assert {c["state_topic"] for c in payload["cmps"].values()} == {"site/7/prediction", "site/7/health"}
    assert all(c["unique_id"].startswith("asl_edge_k_d2_") for c in payload["cmps"].values())


def test_health_templates_render_a_sync_time_and_a_camera_error():
    """What the daemon's run in this module cannot show: a finished sync pass and a broken camera."""
    components = discovery_payload(parse_config({})[0])["cmps"]
    health = json.dumps(
        {
            "sync_last_success_utc": utc_iso(1795000000.5, zulu=False),
            "capture_error": "Could not open device",
            "capture_restarts": 3,
        }
    ).encode()
    last_sync = render(components["last_sync"]["value_template"], health)
    assert datetime.fromisoformat(last_sync) == datetime.fromtimestamp(1795000000, timezone.utc)
    assert render(components["camera_problem"]["value_template"], health) == "ON"
    attributes = render(components["camera_problem"]["json_attributes_template"], health)
    assert json.loads(attributes) == {"error": "Could not open device", "restarts": 3}


@pytest.mark.parametrize("prefix", ["", "/ha", "ha/", "ha/#", "ha/+/x"])
def test_a_discovery_prefix_that_is_no_topic_is_refused(prefix):
    _, problems = parse_config({"homeassistant": {"discovery_prefix": prefix}})
    assert [p.split(":")[0] for p in problems] == ["homeassistant.discovery_prefix"]


def test_remove_if_enabled_does_nothing_when_discovery_is_off(tmp_path, capsys):
    config = tmp_path / "config.toml"
    config.write_text("[mqtt]\nport = 1\n", encoding="utf-8")  # nothing listens there
    assert main(["homeassistant", "remove", "--config", str(config), "--if-enabled"]) == 0
    assert "nothing to remove" in capsys.readouterr().out
    assert main(["homeassistant", "remove", "--config", str(config), "--timeout-s", "2"]) == 1
    assert "cannot reach the MQTT broker 127.0.0.1:1" in capsys.readouterr().err


def _write_config(folder: Path, port: int, video: Path) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f'[device]\nid = "{DEVICE}"\n[source]\nuri = "file://{video}"\nloop = true\n'
        f'[mqtt]\nport = {port}\n[storage]\nstate_dir = "state"\n[health]\ninterval_s = 0.5\n'
        "[homeassistant]\nenabled = true\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory):
    """A broker, a recorder of everything on it, and a daemon with discovery on, looping a
    synthetic sentence in real time."""
    folder = tmp_path_factory.mktemp("homeassistant")
    broker = Mosquitto(folder).start()
    recorder = Recorder(broker.port)
    assert recorder.subscribed.wait(10)
    config = _write_config(folder, broker.port, synthetic_sentence(folder))
    try:
        with running_daemon(config) as daemon:
            yield broker, recorder, config, daemon
    finally:
        recorder.close()
        broker.stop()


def _config_message(recorder: Recorder, start: int = 0) -> int:
    return recorder.wait_for(lambda topic, payload, _: topic == CONFIG_TOPIC and payload != b"", start)


def _retained(port: int, topic: str, wait_s: float) -> list[tuple[bytes, bool]]:
    """What a new subscriber to ``topic`` receives within ``wait_s`` (retained messages first)."""
    subscriber = MqttSubscriber(port, topic, lambda m: (bytes(m.payload), m.retain))
    time.sleep(wait_s)
    subscriber.close()
    return list(subscriber.messages.queue)


def test_the_retained_config_describes_the_kiosk(kiosk):
    broker, recorder, _, _ = kiosk
    sent = recorder.seen[_config_message(recorder)][1]
    [(payload, retained)] = _retained(broker.port, "homeassistant/device/+/config", 0.5)
    assert retained and payload == sent
    config = json.loads(payload)
    # Home Assistant's topic rule, and the keys its device schema allows at the top level.
    assert re.fullmatch(r"homeassistant/device/[a-zA-Z0-9_-]+/config", CONFIG_TOPIC)
    assert set(config) == {"dev", "o", "availability", "qos", "cmps"}
    assert config["o"]["name"] == "asl-edge" and config["dev"]["ids"]
    assert config["availability"][0]["topic"] == f"{PREFIX}/status"
    components = config["cmps"]
    assert {"last_word", "confidence", "camera_problem", "fps", "inference_p95"} <= set(components)
    assert {"feedback_backlog", "last_sync", "model"} <= set(components)
    unique_ids = [component["unique_id"] for component in components.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    for key, component in components.items():
        assert re.fullmatch(r"[a-zA-Z0-9_-]+", key)
        assert component["p"] in ("sensor", "binary_sensor")
        assert component["state_topic"] in (f"{PREFIX}/prediction", f"{PREFIX}/health")
    assert components["last_word"]["state_topic"] == f"{PREFIX}/prediction"
    assert components["camera_problem"]["device_class"] == "problem"
    assert components["camera_problem"]["entity_category"] == "diagnostic"


def test_every_template_renders_on_the_daemons_messages(kiosk):
    _, recorder, _, _ = kiosk
    components = json.loads(recorder.seen[_config_message(recorder)][1])["cmps"]
    after = recorder.wait_for(lambda topic, *_: topic == f"{PREFIX}/prediction")
    recorder.wait_for(lambda topic, *_: topic == f"{PREFIX}/health", after)
    prediction = json.loads(recorder.last(f"{PREFIX}/prediction"))
    health = json.loads(recorder.last(f"{PREFIX}/health"))
    state = {
        key: render(component["value_template"], recorder.last(component["state_topic"]))
        for key, component in components.items()
    }
    attributes = {
        key: json.loads(
            render(component["json_attributes_template"], recorder.last(component["json_attributes_topic"]))
        )
        for key, component in components.items()
        if "json_attributes_template" in component
    }
    assert state["last_word"] == prediction["word"]
    assert attributes["last_word"] == {
        "confidence": prediction["confidence"],
        "top_k": prediction["top_k"],
        "prediction_id": prediction["id"],
    }
    assert float(state["confidence"]) == pytest.approx(100 * prediction["confidence"], abs=0.05)
    assert state["camera_problem"] == "OFF" and attributes["camera_problem"]["restarts"] == 0
    assert float(state["fps"]) == health["fps_in"] > 0
    assert float(state["inference_p95"]) == health["inference_ms_p95"] > 0
    assert state["feedback_backlog"] == "0"
    # Sync is off: Home Assistant shows the timestamp sensor as unknown for "None".
    assert state["last_sync"] == "None"
    assert state["model"] == health["model"] and attributes["model"]["backend"] == health["backend"]
    availability = json.loads(recorder.seen[_config_message(recorder)][1])["availability"][0]
    assert render(availability["value_template"], recorder.last(f"{PREFIX}/status")) == "online"


def test_homeassistant_coming_online_gets_the_config_again(kiosk):
    _, recorder, _, _ = kiosk
    first = _config_message(recorder)
    recorder.client.publish("homeassistant/status", b"online", qos=1)
    again = _config_message(recorder, first + 1)
    assert recorder.seen[again][1] == recorder.seen[first][1]


def test_a_killed_daemon_turns_unavailable_and_remove_deletes_the_device(kiosk, capsys):
    broker, recorder, config, daemon = kiosk
    components = json.loads(recorder.seen[_config_message(recorder)][1])
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=10)
    offline = recorder.wait_for(
        lambda topic, payload, _: topic == f"{PREFIX}/status" and json.loads(payload)["state"] == "offline"
    )
    availability = components["availability"][0]
    assert render(availability["value_template"], recorder.seen[offline][1]) == "offline"
    assert main(["homeassistant", "remove", "--config", str(config)]) == 0
    assert CONFIG_TOPIC in capsys.readouterr().out
    recorder.wait_for(lambda topic, payload, _: topic == CONFIG_TOPIC and payload == b"")
    assert _retained(broker.port, "homeassistant/#", 0.5) == []
