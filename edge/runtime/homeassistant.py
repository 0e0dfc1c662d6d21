"""Home Assistant MQTT discovery: the kiosk appears in Home Assistant as one device.

One retained device-based discovery message (``<discovery_prefix>/device/<object id>/config`` with
``dev``, ``o`` and ``cmps``) describes every entity; each entity reads a topic the daemon already
publishes (``prediction``, ``health``) through a ``value_template``, and availability follows the
retained ``status`` topic and its last will. The message goes out on every connect and again when
Home Assistant announces itself (``<discovery_prefix>/status`` = ``online``), as Home Assistant's
MQTT documentation asks. An empty retained message on the same topic removes the device
(``asl-edge homeassistant remove``).

Templates use plain Jinja2 and ``value_json`` only (no Home Assistant filters), so a test renders
them exactly as Home Assistant would against the daemon's real messages.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from edge import __version__
from edge.core.config import Config
from edge.core.errors import AslEdgeError
from edge.runtime.mqtt import MqttLink, mqtt_settings, new_client

log = logging.getLogger(__name__)

HOMEASSISTANT_ONLINE = b"online"


class HomeAssistantError(AslEdgeError):
    """The broker could not be reached or did not confirm a discovery message."""


def object_id(device_id: str) -> str:
    """The device id as a discovery object id, which may hold only ``[a-zA-Z0-9_-]``.

    ``_`` is the escape character (``__`` for ``_``, ``_d`` for ``.``), so two device ids never
    share a discovery topic: ``kiosk.1`` and ``kiosk_1`` become ``kiosk_d1`` and ``kiosk__1``.
    """
    return "".join("__" if c == "_" else "_d" if c == "." else c for c in device_id)


def discovery_topic(discovery_prefix: str, device_id: str) -> str:
    return f"{discovery_prefix}/device/{object_id(device_id)}/config"


@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity fed by one of the daemon's topics (``topic`` is the suffix under
    the kiosk's prefix); ``attributes_template`` renders a JSON object of extra attributes from
    the same message. Keys never start with ``d`` or ``_``, so ``<object id>_<key>`` stays unique."""

    key: str
    platform: str
    name: str
    topic: str
    value_template: str
    attributes_template: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


ENTITIES = (
    Entity(
        "last_word",
        "sensor",
        "Last word",
        "prediction",
        "{{ value_json.word }}",
        "{{ {'confidence': value_json.confidence, 'top_k': value_json.top_k, "
        "'prediction_id': value_json.id} | tojson }}",
        {"icon": "mdi:hand-wave"},
    ),
    Entity(
        "confidence",
        "sensor",
        "Confidence",
        "prediction",
        "{{ (value_json.confidence * 100) | round(1) }}",
        options={"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:percent"},
    ),
    Entity(
        "camera_problem",
        "binary_sensor",
        "Camera problem",
        "health",
        "{{ 'ON' if value_json.capture_error else 'OFF' }}",
        "{{ {'error': value_json.capture_error, 'restarts': value_json.capture_restarts} | tojson }}",
        {"device_class": "problem", "entity_category": "diagnostic"},
    ),
    Entity(
        "fps",
        "sensor",
        "Frames per second",
        "health",
        "{{ value_json.fps_in }}",
        options={"unit_of_measurement": "fps", "state_class": "measurement", "icon": "mdi:camera"},
    ),
    Entity(
        "inference_p95",
        "sensor",
        "Inference latency p95",
        "health",
        "{{ value_json.inference_ms_p95 }}",
        options={"unit_of_measurement": "ms", "device_class": "duration", "state_class": "measurement"},
    ),
    Entity(
        "feedback_backlog",
        "sensor",
        "Feedback backlog",
        "health",
        "{{ value_json.sync_backlog }}",
        options={"state_class": "measurement", "icon": "mdi:tray-full"},
    ),
    Entity(
        "last_sync",
        "sensor",
        "Last sync",
        "health",
        "{{ value_json.sync_last_success_utc }}",
        options={"device_class": "timestamp"},
    ),
    Entity(
        "model",
        "sensor",
        "Active model",
        "health",
        "{{ value_json.model }}",
        "{{ {'backend': value_json.backend, 'reload_error': value_json.model_reload_error} | tojson }}",
        {"entity_category": "diagnostic", "icon": "mdi:brain"},
    ),
)


def discovery_payload(config: Config) -> dict[str, Any]:
    """The device discovery message: the device, its origin, availability and every entity."""
    prefix = mqtt_settings(config).topic_prefix
    device_id = config.device.id
    node = f"asl_edge_{object_id(device_id)}"

    def component(entity: Entity) -> dict[str, Any]:
        topic = f"{prefix}/{entity.topic}"
        attributes = (
            {"json_attributes_topic": topic, "json_attributes_template": entity.attributes_template}
            if entity.attributes_template
            else {}
        )
        return {
            "p": entity.platform,
            "name": entity.name,
            "unique_id": f"{node}_{entity.key}",
            "state_topic": topic,
            "value_template": entity.value_template,
            **attributes,
            **entity.options,
        }

    return {
        "dev": {
            "ids": [node],
            "name": f"ASL kiosk {device_id}",
            "mf": "asl-edge",
            "mdl": "ASL word recognition kiosk",
            "sw": __version__,
        },
        "o": {"name": "asl-edge", "sw": __version__},
        "availability": [
            {
                "topic": f"{prefix}/status",
                "value_template": "{{ value_json.state }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "qos": 1,
        "cmps": {entity.key: component(entity) for entity in ENTITIES},
    }


class DiscoveryPublisher:
    """Worker that keeps the kiosk discovered: the retained config on every connect of ``link``
    and whenever Home Assistant says ``online`` on ``<discovery_prefix>/status`` (both run on
    the MQTT network thread and only hand a message to paho)."""

    def __init__(self, config: Config, link: MqttLink) -> None:
        settings = config.homeassistant
        self.link = link
        self.topic = discovery_topic(settings.discovery_prefix, config.device.id)
        self.status_topic = f"{settings.discovery_prefix}/status"
        self.payload = json.dumps(discovery_payload(config), ensure_ascii=False).encode("utf-8")

    def start(self) -> None:
        """Register with the link; call before ``link.start()`` so the first connect publishes."""
        self.link.add_connect_hook(self.publish)
        self.link.subscribe(self.status_topic, self._homeassistant_status)

    def publish(self) -> None:
        if self.link.publish_raw(self.topic, self.payload, qos=1, retain=True):
            log.info("homeassistant: discovery published on %s", self.topic)
        else:
            log.warning(
                "homeassistant: discovery on %s not sent; it goes out on the next connect", self.topic
            )

    def _homeassistant_status(self, payload: bytes) -> None:
        if payload.strip() == HOMEASSISTANT_ONLINE:
            self.publish()


def remove_device(config: Config, timeout_s: float = 10.0) -> str:
    """Remove the kiosk from Home Assistant: an empty retained message on its discovery topic
    deletes the device and its entities there, and the retained config on the broker. Returns the
    topic. Stop the daemon first, or its next connect announces the kiosk again."""
    settings = mqtt_settings(config)
    topic = discovery_topic(config.homeassistant.discovery_prefix, config.device.id)
    broker = f"{settings.host}:{settings.port}"
    # Its own client id: the daemon's would take over (and cut) a running daemon's session.
    client = new_client(settings, f"{settings.client_id}-remove")
    answered = threading.Event()
    refusal: list[str] = []

    def connected(_client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            refusal.append(str(reason))
        answered.set()

    client.on_connect = connected
    try:
        client.connect(settings.host, settings.port, settings.keepalive_s)
    except OSError as exc:
        raise HomeAssistantError(f"cannot reach the MQTT broker {broker}: {exc}") from exc
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise HomeAssistantError(f"the MQTT broker {broker} did not answer within {timeout_s:g} s")
        if refusal:
            raise HomeAssistantError(f"the MQTT broker {broker} refused the connection: {refusal[0]}")
        info = client.publish(topic, b"", qos=1, retain=True)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise HomeAssistantError(f"the removal on {topic} was not sent: {exc}") from exc
        if not info.is_published():
            raise HomeAssistantError(
                f"the MQTT broker {broker} did not confirm the removal within {timeout_s:g} s"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    return topic
