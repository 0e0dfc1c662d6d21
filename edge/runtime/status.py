"""``asl-edge status``: the kiosk at a glance, for a technician with SSH.

Two views that do not depend on each other: the broker's (the retained ``<prefix>/status`` and the
next ``<prefix>/health``, through the same credentials and TLS as the daemon) and the local one
(``<state_dir>/health.json`` and the store's counts, read-only so it is safe beside a running
daemon). When the broker is unreachable the local view still answers.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from edge.core.config import Config, MqttConfig
from edge.runtime.health import health_age_s, read_health_file
from edge.runtime.mqtt import mqtt_settings, new_client
from edge.runtime.store import StoreError, read_counts

RETAINED_WAIT_S = 2.0


@dataclass
class BrokerView:
    """What the broker says about this kiosk."""

    reachable: bool
    error: str | None = None
    state: str = "unknown"
    health: dict[str, Any] | None = None
    waited_s: float = 0.0


@dataclass
class StatusReport:
    device: str
    broker: str
    topic_prefix: str
    state: str
    broker_error: str | None
    health: dict[str, Any] | None
    health_source: str | None
    health_age_s: float | None
    health_file: str
    health_file_age_s: float | None
    store: dict[str, int] | None
    store_error: str | None
    waited_s: float

    def problem(self) -> str | None:
        """One line when the kiosk is not online and reporting health, else None."""
        if self.broker_error:
            return self.broker_error
        if self.state == "unknown":
            return (
                f"no retained status on {self.topic_prefix}/status: asl-edge run never connected to "
                "this broker (or uses another topic prefix)"
            )
        if self.state != "online":
            return f"the kiosk is {self.state} on the broker"
        if self.health_source != "broker":
            return f"no health message within {self.waited_s:g} s"
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _decode(payload: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    return message if isinstance(message, dict) else None


def query_broker(settings: MqttConfig, timeout_s: float) -> BrokerView:
    """The retained status at once, then the next health message unless the kiosk is offline;
    ``timeout_s`` bounds the whole wait."""
    started = time.monotonic()
    deadline = started + timeout_s
    status_topic, health_topic = f"{settings.topic_prefix}/status", f"{settings.topic_prefix}/health"
    view = BrokerView(reachable=False)
    answered, subscribed, got_status, got_health = (threading.Event() for _ in range(4))

    def connected(client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            view.error = f"broker {settings.host}:{settings.port} refused the connection: {reason}"
        else:
            view.reachable = True
            client.subscribe([(status_topic, 1), (health_topic, 0)])
        answered.set()

    def message(_client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = _decode(bytes(msg.payload))
        if payload is None:
            return
        if msg.topic == status_topic:
            view.state = str(payload.get("state", "unknown"))
            got_status.set()
        elif msg.topic == health_topic:
            view.health = payload
            got_health.set()

    # An empty client id: the broker assigns one, so this never takes over the daemon's session.
    client = new_client(settings, "")
    client.on_connect = connected
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = message
    try:
        client.connect(settings.host, settings.port, settings.keepalive_s)
    except OSError as exc:
        view.error = f"broker {settings.host}:{settings.port} unreachable: {exc}"
        return view
    client.loop_start()
    try:
        if not answered.wait(max(0.0, deadline - time.monotonic())):
            view.error = f"broker {settings.host}:{settings.port} did not answer within {timeout_s:g} s"
        elif view.reachable and subscribed.wait(max(0.0, deadline - time.monotonic())):
            got_status.wait(min(RETAINED_WAIT_S, max(0.0, deadline - time.monotonic())))
            if view.state != "offline":
                got_health.wait(max(0.0, deadline - time.monotonic()))
    finally:
        client.disconnect()
        client.loop_stop()
    view.waited_s = round(time.monotonic() - started, 1)
    return view


def collect_status(config: Config, timeout_s: float) -> StatusReport:
    """Ask the broker (bounded by ``timeout_s``) and read the local state directory."""
    settings = mqtt_settings(config)
    state_dir = Path(config.storage.state_dir).expanduser()
    view = query_broker(settings, timeout_s)
    local = read_health_file(state_dir)
    local_age_s = health_age_s(local) if local else None
    try:
        store, store_error = read_counts(state_dir), None
    except StoreError as exc:
        store, store_error = None, str(exc)
    health: dict[str, Any] | None = view.health or local
    source = "broker" if view.health else "health.json" if local else None
    age_s = 0.0 if view.health else local_age_s
    return StatusReport(
        device=config.device.id,
        broker=f"{settings.host}:{settings.port}",
        topic_prefix=settings.topic_prefix,
        state=view.state if view.reachable else "unknown",
        broker_error=view.error,
        health=health,
        health_source=source,
        health_age_s=None if age_s is None else round(age_s, 1),
        health_file=str(state_dir / "health.json"),
        health_file_age_s=None if local_age_s is None else round(local_age_s, 1),
        store=store,
        store_error=store_error,
        waited_s=view.waited_s,
    )


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:g} ms"


def _workers(workers: dict[str, Any]) -> str:
    """Each worker's state, with its restarts when it had any."""
    parts = []
    for name, worker in workers.items():
        restarts = worker.get("restarts") or 0
        parts.append(f"{name} {worker.get('state')}" + (f" ({restarts} restarts)" if restarts else ""))
    return ", ".join(parts)


def _cohort(health: dict[str, Any]) -> str:
    """The kiosk's part in a staged rollout, and its shadow model's work."""
    cohort = health.get("cohort")
    if cohort is None:
        return "none (no release channel, or no pointer read yet)"
    shadow = health.get("shadow_version")
    if not shadow:
        return f"{cohort}; no shadow model"
    return (
        f"{cohort}; release {shadow} in shadow: signs read {health.get('shadow_signs')}, skipped "
        f"{health.get('shadow_skipped')}, p50 {_ms(health.get('shadow_inference_ms_p50'))}"
    )


def format_status(report: StatusReport) -> str:
    """A readable summary, one fact a line."""
    lines = [
        f"device        {report.device} ({report.topic_prefix} on {report.broker})",
        f"state         {report.state}" + (f" ({report.broker_error})" if report.broker_error else ""),
    ]
    file_age = "none" if report.health_file_age_s is None else f"{report.health_file_age_s:g} s ago"
    if report.health is None:
        lines.append(f"last health   none (health.json: {file_age})")
    else:
        health = report.health
        lines += [
            f"last health   {report.health_age_s:g} s ago, from "
            f"{'the broker' if report.health_source == 'broker' else report.health_source} "
            f"(health.json: {file_age})",
            f"frames        {health.get('fps_in')} fps in, {health.get('fps_out')} fps out, "
            f"{health.get('frames_dropped')} dropped, {health.get('capture_restarts')} capture restarts",
            f"camera error  {health.get('capture_error') or 'none'}",
            f"disk          {health.get('disk_free_mb')} MB free; store error: "
            f"{health.get('store_error') or 'none'}; "
            f"{health.get('predictions_unstored')} predictions not stored",
            f"model         {health.get('model')}"
            f"{' release ' + str(health['model_version']) if health.get('model_version') else ''} "
            f"on {health.get('backend')} ({health.get('backend_reason')})",
            f"model reload  {health.get('model_reload_error') or 'ok'}",
            f"model update  {health.get('model_update_error') or 'ok'}",
            f"cohort        {_cohort(health)}",
            f"latency       inference p50 {_ms(health.get('inference_ms_p50'))}, "
            f"p95 {_ms(health.get('inference_ms_p95'))}; sign end to publish "
            f"p50 {_ms(health.get('sign_end_to_publish_ms_p50'))}, "
            f"p95 {_ms(health.get('sign_end_to_publish_ms_p95'))}",
            f"mqtt          {health.get('mqtt_pending')} queued, {health.get('mqtt_dropped')} dropped"
            + (
                f" (the daemon's last broker problem: {health['mqtt_error']})"
                if health.get("mqtt_error")
                else ""
            ),
        ]
        lines += [f"{key:<13} {value}" for key, value in health.items() if "sync" in key]
        workers = health.get("workers")
        if isinstance(workers, dict):
            lines.append(f"workers       {_workers(workers)}")
    if report.store is not None:
        store = report.store
        lines.append(
            f"store         {store['predictions']} predictions, {store['feedback']} feedback, "
            f"{store['pending_feedback']} feedback pending upload"
        )
    else:
        lines.append(f"store         {report.store_error or 'none yet'}")
    return "\n".join(lines)
