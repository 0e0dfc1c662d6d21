"""One TOML file, validated at start into frozen, typed objects.

Every field has a default that works on a laptop and a one-line description (the ``doc`` in its
metadata). Unknown sections and keys are rejected, so a typo never silently falls back to a
default. Problems are reported as ``key: problem`` lines that name the fix.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from edge.errors import ConfigError

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


@dataclass(frozen=True)
class ModelConfig:
    bundle: str = _field("", "model bundle directory; empty for the demo bundle shipped with asl-edge")
    backend: str = _field(
        "auto",
        "inference backend: auto (TensorRT when it imports and an engine for this device exists, "
        "else ONNX Runtime), tensorrt or onnxruntime",
        choices=("auto", "tensorrt", "onnxruntime"),
    )
    precision: str = _field(
        "auto",
        "TensorRT engine precision to use or build: auto (best engine present, else build fp16), "
        "fp16, int8 or fp32",
        choices=("auto", "fp16", "int8", "fp32"),
    )
    build_if_missing: bool = _field(
        False, "build the TensorRT engine at start when this device has none (takes minutes)"
    )
    threads: int = _field(0, "CPU threads for ONNX Runtime; 0 for every core this process may use", min=0)
    top_k: int = _field(5, "how many ranked words to report with each prediction", min=1, max=100)
    min_confidence: float = _field(
        0.0, "probability below which a sign is reported as 'unknown'", min=0.0, max=1.0
    )
    combine: str = _field("mean", "how scores over time are combined", choices=("mean", "max"))


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)


def _check_value(key: str, value: Any, kind: type, rules: dict[str, Any]) -> tuple[Any, str | None]:
    """The value converted to ``kind``, or a problem description."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        return None, f"expected {kind.__name__}, got {type(value).__name__} {value!r}"
    if "choices" in rules and value not in rules["choices"]:
        return None, f"{value!r} is not one of {', '.join(rules['choices'])}"
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
        checked, problem = _check_value(f"{name}.{key}", value, hints[key], dict(fields[key].metadata))
        if problem:
            problems.append(f"{name}.{key}: {problem}")
        else:
            values[key] = checked
    return cls(**values)


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
    """Parse a TOML file; unreadable files and syntax errors are problems too."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Config(), [f"{path}: no such file"]
    except (OSError, UnicodeDecodeError) as exc:
        return Config(), [f"{path}: cannot read: {exc}"]
    except tomllib.TOMLDecodeError as exc:
        return Config(), [f"{path}: invalid TOML: {exc}"]
    return parse_config(data)


def load_config(path: str | Path | None) -> Config:
    """The config at ``path``, or ``$ASL_EDGE_CONFIG``, or /etc/asl-edge/config.toml if present,
    else the defaults. Raises ``ConfigError`` naming the first problem."""
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if env:
            path = env
        elif DEFAULT_CONFIG_PATH.is_file():
            path = DEFAULT_CONFIG_PATH
        else:
            return Config()
    config, problems = read_config(path)
    bundle = config.model.bundle
    if bundle and not Path(bundle).is_absolute():
        # Relative paths in a config file mean "next to this file", wherever asl-edge is started.
        resolved = str(Path(path).resolve().parent / bundle)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, bundle=resolved))
    if problems:
        more = (
            f" (and {len(problems) - 1} more; run 'asl-edge check-config {path}')"
            if len(problems) > 1
            else ""
        )
        raise ConfigError(f"{path}: {problems[0]}{more}")
    return config
