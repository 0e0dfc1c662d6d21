"""One TOML file, validated at start into frozen, typed objects.

Every field has a default that works on a laptop and a one-line description (the ``doc`` in its
metadata). Unknown sections and keys are rejected, so a typo never silently falls back to a
default. Every rule lives here: types, ranges and choices in the field metadata, value formats as
``check`` functions (``edge.core.checks``), and rules that relate fields of a section in its
``problems()``. ``check-config`` and ``run`` both call ``read_config``, so they refuse the same
files. Problems are reported as ``key: problem`` lines that name the fix.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from edge.core import checks
from edge.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

DEFAULT_CONFIG_PATH = Path("/etc/asl-edge/config.toml")
CONFIG_ENV = "ASL_EDGE_CONFIG"


def _field(default: Any, doc: str, **rules: Any) -> Any:
    return field(default=default, metadata={"doc": doc, **rules})


@dataclass(frozen=True)
class DeviceConfig:
    id: str = _field("dev-local", "device id, used in MQTT topics and sync keys", pattern="id")


# The precisions each backend runs ("auto": its own choice); ``auto`` may pick any of them.
BACKEND_PRECISIONS = {
    "tensorrt": ("auto", "fp32", "int8", "fp16"),
    "openvino": ("auto", "fp32", "int8", "bf16"),
    "onnxruntime": ("auto", "fp32"),
}


@dataclass(frozen=True)
class ModelConfig:
    bundle: str = _field("", "model bundle directory; empty for the demo bundle shipped with asl-edge")
    backend: str = _field(
        "auto",
        "inference backend: auto (TensorRT when it imports and an engine for this device exists, "
        "else OpenVINO on an x86 CPU where it is installed, else ONNX Runtime), tensorrt, openvino "
        "or onnxruntime",
        choices=("auto", "tensorrt", "openvino", "onnxruntime"),
    )
    precision: str = _field(
        "auto",
        "precision of the backend: auto (TensorRT: the best engine present, else build fp16; "
        "OpenVINO: the fastest this CPU has whose accuracy gate passed), fp32, int8, fp16 (TensorRT) "
        "or bf16 (OpenVINO, CPUs with BF16); ONNX Runtime runs fp32",
        choices=("auto", "fp32", "int8", "fp16", "bf16"),
    )
    build_if_missing: bool = _field(
        False, "build the TensorRT engine at start when this device has none (takes minutes)"
    )
    threads: int = _field(
        0, "CPU threads for ONNX Runtime and OpenVINO; 0 for every core this process may use", min=0
    )
    top_k: int = _field(5, "how many ranked words to report with each prediction", min=1, max=100)
    min_confidence: float = _field(
        0.0, "probability below which a sign is reported as 'unknown'", min=0.0, max=1.0
    )
    combine: str = _field("mean", "how scores over time are combined", choices=("mean", "max"))
    watch_s: float = _field(
        10.0,
        "seconds between checks of the config file and bundle on disk; a change that holds for two "
        "checks reloads the model (0: off)",
        min=0.0,
        max=3600.0,
    )

    def problems(self) -> list[str]:
        """Rules across fields, as ``key: problem`` lines: each backend runs its own precisions."""
        runs = BACKEND_PRECISIONS.get(self.backend)
        if runs is None or self.precision in runs:
            return []
        return [
            f"model.precision: {self.backend} does not run {self.precision} (it runs {', '.join(runs)}; "
            "fp16 is TensorRT's, bf16 OpenVINO's)"
        ]


@dataclass(frozen=True)
class SourceConfig:
    uri: str = _field(
        "test://",
        "camera or video: csi://N, v4l2:///dev/videoN, file:///path, rtsp://..., test:// or gst:<pipeline>",
        check=checks.source_uri,
    )
    loop: bool = _field(False, "replay a file:// source forever instead of ending the run")
    realtime: bool = _field(True, "play files at their frame rate; false reads them as fast as possible")
    width: int = _field(640, "camera frame width in pixels", min=16, max=7680)
    height: int = _field(480, "camera frame height in pixels", min=16, max=4320)
    fps: int = _field(30, "camera frame rate", min=1, max=240)
    queue_frames: int = _field(30, "frames buffered between capture and inference", min=1, max=1000)
    stall_s: float = _field(
        5.0, "a camera that delivers no frame for this long is restarted and reported", min=0.5, max=600.0
    )
    reconnect_max_s: float = _field(
        2.0, "longest wait between attempts to reopen a failed camera (seconds)", min=0.1, max=300.0
    )


@dataclass(frozen=True)
class SegmenterConfig:
    mode: str = _field(
        "motion",
        "motion: one word per sign between rests; sliding: fixed windows for signers who never rest",
        choices=("motion", "sliding"),
    )
    start_fraction: float = _field(0.002, "fraction of moving pixels that starts a sign", min=1e-5, max=0.5)
    stop_fraction: float = _field(
        0.001, "fraction of moving pixels below which the signer rests", min=1e-5, max=0.5
    )
    rest_s: float = _field(0.35, "stillness in seconds that ends a sign", min=0.05, max=5.0)
    min_sign_s: float = _field(0.4, "shorter motion is ignored (seconds)", min=0.05, max=10.0)
    max_sign_s: float = _field(
        4.0, "longer motion is cut into signs of this length (seconds)", min=0.5, max=30.0
    )
    pre_roll_s: float = _field(0.1, "seconds of video kept before the motion starts", min=0.0, max=2.0)
    post_roll_s: float = _field(0.1, "seconds of video kept after the motion ends", min=0.0, max=2.0)
    window_s: float = _field(1.5, "sliding mode: window length in seconds", min=0.2, max=10.0)
    stride_s: float = _field(0.5, "sliding mode: seconds between windows", min=0.05, max=10.0)
    stable_windows: int = _field(
        2, "sliding mode: consecutive windows that must agree before a word is published", min=1, max=20
    )
    speculate: bool = _field(
        True,
        "motion mode: classify a sign while its rest is being confirmed, so the word comes as the "
        "hands come to rest (the same word and confidence as without)",
    )

    def problems(self) -> Iterator[str]:
        if self.stop_fraction > self.start_fraction:
            yield (
                f"segmenter.stop_fraction: {self.stop_fraction:g} is above start_fraction "
                f"{self.start_fraction:g}; the rest threshold must not exceed the start threshold"
            )
        if self.min_sign_s >= self.max_sign_s:
            yield (
                f"segmenter.min_sign_s: {self.min_sign_s:g} is not below max_sign_s {self.max_sign_s:g}; "
                "no sign could be long enough"
            )
        if self.stride_s > self.window_s:
            yield (
                f"segmenter.stride_s: {self.stride_s:g} is above window_s {self.window_s:g}; windows "
                "would skip frames"
            )


@dataclass(frozen=True)
class MqttConfig:
    host: str = _field("127.0.0.1", "MQTT broker host", check=checks.host_name)
    port: int = _field(1883, "MQTT broker port", min=1, max=65535)
    topic_prefix: str = _field(
        "", "topic prefix; empty for asl/<device id>; no + or # wildcards", check=checks.topic_prefix
    )
    client_id: str = _field("", "MQTT client id; empty for asl-edge-<device id>")
    qos: int = _field(1, "QoS of predictions and acknowledgements", min=0, max=2)
    keepalive_s: int = _field(
        30, "MQTT keepalive in seconds (the last will fires after 1.5x)", min=1, max=3600
    )
    username: str = _field("", "MQTT username; empty for anonymous")
    password_file: str = _field(
        "",
        "file holding the MQTT password (never the password itself); empty: the systemd "
        "credential mqtt-password ($CREDENTIALS_DIRECTORY) when it exists",
    )
    tls_ca: str = _field("", "CA certificate file; set it to use TLS")
    tls_cert: str = _field("", "client certificate file for mutual TLS")
    tls_key: str = _field("", "client key file for mutual TLS")
    queue_limit: int = _field(
        1000, "messages kept while the broker is away; older ones are dropped and counted", min=1
    )

    def problems(self) -> Iterator[str]:
        if self.tls_key and not self.tls_cert:
            yield "mqtt.tls_key: a client key needs its certificate in tls_cert"
        if self.password_file and not self.username:
            yield "mqtt.password_file: set [mqtt] username too; a password without a username is never sent"


@dataclass(frozen=True)
class StorageConfig:
    state_dir: str = _field(
        "~/.local/state/asl-edge", "directory of the SQLite store (predictions, feedback)"
    )
    prediction_retention_days: float = _field(
        30.0, "days predictions without feedback are kept (feedback is never pruned)", min=0.01
    )
    max_db_mb: float = _field(
        500.0, "disk budget of the store in MB; a warning is logged and reported at 90%", min=1.0
    )


@dataclass(frozen=True)
class SyncConfig:
    bucket: str = _field("", "S3 bucket for feedback batches; empty disables sync", check=checks.bucket_name)
    prefix: str = _field("asl-feedback", "key prefix inside the bucket")
    endpoint_url: str = _field(
        "", "S3-compatible endpoint (MinIO, SeaweedFS); empty for AWS S3", check=checks.http_url
    )
    region: str = _field("us-east-1", "S3 region")
    interval_s: float = _field(300.0, "seconds between the daemon's sync passes", min=1.0, max=86400.0)
    batch_rows: int = _field(5000, "most feedback rows in one CSV object", min=1, max=1_000_000)
    batch_bytes: int = _field(
        4_000_000, "most bytes in one CSV object (a batch always holds at least one row)", min=1024
    )
    retries: int = _field(
        4, "retries of a failed upload within a pass, with exponential backoff", min=0, max=20
    )
    credentials_file: str = _field(
        "",
        "AWS shared-credentials file ([default] profile); empty: $CREDENTIALS_DIRECTORY/s3-credentials "
        "under systemd, else the standard AWS chain",
    )
    clips: bool = _field(
        False,
        "keep and upload the clip of a sign the user answered (right or a correction), only when their "
        "feedback consents",
    )
    clip_retention_days: float = _field(7.0, "days a clip that could not be uploaded is kept", min=0.01)


@dataclass(frozen=True)
class HealthConfig:
    interval_s: float = _field(10.0, "seconds between health messages", min=0.5, max=3600.0)


@dataclass(frozen=True)
class ScreenConfig:
    enabled: bool = _field(True, "serve the kiosk screen (the page the signer sees) from the daemon")
    host: str = _field(
        "127.0.0.1",
        "IP address the screen listens on (0.0.0.0: every interface); other than loopback needs a token",
        check=checks.ip_address,
    )
    port: int = _field(
        8080, "screen port; 0 picks a free one (logged, and in health as screen_url)", min=0, max=65535
    )
    token_file: str = _field(
        "",
        "file holding the token every read and change of the screen must carry (never the token itself); "
        "empty: the systemd credential screen-token ($CREDENTIALS_DIRECTORY) when it exists",
    )
    self_view: bool = _field(
        True,
        "show the signer a small mirrored live view of the camera with the model's crop marked (encoded "
        "only while a page watches it, never stored)",
    )
    dark_luma: float = _field(
        40.0,
        "mean brightness (0-255) of the model's crop below which the screen asks for more light",
        min=0.0,
        max=255.0,
    )
    dark_s: float = _field(
        1.5, "seconds the crop must stay that dark before the screen says so", min=0.1, max=60.0
    )


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _field("info", "log level", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
class UpdateConfig:
    channel: str = _field(
        "",
        "release channel s3://BUCKET/PREFIX this kiosk follows (asl-edge publish); empty: off",
        check=checks.s3_url,
    )
    public_key: tuple[str, ...] = _field(
        (), "public key file(s) whose signatures are trusted (asl-edge keygen); a list during a key rotation"
    )
    interval_s: float = _field(300.0, "seconds between checks of the channel", min=0.1, max=86400.0)
    endpoint_url: str = _field(
        "", "S3-compatible endpoint of the channel; empty: [sync] endpoint_url", check=checks.http_url
    )
    cohort: str = _field(
        "",
        "staged rollouts: canary (always take the channel's candidate), stable (never), or empty for "
        "the draw by a hash of the device id",
        choices=("", "canary", "stable"),
    )
    shadow_threads: int = _field(
        1,
        "CPU threads of a candidate run in shadow beside the serving model (fewer than the serving "
        "model's, so serving keeps its pace)",
        min=1,
        max=64,
    )
    shadow_nice: int = _field(
        10,
        "scheduling niceness added to the shadow's thread (0-19; higher yields the CPU sooner)",
        min=0,
        max=19,
    )

    def problems(self) -> Iterator[str]:
        if self.channel and not self.public_key:
            yield "update.public_key: set it to the channel's public key file(s) when update.channel is set"


@dataclass(frozen=True)
class HomeAssistantConfig:
    enabled: bool = _field(
        False, "announce the kiosk to Home Assistant (MQTT discovery): one device with its sensors"
    )
    discovery_prefix: str = _field(
        "homeassistant",
        "Home Assistant's MQTT discovery prefix (its MQTT integration's setting); no + or # wildcards",
        check=checks.discovery_prefix,
    )


@dataclass(frozen=True)
class MetricsConfig:
    textfile: str = _field(
        "",
        "Prometheus metrics file rewritten at each health tick, for node_exporter's textfile collector "
        "(e.g. /var/lib/prometheus/node-exporter/asl-edge.prom); empty: off",
        check=checks.prom_file,
    )


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def update_endpoint_url(config: Config) -> str:
    """The channel's endpoint: ``[update] endpoint_url``, else ``[sync] endpoint_url``."""
    return config.update.endpoint_url or config.sync.endpoint_url


def _check_value(value: Any, kind: Any, rules: dict[str, Any]) -> tuple[Any, str | None]:
    """The value converted to ``kind``, or a problem description."""
    if kind == tuple[str, ...]:  # one string or a list of them
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) and item for item in items):
            return None, f"expected a string or a list of strings, got {value!r}"
        return tuple(items), None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return None, f"expected {kind.__name__}, got {type(value).__name__} {value!r}"
    if "choices" in rules and value not in rules["choices"]:
        choices = ", ".join(choice or '""' for choice in rules["choices"])
        return None, f"{value!r} is not one of {choices}"
    if "min" in rules and value < rules["min"]:
        return None, f"{value!r} is below the minimum {rules['min']}"
    if "max" in rules and value > rules["max"]:
        return None, f"{value!r} is above the maximum {rules['max']}"
    if (
        rules.get("pattern") == "id"
        and isinstance(value, str)
        and not (0 < len(value) <= 64 and all(c.isalnum() or c in "-_." for c in value) and value.isascii())
    ):
        return None, f"{value!r} must be 1-64 ASCII letters, digits, '-', '_' or '.'"
    if "check" in rules:
        problem = rules["check"](value)
        if problem:
            return None, problem
    return value, None


def _build_section(name: str, cls: type, data: Any, problems: list[str]) -> Any:
    if not isinstance(data, dict):
        problems.append(f"{name}: must be a table ([{name}]), got {type(data).__name__}")
        return cls()
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{name}.{key}: unknown key; known keys: {', '.join(fields)}")
            continue
        checked, problem = _check_value(value, hints[key], dict(fields[key].metadata))
        if problem:
            problems.append(f"{name}.{key}: {problem}")
        else:
            values[key] = checked
    section = cls(**values)
    if hasattr(section, "problems"):
        problems.extend(section.problems())
    return section


def parse_config(data: dict[str, Any]) -> tuple[Config, list[str]]:
    """Validate a parsed TOML document; returns the config and every problem found."""
    problems: list[str] = []
    sections = {f.name: f for f in dataclasses.fields(Config)}
    hints = get_type_hints(Config)
    built: dict[str, Any] = {}
    for name, value in data.items():
        if name not in sections:
            problems.append(f"{name}: unknown section; known sections: {', '.join(sections)}")
            continue
        built[name] = _build_section(name, hints[name], value, problems)
    return Config(**built), problems


def read_config(path: str | Path) -> tuple[Config, list[str]]:
    """Parse a TOML file, with relative paths resolved against its folder; unreadable files and
    syntax errors are problems too."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config(), [f"{path}: no such file"]
    except (OSError, UnicodeDecodeError) as exc:
        return Config(), [f"{path}: cannot read: {exc}"]
    except tomllib.TOMLDecodeError as exc:
        return Config(), [f"{path}: invalid TOML: {exc}"]
    config, problems = parse_config(data)
    return _resolve_paths(config, path.resolve().parent), problems


def _resolve_paths(config: Config, base: Path) -> Config:
    """Relative paths in a config file mean "next to this file", wherever asl-edge is started."""

    def resolved(value: str) -> str:
        if not value:
            return value
        expanded = Path(value).expanduser()
        return str(expanded if expanded.is_absolute() else base / expanded)

    mqtt = config.mqtt
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, bundle=resolved(config.model.bundle)),
        storage=dataclasses.replace(config.storage, state_dir=resolved(config.storage.state_dir)),
        sync=dataclasses.replace(config.sync, credentials_file=resolved(config.sync.credentials_file)),
        screen=dataclasses.replace(config.screen, token_file=resolved(config.screen.token_file)),
        update=dataclasses.replace(
            config.update, public_key=tuple(resolved(key) for key in config.update.public_key)
        ),
        metrics=dataclasses.replace(config.metrics, textfile=resolved(config.metrics.textfile)),
        mqtt=dataclasses.replace(
            mqtt,
            password_file=resolved(mqtt.password_file),
            tls_ca=resolved(mqtt.tls_ca),
            tls_cert=resolved(mqtt.tls_cert),
            tls_key=resolved(mqtt.tls_key),
        ),
    )


def find_config_path(path: str | Path | None) -> Path | None:
    """``path``, or ``$ASL_EDGE_CONFIG``, or /etc/asl-edge/config.toml if present, else None (the
    defaults)."""
    if path is not None:
        return Path(path)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(path: str | Path | None) -> Config:
    """The config at ``path``, or ``$ASL_EDGE_CONFIG``, or /etc/asl-edge/config.toml if present,
    else the defaults. Raises ``ConfigError`` naming the first problem."""
    path = find_config_path(path)
    if path is None:
        return Config()
    config, problems = read_config(path)
    raise_problems(path, problems)
    return config


def raise_problems(path: Path, problems: list[str]) -> None:
    """A ConfigError naming the first problem (and how many more there are), if there are any."""
    if problems:
        more = (
            f" (and {len(problems) - 1} more; run 'asl-edge check-config {path}')"
            if len(problems) > 1
            else ""
        )
        raise ConfigError(f"{path}: {problems[0]}{more}")
