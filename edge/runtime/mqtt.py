"""The daemon's MQTT link (paho-mqtt 2.x): status, predictions out, feedback in.

Topics under ``<prefix>`` (``asl/<device id>`` by default): ``status`` retained, ``online`` on
connect and ``offline`` as the last will, so dashboards see a dead kiosk; ``prediction`` at QoS 1;
``health``; ``feedback`` in; ``feedback/ack`` out. paho's network thread reconnects with
exponential backoff. Messages published while the broker is away wait in a bounded queue and go
out, in order, on reconnect; when the queue is full the oldest is dropped and counted, never lost
silently.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.core.config import Config
from edge.core.credentials import systemd_credential
from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

# The version of every JSON message asl-edge sends or accepts on MQTT (its "schema" field).
MESSAGE_SCHEMA = 1
PASSWORD_CREDENTIAL = "mqtt-password"


class MqttError(AslEdgeError):
    """The MQTT settings cannot be used (unreadable password or TLS files)."""


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "asl/dev-local"
    client_id: str = ""
    qos: int = 1
    keepalive_s: int = 30
    username: str = ""
    password_file: str = ""
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    queue_limit: int = 1000
    reconnect_s: tuple[int, int] = (1, 60)


@dataclass
class MqttStats:
    dropped: int = 0
    connects: int = 0
    connected: bool = False


@dataclass(frozen=True)
class Outgoing:
    suffix: str
    payload: bytes
    qos: int
    retain: bool


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps({"schema": MESSAGE_SCHEMA, **payload}, ensure_ascii=False).encode("utf-8")


def mqtt_settings(config: Config) -> MqttSettings:
    """The config's [mqtt] section, with the device-derived defaults filled in."""
    device = config.device.id
    return MqttSettings(
        **{
            **dataclasses.asdict(config.mqtt),
            "topic_prefix": config.mqtt.topic_prefix or f"asl/{device}",
            "client_id": config.mqtt.client_id or f"asl-edge-{device}",
        }
    )


def password_path(settings: MqttSettings) -> Path | None:
    """Where the password is: ``password_file``, else the systemd credential ``mqtt-password``
    (``LoadCredential=mqtt-password:...`` puts it in ``$CREDENTIALS_DIRECTORY``), else none."""
    if settings.password_file:
        return Path(settings.password_file)
    return systemd_credential(PASSWORD_CREDENTIAL)


def new_client(settings: MqttSettings, client_id: str) -> mqtt.Client:
    """A paho client with the settings' credentials and TLS; the daemon and ``asl-edge status``
    both connect through it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    if settings.username:
        password = None
        path = password_path(settings)
        if path is not None:
            try:
                password = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise MqttError(f"mqtt.password_file: cannot read {path}: {exc}") from exc
        client.username_pw_set(settings.username, password)
    if settings.tls_ca or settings.tls_cert:
        try:
            client.tls_set(
                ca_certs=settings.tls_ca or None,
                certfile=settings.tls_cert or None,
                keyfile=settings.tls_key or None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise MqttError(f"mqtt TLS files cannot be used: {exc}") from exc
    return client


class MqttLink:
    """One connection; ``on_feedback(payload)`` runs on paho's thread for each feedback message."""

    def __init__(self, settings: MqttSettings, on_feedback: Callable[[bytes], None] | None = None) -> None:
        self.settings = settings
        self.stats = MqttStats()
        self._on_feedback = on_feedback
        self._connect_hooks: list[Callable[[], None]] = []
        self._handlers: dict[str, tuple[Callable[[bytes], None], int]] = {}
        self._pending: collections.deque[Outgoing] = collections.deque()
        self._lock = threading.Lock()
        self._client = new_client(settings, settings.client_id)
        self._client.reconnect_delay_set(*settings.reconnect_s)
        self._client.will_set(self.topic("status"), encode({"state": "offline"}), qos=1, retain=True)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._message

    def set_feedback_handler(self, handler: Callable[[bytes], None]) -> None:
        self._on_feedback = handler

    def add_connect_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` after every successful connect (on paho's network thread, after the
        status and before queued messages go out); register before ``start``."""
        self._connect_hooks.append(hook)

    def subscribe(self, topic: str, handler: Callable[[bytes], None], qos: int = 1) -> None:
        """Call ``handler(payload)`` on paho's thread for each message on ``topic`` (an absolute
        topic, wildcards allowed), subscribed again on every connect; register before ``start``."""
        self._handlers[topic] = (handler, qos)

    def publish_raw(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Hand ``payload`` as it is to paho for an absolute ``topic``, only while connected: never
        queued, for messages a connect hook sends again anyway. False when it did not go out."""
        if not self.stats.connected:
            return False
        return self._client.publish(topic, payload, qos, retain).rc == mqtt.MQTT_ERR_SUCCESS

    def topic(self, suffix: str) -> str:
        return f"{self.settings.topic_prefix}/{suffix}"

    def start(self) -> None:
        """Connect in the background; the link keeps retrying until ``stop``."""
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s)
        self._client.loop_start()

    def _connected(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("mqtt: connection refused: %s", reason)
            return
        self.stats.connects += 1
        self.stats.connected = True
        log.info("mqtt: connected to %s:%d", self.settings.host, self.settings.port)
        client.subscribe(self.topic("feedback"), qos=1)
        for topic, (_, qos) in self._handlers.items():
            client.subscribe(topic, qos=qos)
        client.publish(self.topic("status"), encode({"state": "online"}), qos=1, retain=True)
        for hook in self._connect_hooks:
            try:
                hook()
            except Exception:  # a hook's bug must not kill paho's network thread
                log.exception("mqtt: connect hook failed")
        self._flush()

    def _disconnected(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self.stats.connected = False
        if reason.is_failure:
            log.warning("mqtt: disconnected (%s); reconnecting with backoff", reason)
        else:
            log.info("mqtt: disconnected")

    def _message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topic("feedback") and self._on_feedback is not None:
            try:
                self._on_feedback(bytes(message.payload))
            except Exception:  # a handler bug must not kill paho's network thread
                log.exception("mqtt: feedback handler failed")
            return
        for topic, (handler, _) in self._handlers.items():
            if mqtt.topic_matches_sub(topic, message.topic):
                try:
                    handler(bytes(message.payload))
                except Exception:  # a handler bug must not kill paho's network thread
                    log.exception("mqtt: handler for %s failed", topic)

    def publish(
        self, suffix: str, payload: dict[str, Any], qos: int | None = None, retain: bool = False
    ) -> None:
        """Send in order when connected, else queue (bounded: the oldest is dropped and counted)."""
        outgoing = Outgoing(suffix, encode(payload), self.settings.qos if qos is None else qos, retain)
        with self._lock:
            if len(self._pending) >= self.settings.queue_limit:
                self._pending.popleft()
                self.stats.dropped += 1
            self._pending.append(outgoing)
            if self.stats.connected:
                self._flush_locked()

    def _flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        while self._pending:
            outgoing = self._pending[0]
            info = self._client.publish(
                self.topic(outgoing.suffix), outgoing.payload, outgoing.qos, outgoing.retain
            )
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return
            self._pending.popleft()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def stop(self, timeout_s: float = 3.0) -> None:
        """Say ``offline`` (retained), let in-flight messages go, disconnect."""
        if self.stats.connected:
            info = self._client.publish(
                self.topic("status"), encode({"state": "offline"}), qos=1, retain=True
            )
            info.wait_for_publish(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
