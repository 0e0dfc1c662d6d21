"""The model bundle: a directory with ``model.onnx``, ``labels.txt`` and ``manifest.json``.

The manifest is the contract between the converter and the runtime: it says what the model eats
(input name, static shape, layout, colour order, value range, preprocessing) and what it returns,
and carries checksums so that a bundle whose files were swapped or damaged is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.core.atomic import atomic_write_text
from edge.core.errors import BundleError
from edge.core.preprocess import PreprocessParams
from edge.core.sampling import SAMPLING_MODES

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
LABELS_FILE = "labels.txt"
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"
CALIBRATION_CACHE_FILE = "calibration.cache"
# OpenVINO's INT8 model (NNCF post-training quantization) and its weights.
OPENVINO_INT8_FILE = "model.openvino.int8.xml"
OPENVINO_INT8_WEIGHTS_FILE = "model.openvino.int8.bin"
ENGINES_DIR = "engines"  # TensorRT engines built on each device, beside their JSON sidecars
# The PyTorch weights fine-tuning starts from (build time only: a release leaves them behind).
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_SECTION = "checkpoint"
# Manifest sections of the learning loop: what a fine-tuned model was made from, and the verdict
# of ``asl-edge evaluate`` that ``asl-edge publish`` requires of it.
LINEAGE_SECTION = "lineage"
GATE_SECTION = "gate"
INPUT_LAYOUT = "NCTHW"
COLOR_ORDER = "BGR"
VALUE_RANGE = (-1.0, 1.0)
# Package data of edge.demo, found by path: the core never imports the layers above it.
DEMO_BUNDLE = Path(__file__).resolve().parent.parent / "demo" / "bundle"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """What a backend needs to know about the model, independent of the file format."""

    input_name: str
    input_shape: tuple[int, int, int, int, int]
    output_name: str
    output_shape: tuple[int, int, int]
    labels: tuple[str, ...]
    preprocessing: PreprocessParams
    model_id: str
    sampling: str = "windows"

    @property
    def frames(self) -> int:
        """Clip length T the model was exported for."""
        return self.input_shape[2]

    @property
    def num_classes(self) -> int:
        return self.output_shape[1]


@dataclass(frozen=True)
class Manifest:
    """``manifest.json`` as written by ``asl-edge convert``."""

    spec: ModelSpec
    files: dict[str, str]
    source: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        spec = self.spec
        data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model_id": spec.model_id,
            "sampling": spec.sampling,
            "input": {
                "name": spec.input_name,
                "shape": list(spec.input_shape),
                "dtype": "float32",
                "layout": INPUT_LAYOUT,
                "color_order": COLOR_ORDER,
                "value_range": list(VALUE_RANGE),
            },
            "output": {"name": spec.output_name, "shape": list(spec.output_shape), "layout": "NCT"},
            "preprocessing": spec.preprocessing.to_dict(),
            "labels_file": LABELS_FILE,
            "num_classes": spec.num_classes,
            "files": {name: {"sha256": digest} for name, digest in sorted(self.files.items())},
            "source": self.source,
            "checks": self.checks,
        }
        data.update(self.extra)
        return data


def write_bundle_metadata(directory: Path, manifest: Manifest) -> None:
    """Write ``labels.txt`` and ``manifest.json`` next to the model files already in place."""
    (directory / LABELS_FILE).write_text("\n".join(manifest.spec.labels) + "\n", encoding="utf-8")
    atomic_write_text(directory / MANIFEST_FILE, json.dumps(manifest.to_dict(), indent=2) + "\n")


def update_manifest(directory: Path, files: dict[str, str], sections: dict[str, Any]) -> None:
    """Record new bundle files (name to sha256) and top-level sections in ``manifest.json``."""
    path = directory / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest.setdefault("files", {}).update({name: {"sha256": digest} for name, digest in files.items()})
    manifest.update(sections)
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")


def _shape(value: Any, rank: int, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) != rank:
        raise BundleError(f"manifest {what} must be a list of {rank} integers, got {value!r}")
    if not all(isinstance(v, int) and v > 0 for v in value):
        raise BundleError(f"manifest {what} must hold positive integers, got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Bundle:
    """A loaded, checked bundle directory."""

    path: Path
    spec: ModelSpec
    manifest: dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    def checksums(self) -> dict[str, str]:
        """sha256 of each bundle file as recorded in the manifest."""
        files = self.manifest.get("files", {})
        return {name: entry["sha256"] for name, entry in files.items() if isinstance(entry, dict)}

    def verify_file(self, name: str) -> None:
        """Refuse a bundle file whose sha256 differs from the manifest's."""
        expected = self.manifest.get("files", {}).get(name, {}).get("sha256")
        if expected is None:
            raise BundleError(f"{self.path}: manifest has no checksum for {name}")
        actual = sha256_of(self.path / name)
        if actual != expected:
            raise BundleError(
                f"{self.path / name}: sha256 {actual[:12]}... does not match the manifest "
                f"({expected[:12]}...); re-run 'asl-edge convert' to rebuild the bundle"
            )


def load_bundle(path: str | Path, verify: bool = True) -> Bundle:
    """Read and check a bundle directory; ``verify`` also checks the ONNX file's sha256."""
    directory = Path(path)
    manifest_path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise BundleError(f"{directory}: bundle directory not found")
    if not manifest_path.is_file():
        raise BundleError(f"{directory}: not a model bundle (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: manifest must be a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: format_version {version!r} is not supported (expected "
            f"{FORMAT_VERSION}); convert the checkpoint again with this asl-edge"
        )
    try:
        model_input, model_output = manifest["input"], manifest["output"]
        input_shape = _shape(model_input["shape"], 5, "input.shape")
        output_shape = _shape(model_output["shape"], 3, "output.shape")
        input_name, output_name = str(model_input["name"]), str(model_output["name"])
        model_id = str(manifest["model_id"])
        sampling = str(manifest.get("sampling", "windows"))
        preprocessing = PreprocessParams.from_dict(manifest.get("preprocessing", {}))
        layout, colours = model_input.get("layout"), model_input.get("color_order")
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{manifest_path}: manifest lacks {exc}") from exc
    if layout != INPUT_LAYOUT or colours != COLOR_ORDER:
        raise BundleError(
            f"{manifest_path}: input layout {layout}/{colours} is not supported "
            f"(expected {INPUT_LAYOUT}/{COLOR_ORDER})"
        )
    if input_shape[3:] != (preprocessing.crop_size, preprocessing.crop_size):
        raise BundleError(
            f"{manifest_path}: input shape {input_shape} does not match crop_size {preprocessing.crop_size}"
        )
    if sampling not in SAMPLING_MODES:
        raise BundleError(f"{manifest_path}: sampling {sampling!r} is not one of {', '.join(SAMPLING_MODES)}")
    labels = read_labels(directory / LABELS_FILE)
    if len(labels) != output_shape[1]:
        raise BundleError(
            f"{directory / LABELS_FILE}: {len(labels)} labels for a model with {output_shape[1]} classes"
        )
    spec = ModelSpec(
        input_name=input_name,
        input_shape=input_shape,  # type: ignore[arg-type]
        output_name=output_name,
        output_shape=output_shape,  # type: ignore[arg-type]
        labels=labels,
        preprocessing=preprocessing,
        model_id=model_id,
        sampling=sampling,
    )
    bundle = Bundle(path=directory, spec=spec, manifest=manifest)
    if not bundle.model_path.is_file():
        raise BundleError(f"{directory}: {MODEL_FILE} is missing")
    if verify:
        bundle.verify_file(MODEL_FILE)
    return bundle


def read_labels(path: Path) -> tuple[str, ...]:
    """One gloss per line, line index = class index."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: cannot read labels: {exc}") from exc
    labels = tuple(line.strip() for line in lines if line.strip())
    if not labels:
        raise BundleError(f"{path}: no labels")
    return labels


def demo_bundle_path() -> Path | None:
    """The demo bundle shipped as package data of ``edge.demo``, if this installation has it."""
    return DEMO_BUNDLE if (DEMO_BUNDLE / MANIFEST_FILE).is_file() else None


def resolve_bundle_path(explicit: str | None, configured: str) -> Path:
    """``--bundle``, else the config's ``[model] bundle``, else the demo bundle."""
    if explicit:
        return Path(explicit)
    if configured:
        return Path(configured)
    demo = demo_bundle_path()
    if demo is None:
        raise BundleError(
            "no model bundle: pass --bundle DIR or set [model] bundle in the config "
            "(make one with 'asl-edge convert')"
        )
    return demo
