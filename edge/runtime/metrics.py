"""Prometheus metrics in a text file, for node_exporter's textfile collector.

node_exporter already runs on every kiosk; its textfile collector serves the ``*.prom`` files of
one directory (``/var/lib/prometheus/node-exporter`` on Debian and Ubuntu). The daemon rewrites
``[metrics] textfile`` at each health tick and once more at shutdown (``asl_edge_up 0``), from the
same health message it publishes, so the metrics and the health topic always agree.

The one thing the health message lacks, the histogram of inference times, is an
``InferenceHistogram`` that the daemon's sign pipeline owns and fills; nothing here is global, so
two daemons in one process never share a registry.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from edge import __version__
from edge.core.atomic import replacing
from edge.runtime.health_schema import MetricsHealth, WorkerHealth

log = logging.getLogger(__name__)

# Inference time per clip: tens of milliseconds for TensorRT on Orin, about a second on a laptop CPU.
INFERENCE_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# node_exporter runs as its own user: the file must be world-readable whatever the service's UMask.
TEXTFILE_MODE = 0o644


@dataclass(frozen=True)
class HistogramSnapshot:
    """Observations per bucket of ``INFERENCE_BUCKETS_S`` (not cumulative; the last is +Inf)."""

    buckets: tuple[int, ...] = (0,) * (len(INFERENCE_BUCKETS_S) + 1)
    sum_s: float = 0.0


@dataclass
class InferenceHistogram:
    """Inference times, observed on the inference thread and read by the health tick."""

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _buckets: list[int] = field(default_factory=lambda: [0] * (len(INFERENCE_BUCKETS_S) + 1))
    _sum_s: float = 0.0

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._buckets[bisect.bisect_left(INFERENCE_BUCKETS_S, seconds)] += 1
            self._sum_s += seconds

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            return HistogramSnapshot(tuple(self._buckets), self._sum_s)


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one metrics file says: the health message as published, the inference times,
    and whether the daemon is running (false in the file left behind by a clean stop)."""

    health: Mapping[str, Any]
    inference: HistogramSnapshot
    up: bool


# (metric name, health field, help): counters and gauges read straight from the health message.
_HEALTH_COUNTERS = (
    ("asl_edge_frames_received", "frames_in", "Camera frames received."),
    ("asl_edge_frames_dropped", "frames_dropped", "Camera frames dropped because inference fell behind."),
    ("asl_edge_predictions", "predictions", "Words published on the prediction topic."),
    ("asl_edge_capture_restarts", "capture_restarts", "Restarts of the camera pipeline after a failure."),
    (
        "asl_edge_mqtt_messages_dropped",
        "mqtt_dropped",
        "Outgoing MQTT messages dropped because the offline queue was full.",
    ),
    ("asl_edge_feedback_received", "feedback_received", "Feedback messages received."),
    (
        "asl_edge_shadow_signs",
        "shadow_signs",
        "Signs a candidate run in shadow classified (recorded, never published).",
    ),
    (
        "asl_edge_shadow_skipped",
        "shadow_skipped",
        "Signs the shadow model skipped because it was still busy with the one before.",
    ),
    (
        "asl_edge_feedback_rejected",
        "feedback_rejected",
        "Feedback messages rejected (invalid, unknown prediction or not stored).",
    ),
)
_HEALTH_GAUGES = (
    ("asl_edge_mqtt_messages_pending", "mqtt_pending", "Outgoing MQTT messages waiting for the broker."),
    ("asl_edge_sync_backlog_rows", "sync_backlog", "Feedback rows waiting for upload to S3."),
    (
        "asl_edge_sync_last_success_timestamp_seconds",
        "sync_last_success",
        "Unix time of the last sync pass that uploaded everything it found.",
    ),
)


def _number(health: Mapping[str, Any], key: str) -> float | None:
    value = health.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metric_families(snapshot: MetricsSnapshot) -> Iterator[Metric]:
    """The metrics of one snapshot; a health field that is absent or null has no sample."""
    health, inference = snapshot.health, snapshot.inference
    yield GaugeMetricFamily(
        "asl_edge_up", "1 while the daemon runs, 0 after a clean stop.", value=float(snapshot.up)
    )
    yield InfoMetricFamily(
        "asl_edge",
        "The running asl-edge version, model and inference backend.",
        value={
            "version": __version__,
            "model": str(health.get("model") or ""),
            "backend": str(health.get("backend") or ""),
        },
    )
    if health.get("cohort") is not None:
        yield InfoMetricFamily(
            "asl_edge_release",
            "The kiosk's part in a staged rollout: its cohort, the release it serves and the one in shadow.",
            value={
                "cohort": str(health["cohort"]),
                "model_version": str(health.get("model_version") or ""),
                "shadow_version": str(health.get("shadow_version") or ""),
            },
        )
    for name, key, documentation in _HEALTH_COUNTERS:
        value = _number(health, key)
        if value is not None:
            yield CounterMetricFamily(name, documentation, value=value)
    for name, key, documentation in _HEALTH_GAUGES:
        value = _number(health, key)
        if value is not None:
            yield GaugeMetricFamily(name, documentation, value=value)
    db_mb = _number(health, "db_mb")
    if db_mb is not None:
        yield GaugeMetricFamily(
            "asl_edge_store_size_bytes", "Size of the SQLite store on disk.", value=round(db_mb * 1e6)
        )
    if "capture_error" in health:
        yield GaugeMetricFamily(
            "asl_edge_camera_problem",
            "1 while the camera pipeline reports an error, else 0.",
            value=float(bool(health["capture_error"])),
        )
    workers = health.get("workers")
    if isinstance(workers, Mapping) and workers:
        restarts = CounterMetricFamily(
            "asl_edge_worker_restarts",
            "Times each worker was started again (reconnects, restarts after a crash, model swaps).",
            labels=["worker"],
        )
        problems = GaugeMetricFamily(
            "asl_edge_worker_problem", "1 while the worker is failing, else 0.", labels=["worker"]
        )
        for name, worker in sorted(workers.items()):
            restarts.add_metric([name], float(worker["restarts"]))
            problems.add_metric([name], float(worker["state"] == "failing"))
        yield restarts
        yield problems
    cumulative, buckets = 0, []
    for bound, count in zip((*INFERENCE_BUCKETS_S, math.inf), inference.buckets, strict=True):
        cumulative += count
        buckets.append((floatToGoString(bound), cumulative))
    yield HistogramMetricFamily(
        "asl_edge_inference_duration_seconds",
        "Time to classify one sign (every model input it needs).",
        buckets=buckets,
        sum_value=inference.sum_s,
    )


class _SnapshotCollector:
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return metric_families(self.snapshot)


def render(snapshot: MetricsSnapshot) -> bytes:
    """The Prometheus text format (0.0.4) of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


class MetricsTextfile:
    """Worker that keeps ``[metrics] textfile`` current: ``update`` at each health tick, ``stop`` at
    shutdown. A write that fails (missing directory, no permission) is a fault reported in health
    as ``metrics_error``, never a crash."""

    def __init__(self, path: Path, inference: InferenceHistogram) -> None:
        self.path = path
        self.inference = inference
        self.error: str | None = None
        self._health: Mapping[str, Any] = {}

    def update(self, health: Mapping[str, Any]) -> None:
        self._health = dict(health)
        self._write(up=True)

    def stop(self) -> None:
        self._write(up=False)

    def health(self) -> MetricsHealth:
        return MetricsHealth(WorkerHealth.of(self.error), self.error)

    def _write(self, up: bool) -> None:
        data = render(MetricsSnapshot(self._health, self.inference.snapshot(), up))
        try:
            with replacing(self.path, durable=False) as temporary:
                temporary.write_bytes(data)
                temporary.chmod(TEXTFILE_MODE)
        except OSError as exc:
            error = f"cannot write {self.path}: {exc.strerror or exc}"
            if error != self.error:
                log.warning("metrics: %s", error)
            self.error = error
            return
        self.error = None
