"""``asl-edge convert``: checkpoint + class list to a verified model bundle.

Nothing is written into the bundle until the ONNX model has passed the parity check, and the
manifest is written last, so an interrupted or failed conversion never leaves a bundle that looks
valid.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from convert.checkpoint import load_checkpoint
from convert.export import (
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    ExportError,
    ParityReport,
    check_parity,
    export_onnx,
)
from convert.i3d import InceptionI3d
from convert.labels import load_labels
from edge import __version__
from edge.core.atomic import replacing
from edge.core.bundle import (
    CHECKPOINT_FILE,
    CHECKPOINT_SECTION,
    MODEL_FILE,
    Manifest,
    ModelSpec,
    sha256_of,
    write_bundle_metadata,
)
from edge.core.preprocess import PreprocessParams

log = logging.getLogger(__name__)

MIN_FRAMES = 16


@dataclass(frozen=True)
class ConversionResult:
    bundle: Path
    manifest: Manifest
    parity: ParityReport


def check_frames(frames: int) -> None:
    if frames < MIN_FRAMES or frames % 8:
        raise ExportError(
            f"--frames {frames}: the clip length must be a multiple of 8 and at least {MIN_FRAMES} "
            "(I3D downsamples time by 8 and needs 2 steps for its average pool); WLASL uses 64"
        )


def _static_output_shape(model: onnx.ModelProto) -> tuple[int, int, int]:
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    if len(dims) != 3 or not all(dims):
        raise ExportError(f"exported model has output shape {dims}, expected static (1, C, T')")
    return (dims[0], dims[1], dims[2])


def model_id_for(stem: str, onnx_sha256: str) -> str:
    """``<stem>-<first 8 hex digits of the ONNX file's sha256>``, with a stem safe in file names."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") or "i3d"
    return f"{stem}-{onnx_sha256[:8]}"


def write_bundle(
    model: InceptionI3d,
    glosses: list[str],
    frames: int,
    out: Path,
    model_stem: str,
    source: dict[str, Any],
    preprocessing: PreprocessParams | None = None,
    parity_clips: int = 3,
    sampling: str = "windows",
    extra: dict[str, Any] | None = None,
    checkpoint: Path | None = None,
) -> ConversionResult:
    """Export, verify and write a bundle of ``model``; ``checkpoint`` (its weights, saved by the
    caller) is copied in as ``checkpoint.pt`` and recorded with its sha256."""
    preprocessing = preprocessing or PreprocessParams()
    check_frames(frames)
    with replacing(out / MODEL_FILE, suffix=".onnx") as staged:
        exported = export_onnx(model, frames, staged, crop_size=preprocessing.crop_size)
        parity = check_parity(model, staged, clips=parity_clips)
        if not parity.passed:
            raise ExportError(
                f"ONNX Runtime disagrees with PyTorch: max abs diff {parity.max_abs_diff:.3g}, "
                f"relative {parity.max_rel_diff:.3g}, top-1 agreement {parity.top1_agreement:.0%}"
            )
    onnx_sha = sha256_of(out / MODEL_FILE)
    crop = preprocessing.crop_size
    spec = ModelSpec(
        input_name=INPUT_NAME,
        input_shape=(1, 3, frames, crop, crop),
        output_name=OUTPUT_NAME,
        output_shape=_static_output_shape(exported),
        labels=tuple(glosses),
        preprocessing=preprocessing,
        model_id=model_id_for(model_stem, onnx_sha),
        sampling=sampling,
    )
    sections: dict[str, Any] = {
        "tool": {"name": "asl-edge", "version": __version__},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    if checkpoint is not None:
        with replacing(out / CHECKPOINT_FILE, suffix=".pt") as staged:
            shutil.copyfile(checkpoint, staged)
        sections[CHECKPOINT_SECTION] = {"file": CHECKPOINT_FILE, "sha256": sha256_of(out / CHECKPOINT_FILE)}
    manifest = Manifest(
        spec=spec,
        files={MODEL_FILE: onnx_sha},
        source={
            **source,
            "architecture": "inception_i3d",
            "width": model.width,
            "opset": OPSET,
        },
        checks={"parity": parity.to_dict()},
        extra=sections,
    )
    write_bundle_metadata(out, manifest)
    return ConversionResult(bundle=out, manifest=manifest, parity=parity)


def convert_checkpoint(
    checkpoint: str | Path,
    labels: str | Path,
    frames: int,
    out_dir: str | Path,
    preprocessing: PreprocessParams | None = None,
    parity_clips: int = 3,
    sampling: str = "windows",
    keep_checkpoint: bool = False,
) -> ConversionResult:
    """Load, export, verify and write a bundle; raises on any failure with a one-line reason.
    ``keep_checkpoint`` copies the checkpoint into the bundle, for fine-tuning later."""
    checkpoint = Path(checkpoint)
    check_frames(frames)
    model = load_checkpoint(checkpoint)
    glosses = load_labels(labels, model.num_classes)
    log.info(
        "checkpoint: %d classes, width %g; exporting for %d frames", model.num_classes, model.width, frames
    )
    source = {
        "checkpoint": checkpoint.name,
        "checkpoint_sha256": sha256_of(checkpoint),
        "labels": Path(labels).name,
    }
    return write_bundle(
        model,
        glosses,
        frames,
        Path(out_dir),
        checkpoint.stem,
        source,
        preprocessing,
        parity_clips,
        sampling,
        checkpoint=checkpoint if keep_checkpoint else None,
    )
