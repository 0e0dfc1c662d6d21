"""TensorRT engines that know their device: file names, JSON sidecars and matching rules.

A serialized engine only runs on the TensorRT version and GPU it was built with, and only
computes what the bundle's ONNX file computes if it was built from that file. Each engine
``BUNDLE/engines/<trt-version>-<gpu>-<precision>.engine`` has a sidecar ``<same>.json`` recording
all three; the runtime checks it before deserializing and refuses a mismatch with one line that
says how to rebuild. Plain Python: it runs and is tested without TensorRT.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.core.atomic import atomic_write_bytes
from edge.core.bundle import ENGINES_DIR
from edge.core.errors import BackendError

PRECISIONS = ("int8", "fp16", "fp32")
SIDECAR_VERSION = 1


class EngineMismatch(BackendError):
    """An engine was built for another TensorRT, GPU or ONNX model."""


@dataclass(frozen=True)
class DeviceInfo:
    """What an engine is tied to: the TensorRT version and the GPU."""

    trt_version: str
    gpu_name: str
    compute_capability: str

    def describe(self) -> str:
        return f"TensorRT {self.trt_version} on {self.gpu_name} (sm {self.compute_capability})"


def gpu_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


def engine_path(bundle_dir: Path, device: DeviceInfo, precision: str) -> Path:
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    name = f"{device.trt_version}-{gpu_slug(device.gpu_name)}-{precision}.engine"
    return bundle_dir / ENGINES_DIR / name


def sidecar_path(engine: Path) -> Path:
    return engine.with_name(engine.name + ".json")


@dataclass(frozen=True)
class Sidecar:
    """The JSON written next to an engine."""

    device: DeviceInfo
    precision: str
    onnx_file: str
    onnx_sha256: str
    inputs: dict[str, list[int]]
    outputs: dict[str, list[int]]
    built_at: str
    tool_version: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format_version"] = SIDECAR_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sidecar:
        """Keys this version does not use (``l4t``, ``bundle_onnx_sha256`` of older sidecars) are
        ignored; a missing one is an error."""
        device = {key: data["device"][key] for key in _field_names(DeviceInfo)}
        fields = {key: data[key] for key in _field_names(cls) if key != "device"}
        return cls(device=DeviceInfo(**device), **fields)


def _field_names(cls: type) -> list[str]:
    return [item.name for item in dataclasses.fields(cls)]


def write_sidecar(engine: Path, sidecar: Sidecar) -> None:
    atomic_write_bytes(sidecar_path(engine), (json.dumps(sidecar.to_dict(), indent=2) + "\n").encode())


def read_sidecar(engine: Path) -> Sidecar:
    path = sidecar_path(engine)
    try:
        return Sidecar.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise EngineMismatch(f"{engine}: no sidecar {path.name}; rebuild it with 'asl-edge build'") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as exc:
        raise EngineMismatch(
            f"{path}: unreadable engine sidecar ({exc}); rebuild with 'asl-edge build'"
        ) from exc


def check_engine(
    engine: Path, sidecar: Sidecar, device: DeviceInfo, bundle_dir: Path, onnx_sha256: str
) -> None:
    """Refuse an engine built for another TensorRT, GPU or ONNX file, naming the difference."""
    rebuild = f"rebuild with 'asl-edge build {bundle_dir} --precision {sidecar.precision}'"
    built = sidecar.device
    if (built.trt_version, built.gpu_name, built.compute_capability) != (
        device.trt_version,
        device.gpu_name,
        device.compute_capability,
    ):
        raise EngineMismatch(
            f"{engine.name} was built for {built.describe()}; this device has {device.describe()}: {rebuild}"
        )
    if sidecar.onnx_sha256 != onnx_sha256:
        raise EngineMismatch(
            f"{engine.name} was built from another {sidecar.onnx_file} (sha256 "
            f"{sidecar.onnx_sha256[:12]}..., the bundle's is {onnx_sha256[:12]}...): {rebuild}"
        )


def select_engine(
    bundle_dir: Path, device: DeviceInfo, onnx_sha256: dict[str, str], precision: str | None = None
) -> Path | None:
    """The engine for this device (int8 over fp16 over fp32 when ``precision`` is None).

    ``onnx_sha256`` maps each ONNX file of the bundle to its checksum. Engines built for other
    devices or from other files are passed over; a damaged sidecar disqualifies its engine.
    """
    wanted = PRECISIONS if precision is None else (precision,)
    for candidate_precision in wanted:
        engine = engine_path(bundle_dir, device, candidate_precision)
        if not engine.is_file():
            continue
        try:
            sidecar = read_sidecar(engine)
            check_engine(engine, sidecar, device, bundle_dir, onnx_sha256.get(sidecar.onnx_file, ""))
        except EngineMismatch:
            continue
        return engine
    return None


def current_device() -> DeviceInfo:
    """This machine's TensorRT version and GPU (needs TensorRT and pycuda)."""
    import tensorrt as trt

    from edge.runtime.backends.tensorrt.cuda import gpu_properties

    name, capability = gpu_properties()
    return DeviceInfo(trt.__version__, name, capability)
