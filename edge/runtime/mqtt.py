"""The daemon's MQTT link (paho-mqtt 2.x): status, predictions out, feedback and other subscriptions in.

Topics under ``<prefix>`` (``asl/<device id>`` by default): ``status`` retained, ``online`` on
connect and ``offline`` as the last will, so dashboards see a dead kiosk; ``prediction`` at QoS 1;
``health``; ``feedback`` in; ``feedback/ack`` out.

The connection is kept by the link's own thread, not paho's reconnect loop, because paho swallows
the reason a connection attempt failed: this thread sees it (a certificate from another CA, a host
name the certificate does not name, a refused client certificate, a refused login), puts it in
``health()`` and logs it once per change. Retries back off up to ``reconnect_s`` and start small
again once a connection has held for a while.

One bounded queue holds every message until the broker has it. Paho is handed at most
``INFLIGHT`` messages at a time, from one sender thread; a message leaves the queue only when paho
reports it delivered (at QoS 1, the broker's PUBACK); on a reconnect the ones paho had not
delivered are taken back from paho (``drop_out_messages``) to the front of the queue, so paho never
keeps a second, unbounded queue and nothing is sent twice by the link. When the queue is full the
oldest message is dropped and counted. Periodic messages (health) are never queued while the
broker is away: the next one replaces them, so they never take the place of a prediction.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import queue
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.core.config import Config, MqttConfig
from edge.core.credentials import systemd_credential
from edge.core.errors import AslEdgeError
from edge.runtime.health_schema import MqttHealth, WorkerHealth
from edge.runtime.worker import Backoff

log = logging.getLogger(__name__)

# The version of every JSON message asl-edge sends or accepts on MQTT (its "schema" field).
MESSAGE_SCHEMA = 1
PASSWORD_CREDENTIAL = "mqtt-password"
INFLIGHT = 20  # messages handed to paho at once; paho's own default window
RECONNECT_S = (1.0, 30.0)  # the first and the longest wait between connection attempts
HEALTHY_S = 10.0  # a connection that held this long makes the next outage's retries start small
STOP_DRAIN_S = 3.0
# OpenSSL's reasons, as a person would say them.
TLS_REASONS = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": (
        "the broker requires a client certificate: set [mqtt] tls_cert and tls_key"
    ),
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused the client certificate ([mqtt] tls_cert)",
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust the CA that signed the client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker says the client certificate has expired",
    "WRONG_VERSION_NUMBER": "the broker's port does not speak TLS (a plain MQTT port?)",
    "RECORD_LAYER_FAILURE": "the broker's port does not speak TLS (a plain MQTT port?)",
}
_SSL_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


class MqttError(AslEdgeError):
    """The MQTT settings cannot be used (unreadable password or TLS files)."""


@dataclass
class MqttStats:
    delivered: int = 0
    dropped: int = 0
    connects: int = 0
    connected: bool = False
    error: str | None = None


@dataclass(frozen=True)
class Outgoing:
    suffix: str
    payload: bytes
    qos: int
    retain: bool


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps({"schema": MESSAGE_SCHEMA, **payload}, ensure_ascii=False).encode("utf-8")


def mqtt_settings(config: Config) -> MqttConfig:
    """The config's [mqtt] section, with the device-derived topic prefix and client id filled in."""
    device = config.device.id
    return dataclasses.replace(
        config.mqtt,
        topic_prefix=config.mqtt.topic_prefix or f"asl/{device}",
        client_id=config.mqtt.client_id or f"asl-edge-{device}",
    )


def password_path(settings: MqttConfig) -> Path | None:
    """Where the password is: ``password_file``, else the systemd credential ``mqtt-password``
    (``LoadCredential=mqtt-password:...`` puts it in ``$CREDENTIALS_DIRECTORY``), else none."""
    if settings.password_file:
        return Path(settings.password_file)
    return systemd_credential(PASSWORD_CREDENTIAL)


def new_client(settings: MqttConfig, client_id: str, reconnect: bool = True) -> mqtt.Client:
    """A paho client with the settings' credentials and TLS; the daemon and ``asl-edge status``
    both connect through it. ``reconnect=False`` leaves reconnecting to the caller."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        reconnect_on_failure=reconnect,
    )
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


def tls_reason(text: str) -> str:
    """An OpenSSL reason code (or a message holding one) in words, or the text as it is."""
    match = _SSL_REASON.search(text)
    code = match.group(1) if match else text
    return TLS_REASONS.get(code, text)


def connection_error(exc: BaseException, settings: MqttConfig) -> str:
    """Why a connection attempt failed, naming the certificate problem for TLS."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS: {where} presented a certificate that was refused: {exc.verify_message} "
            "(check [mqtt] tls_ca and host)"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {tls_reason(str(exc.reason or exc))} ({where})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where} (is the broker running on that port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {settings.host}: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer in time"
    return f"{where}: {type(exc).__name__}: {exc}"


Handler = Callable[[bytes], object]


class MqttLink:
    """One connection and its queue; ``start``/``stop``/``health`` like every worker."""

    def __init__(self, settings: MqttConfig, reconnect_s: tuple[float, float] = RECONNECT_S) -> None:
        self.settings = settings
        self.reconnect_s = reconnect_s
        self.stats = MqttStats()
        self._client = new_client(settings, settings.client_id, reconnect=False)
        self._client.will_set(self.topic("status"), encode({"state": "offline"}), qos=1, retain=True)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_publish = self._published
        self._client.on_message = self._message
        self._client.on_log = self._paho_log
        self._handlers: dict[str, tuple[Handler, int]] = {}
        self._connect_hooks: list[Callable[[], None]] = []
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._periodic: dict[str, Outgoing] = {}
        self._inflight: dict[int, Outgoing] = {}
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        # Guards the queue and the in-flight map; never taken in a callback that holds paho's locks.
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._session_over = threading.Event()
        self._socket_error: str | None = None
        self._connected_at = 0.0
        self._reported: set[str] = set()
        self._threads: list[threading.Thread] = []

    def topic(self, suffix: str) -> str:
        return f"{self.settings.topic_prefix}/{suffix}"

    def subscribe(self, topic: str, handler: Handler, qos: int = 1) -> None:
        """Call ``handler(payload)`` on paho's thread, which it must not block, for each message on
        ``topic`` (an absolute topic, wildcards allowed); subscribed again on every connect;
        register before ``start``."""
        self._handlers[topic] = (handler, qos)

    def add_connect_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook()`` after every successful connect (on paho's network thread, after the
        status and before queued messages go out); register before ``start``."""
        self._connect_hooks.append(hook)

    def publish_raw(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Hand ``payload`` as it is to paho for an absolute ``topic``, only while connected: never
        queued, for messages a connect hook sends again anyway. False when it did not go out."""
        if not self.stats.connected:
            return False
        return self._client.publish(topic, payload, qos, retain).rc == mqtt.MQTT_ERR_SUCCESS

    # -- connection --------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; the link keeps retrying until ``stop``."""
        for name, target in (("mqtt", self._keep_connected), ("mqtt-send", self._send_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _keep_connected(self) -> None:
        first_s, longest_s = self.reconnect_s
        backoff = Backoff(first_s, max(first_s, longest_s), HEALTHY_S)
        while not self._stop.is_set():
            self._session_over.clear()
            self._socket_error = None
            lasted_s = 0.0
            try:
                self._client.connect(self.settings.host, self.settings.port, self.settings.keepalive_s)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self._problem(connection_error(exc, self.settings))
            else:
                began = time.monotonic()
                self._client.loop_start()
                while not self._session_over.wait(0.5) and not self._stop.is_set():
                    pass
                self._client.loop_stop()
                lasted_s = time.monotonic() - self._connected_at if self._connected_at > began else 0.0
            if self._stop.wait(backoff.after(lasted_s)):
                return

    def _problem(self, reason: str) -> None:
        """Record why the broker is unreachable; each reason is logged once per outage, not on
        every retry (a broker can refuse in two ways by turns)."""
        if reason not in self._reported:
            self._reported.add(reason)
            log.warning("mqtt: %s; retrying with backoff (messages wait in the queue)", reason)
        self.stats.error = reason

    def _paho_log(self, _client: mqtt.Client, _userdata: Any, level: int, text: str) -> None:
        """Paho reports a broken socket (a TLS alert from the broker, say) only in its log."""
        if level == mqtt.MQTT_LOG_ERR:
            self._socket_error = text

    def _connected(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._problem(f"the broker refused the connection: {reason}")
            self._session_over.set()
            return
        # Before paho re-sends what it still holds: those messages go back to our queue instead.
        with self._send_lock:
            taken_back = {message.mid for message in client.drop_out_messages()}
            self._settle_acks()
            unsent = [self._inflight[mid] for mid in sorted(self._inflight) if mid in taken_back]
            self.stats.dropped += len(self._inflight) - len(unsent)  # QoS 0 lost with the connection
            self._inflight.clear()
            self._queue.extendleft(reversed(unsent))
        # The retained status first, so that whoever sees the link connected finds it on the broker.
        client.publish(self.topic("status"), encode({"state": "online"}), qos=1, retain=True)
        self.stats.connected = True
        self._connected_at = time.monotonic()
        self.stats.connects += 1
        if self.stats.error:
            log.info(
                "mqtt: connected to %s:%d (after: %s)",
                self.settings.host,
                self.settings.port,
                self.stats.error,
            )
        else:
            log.info("mqtt: connected to %s:%d", self.settings.host, self.settings.port)
        self.stats.error = None
        self._reported.clear()
        for topic, (_, qos) in self._handlers.items():
            client.subscribe(topic, qos=qos)
        for hook in self._connect_hooks:
            try:
                hook()
            except Exception:  # a hook's bug must not break the connection
                log.exception("mqtt: connect hook failed")
        self._wake.set()

    def _disconnected(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        was_connected, self.stats.connected = self.stats.connected, False
        if reason.is_failure and not self._stop.is_set():
            detail = self._socket_reason() if self._socket_error else str(reason)
            self._problem(f"disconnected: {detail}" if was_connected else f"connection failed: {detail}")
        self._session_over.set()

    def _socket_reason(self) -> str:
        """The socket error paho logged, in words. A broker that closes a fresh TLS session without
        a word (an EOF instead of its alert, by a race) most likely wanted a client certificate."""
        text = str(self._socket_error)
        tls_without_certificate = (
            self.settings.tls_ca or self.settings.tls_cert
        ) and not self.settings.tls_cert
        if tls_without_certificate and "EOF occurred in violation of protocol" in text:
            return TLS_REASONS["TLSV13_ALERT_CERTIFICATE_REQUIRED"]
        return tls_reason(text)

    # -- sending -------------------------------------------------------------------------------

    def publish(
        self, suffix: str, payload: dict[str, Any], qos: int | None = None, retain: bool = False
    ) -> None:
        """Queue a message; it goes out in order when the broker has room (bounded queue: the
        oldest is dropped and counted)."""
        outgoing = Outgoing(suffix, encode(payload), self.settings.qos if qos is None else qos, retain)
        with self._send_lock:
            if len(self._queue) >= self.settings.queue_limit:
                self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(outgoing)
        self._wake.set()

    def publish_periodic(self, suffix: str, payload: dict[str, Any]) -> None:
        """A message the next one of its kind replaces (health, QoS 0): sent when connected, never
        queued while the broker is away."""
        with self._send_lock:
            if self.stats.connected:
                self._periodic[suffix] = Outgoing(suffix, encode(payload), 0, False)
        self._wake.set()

    def _published(self, _client: mqtt.Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        # Paho holds its message lock here: only note the ack, the sender settles it.
        self._acks.put(mid)
        self._wake.set()

    def _settle_acks(self) -> None:
        """With ``_send_lock`` held: delivered messages leave the in-flight map."""
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            if self._inflight.pop(mid, None) is not None:
                self.stats.delivered += 1

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            with self._send_lock:
                self._settle_acks()
                self._send_periodic()
                while self.stats.connected and self._queue and len(self._inflight) < INFLIGHT:
                    outgoing = self._queue[0]
                    info = self._client.publish(
                        self.topic(outgoing.suffix), outgoing.payload, outgoing.qos, outgoing.retain
                    )
                    # Paho keeps a QoS 1 message it could not send (NO_CONN) for the next connect,
                    # where the link takes it back; anything else it did not take stays first here.
                    kept = info.rc == mqtt.MQTT_ERR_NO_CONN and outgoing.qos > 0
                    if info.rc != mqtt.MQTT_ERR_SUCCESS and not kept:
                        break
                    self._queue.popleft()
                    self._inflight[info.mid] = outgoing

    def _send_periodic(self) -> None:
        if not self.stats.connected:
            self._periodic.clear()
        for suffix, outgoing in list(self._periodic.items()):
            self._client.publish(self.topic(suffix), outgoing.payload, 0, False)
            del self._periodic[suffix]

    # -- receiving -----------------------------------------------------------------------------

    def _message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        for topic, (handler, _) in self._handlers.items():
            if mqtt.topic_matches_sub(topic, message.topic):
                try:
                    handler(bytes(message.payload))
                except Exception:  # a handler's bug must not kill paho's network thread
                    log.exception("mqtt: handler for %s failed", topic)

    # -- state ---------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Messages the broker does not have yet: queued, and handed to paho but not delivered."""
        return len(self._queue) + len(self._inflight)

    def health(self) -> MqttHealth:
        stats = self.stats
        worker = WorkerHealth.of(stats.error, max(0, stats.connects - 1), stats.connected)
        return MqttHealth(worker, stats.connected, stats.error, stats.delivered, self.pending, stats.dropped)

    def stop(self, drain_s: float = STOP_DRAIN_S) -> None:
        """Give queued messages ``drain_s`` to go out while connected, say ``offline`` (retained),
        disconnect and end the threads."""
        deadline = time.monotonic() + drain_s
        while self.pending and self.stats.connected and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.05)
        if self.stats.connected:
            with self._send_lock:  # the last health goes out before the offline status
                self._send_periodic()
            info = self._client.publish(
                self.topic("status"), encode({"state": "offline"}), qos=1, retain=True
            )
            info.wait_for_publish(max(0.5, deadline - time.monotonic()))
        self._stop.set()
        self._client.disconnect()
        self._session_over.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(5.0)
        self._client.loop_stop()
