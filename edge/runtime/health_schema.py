"""The health message's schema: one typed section per part of the daemon, merged into one snapshot.

Each worker reports its own frozen section (capture, MQTT, the feedback desk, the store keeper,
sync, the health reporter, metrics, the model, the updater, a shadow model, the screen) and says
what it reports when it is off (``disabled()``); the inference thread adds what it owns
(recognition counters and latency percentiles). The daemon only merges them: no field is made up
outside its section. A section's ``worker`` (its first field) is how that worker is doing; it goes
into ``workers`` rather than the top level.

The message is schema 1 (its ``schema`` field): every section's fields flat at the top level, as
since the first health message, plus ``workers``, ``{name: {"state", "restarts",
"last_error"}}``. Metrics, Home Assistant, ``asl-edge status`` and the screen's banner read these
names; the README's health reference is rendered from these classes (``asl-edge
health-reference``), so it cannot drift from what the daemon sends.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, get_type_hints

START = "<!-- health-reference:start -->"
END = "<!-- health-reference:end -->"
WORKER_STATES = {
    "starting": "not working yet (connecting, waiting for its first frame or its port)",
    "running": "doing its job",
    "reloading": "the model only: a new model is being prepared while the old one recognizes",
    "failing": "cannot do its job now; last_error says why, and it keeps retrying",
    "stopped": "ended (a file source at its end, a worker during shutdown)",
    "disabled": "not configured",
}
# Fields some copies of the message carry beside the sections: (name, type, where, meaning).
ENVELOPE = (
    ("schema", "int", "MQTT", "the message format, 1 (only fields are added within it)"),
    ("time", "float", "health.json", "Unix time the file was written"),
    ("interval_s", "float", "health.json", "seconds between writes ([health] interval_s)"),
)


def reported(doc: str) -> Any:
    """A health field with its one-line meaning (rendered into the README's reference)."""
    return field(metadata={"doc": doc})


@dataclass(frozen=True)
class WorkerHealth:
    """How one worker is doing: the same three fields for every worker."""

    state: str = reported("one of " + ", ".join(WORKER_STATES))
    restarts: int = reported(
        "times it was started again (a camera reopened, a broker reconnected, a crashed job "
        "restarted, a model swapped)"
    )
    last_error: str | None = reported("its last problem, null once it works again")

    @classmethod
    def of(cls, error: str | None, restarts: int = 0, working: bool = True) -> WorkerHealth:
        """``failing`` with an error, else ``running`` (or ``starting`` while not yet working)."""
        state = "failing" if error else "running" if working else "starting"
        return cls(state, restarts, error)


DISABLED = WorkerHealth("disabled", 0, None)


@dataclass(frozen=True)
class CaptureHealth:
    """The camera or video source (edge/runtime/capture.py)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    frames_in: int = reported("frames received from the source")
    frames_dropped: int = reported("frames dropped because inference fell behind (the queue was full)")
    capture_restarts: int = reported("times the source was reopened after it failed, ended or stalled")
    capture_stalls: int = reported("times no frame came for [source] stall_s")
    capture_epoch: int = reported("how many times the source started again (each start is an epoch)")
    capture_error: str | None = reported("why the source fails; null while frames flow")


@dataclass(frozen=True)
class RecognitionHealth:
    """The inference thread's counters (edge/runtime/pipeline.py, daemon.py)."""

    fps_in: float = reported("frames per second received over the last health interval")
    fps_out: float = reported("frames per second processed over the last health interval")
    signs_cut: int = reported("signs a source restart interrupted: dropped, never glued to other frames")
    speculations: int = reported(
        "signs classified while their rest was being confirmed ([segmenter] speculate)"
    )
    speculations_discarded: int = reported(
        "of those, thrown away because the signer moved again (the whole sign was read when it ended)"
    )
    predictions: int = reported("words published")


@dataclass(frozen=True)
class MqttHealth:
    """The broker link (edge/runtime/mqtt.py)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    mqtt_connected: bool = reported("connected to the broker now")
    mqtt_error: str | None = reported("why it cannot connect (names the certificate problem for TLS)")
    mqtt_delivered: int = reported("messages the broker confirmed")
    mqtt_pending: int = reported("messages waiting for the broker")
    mqtt_dropped: int = reported("messages dropped because the offline queue was full")


@dataclass(frozen=True)
class FeedbackHealth:
    """The feedback desk (edge/runtime/feedback.py): MQTT and screen feedback, stored in order."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    feedback_received: int = reported("feedback messages received (MQTT and the screen)")
    feedback_stored: int = reported("feedback messages stored")
    feedback_rejected: int = reported("feedback messages rejected (invalid, unknown, not stored)")
    feedback_waiting: int = reported("feedback messages waiting to be stored")


@dataclass(frozen=True)
class StoreHealth:
    """The SQLite store as a state (edge/runtime/keeper.py), measured off the inference thread."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    pending_feedback: int | None = reported("feedback rows not uploaded yet (null without a store)")
    sync_backlog: int | None = reported("the same count, beside the sync fields")
    store_error: str | None = reported("why the store cannot write (a full disk says so)")
    predictions_unstored: int = reported("predictions published but not stored (no room in the store)")
    disk_free_mb: float | None = reported("MB free on the state directory's file system")
    db_mb: float | None = reported("the store's size on disk in MB, with its WAL")
    db_near_budget: bool | None = reported("the store uses 90% or more of [storage] max_db_mb")


@dataclass(frozen=True)
class SyncHealth:
    """Feedback sync to S3 (edge/runtime/sync.py)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    sync_last_success: float | None = reported("Unix time of the last pass that uploaded everything")
    sync_last_success_utc: str | None = reported("the same time in ISO 8601, UTC")
    sync_last_error: str | None = reported("why the last pass failed")

    @classmethod
    def disabled(cls) -> SyncHealth:
        return cls(DISABLED, None, None, None)


@dataclass(frozen=True)
class ReporterHealth:
    """The worker that publishes health and writes health.json (edge/runtime/reporter.py)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    health_file_error: str | None = reported("why health.json cannot be written")


@dataclass(frozen=True)
class MetricsHealth:
    """The Prometheus textfile (edge/runtime/metrics.py)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    metrics_error: str | None = reported("why [metrics] textfile cannot be written")

    @classmethod
    def disabled(cls) -> MetricsHealth:
        return cls(DISABLED, None)


@dataclass(frozen=True)
class ModelHealth:
    """The active model (edge/runtime/model.py) and its reloads (edge/runtime/reload.py)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    backend: str = reported("the backend running the model: tensorrt, openvino or onnxruntime")
    backend_reason: str = reported("why that backend (and why not the ones before it)")
    model: str = reported("the active model's id")
    model_version: str = reported("the release it came from; empty for [model] bundle")
    model_reload_error: str | None = reported("why the last reload failed (the old model kept running)")
    model_reloading: bool = reported("a new model is being prepared; the old one recognizes meanwhile")


@dataclass(frozen=True)
class UpdateHealth:
    """The release channel (edge/runtime/updater.py) and the kiosk's part in a staged rollout."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    model_update_error: str | None = reported("why the channel's release is not running")
    cohort: str | None = reported(
        "canary (takes the channel's candidate) or stable; null without [update] channel or before "
        "the first pointer was read"
    )
    shadow_version: str | None = reported(
        "the candidate release run in shadow beside the serving model (its words never shown); null when none"
    )

    @classmethod
    def disabled(cls) -> UpdateHealth:
        return cls(DISABLED, None, None, None)


@dataclass(frozen=True)
class ShadowHealth:
    """A candidate run in shadow beside the serving model (edge/runtime/shadow.py)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    shadow_signs: int = reported(
        "signs the shadow model classified (recorded with the prediction, never published)"
    )
    shadow_skipped: int = reported("signs it skipped because it was still busy with the one before")
    shadow_inference_ms_p50: float | None = reported(
        "ms the shadow took to classify one sign, median (null before the first)"
    )

    @classmethod
    def disabled(cls) -> ShadowHealth:
        return cls(DISABLED, 0, 0, None)


@dataclass(frozen=True)
class ScreenHealth:
    """The kiosk screen (edge/runtime/screen/)."""

    worker: WorkerHealth  # its entry in ``workers``, not a field of its own
    screen_url: str | None = reported("where the page is served")
    screen_clients: int = reported("pages connected now")
    screen_error: str | None = reported("why the screen cannot listen")
    screen_dropped_streams: int = reported("pages dropped for falling behind or for a newer page")
    screen_self_view_fps: float = reported(
        "self-view frames encoded per second over the last 2 s ([screen] self_view; 0 while no page watches)"
    )
    screen_self_view_frames: int = reported("self-view frames encoded since the start (none is ever stored)")

    @classmethod
    def disabled(cls) -> ScreenHealth:
        return cls(DISABLED, None, 0, None, 0, 0.0, 0)


@dataclass(frozen=True)
class LatencyHealth:
    """Recent latencies (edge/runtime/pipeline.py); null before the first one."""

    frame_ms_p50: float | None = reported("ms to crop a frame and measure its motion, median")
    frame_ms_p95: float | None = reported("the same, 95th percentile")
    inference_ms_p50: float | None = reported("ms to classify one sign, median")
    inference_ms_p95: float | None = reported("the same, 95th percentile")
    sign_end_to_publish_ms_p50: float | None = reported(
        "ms from the frame that ended a sign to its word on MQTT, median"
    )
    sign_end_to_publish_ms_p95: float | None = reported("the same, 95th percentile")


@dataclass(frozen=True)
class HealthSnapshot:
    """Every part's section at one moment; ``payload()`` is the health message (schema 1)."""

    capture: CaptureHealth
    recognition: RecognitionHealth
    mqtt: MqttHealth
    feedback: FeedbackHealth
    store: StoreHealth
    sync: SyncHealth
    reporter: ReporterHealth
    metrics: MetricsHealth
    model: ModelHealth
    updater: UpdateHealth
    shadow: ShadowHealth
    screen: ScreenHealth
    latency: LatencyHealth

    def payload(self) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        workers: dict[str, Any] = {}
        for part in dataclasses.fields(self):
            section = getattr(self, part.name)
            for item in dataclasses.fields(section):
                if item.name == "worker":
                    workers[part.name] = dataclasses.asdict(section.worker)
                else:
                    flat[item.name] = getattr(section, item.name)
        flat["workers"] = workers
        return flat


def _type_name(kind: Any) -> str:
    text = str(kind).replace("NoneType", "null").replace(" | None", " | null").replace(" | ", " or ")
    return text.removeprefix("<class '").removesuffix("'>")


def _rows(cls: type) -> list[tuple[str, str, str]]:
    hints = get_type_hints(cls)
    return [
        (item.name, _type_name(hints[item.name]), item.metadata["doc"])
        for item in dataclasses.fields(cls)
        if item.name != "worker"
    ]


def render_health_reference() -> str:
    """Every health field by part, as Markdown: what ``asl-edge health-reference`` prints."""
    lines = [
        "Generated from `edge/runtime/health_schema.py` by `make docs`; do not edit by hand.\n",
        "| field | part | type | meaning |",
        "| --- | --- | --- | --- |",
    ]
    hints = get_type_hints(HealthSnapshot)
    workers = []
    for part in dataclasses.fields(HealthSnapshot):
        cls = hints[part.name]
        if any(item.name == "worker" for item in dataclasses.fields(cls)):
            workers.append(part.name)
        lines += [f"| `{name}` | {part.name} | {kind} | {doc} |" for name, kind, doc in _rows(cls)]
    lines.append(
        "| `workers` | all | object | one entry per worker ("
        + ", ".join(f"`{name}`" for name in workers)
        + "), each with the fields below |"
    )
    lines += [f"| `{name}` | {where} | {kind} | {doc} |" for name, kind, where, doc in ENVELOPE]
    lines += ["", "Each entry of `workers`:", "", "| field | type | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | {kind} | {doc} |" for name, kind, doc in _rows(WorkerHealth)]
    lines += ["", "Worker states:", ""]
    lines += [f"- `{state}`: {meaning}" for state, meaning in WORKER_STATES.items()]
    return "\n".join(lines) + "\n"
