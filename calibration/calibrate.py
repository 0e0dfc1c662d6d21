"""``asl-edge calibrate``: the INT8 model of a bundle, its accuracy report, and its provenance.

Writes ``model.int8.onnx`` (explicit QDQ, for TensorRT's INT8 build), ``int8_report.json`` and,
where TensorRT is installed, ``calibration.cache`` from its entropy calibrator (the legacy path), and
records both, with what they were calibrated and evaluated on, in the manifest. The default
validation set follows the calibration source: a WLASL split's ``test`` subset, fresh synthetic
clips (another seed) for the synthetic signer, or the labelled folder itself.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from calibration.clips import SYNTHETIC, ClipSourceError, open_source
from calibration.qdq import quantize_to_qdq
from calibration.report import AccuracyReport, evaluate
from edge.core.bundle import CALIBRATION_CACHE_FILE, INT8_MODEL_FILE, load_bundle, sha256_of, update_manifest
from edge.runtime.backends.tensorrt.backend import tensorrt_available

log = logging.getLogger(__name__)

INT8_REPORT = "int8_report.json"
CALIBRATION_SEED = 1_000
VALIDATION_SEED = 2_000


@dataclass(frozen=True)
class CalibrationPlan:
    clips: str
    count: int = 64
    eval_source: str | None = None
    eval_count: int = 120
    margin: float = 0.01
    method: str = "entropy"
    video_root: Path | None = None


def _validation_source(plan: CalibrationPlan) -> tuple[str, str]:
    """(source, subset) of the labelled validation set."""
    if plan.eval_source:
        return plan.eval_source, "test"
    if plan.clips == SYNTHETIC or plan.clips.lower().endswith(".json"):
        return plan.clips, "test"
    if (Path(plan.clips) / "labels.csv").is_file():
        log.warning("validating on the calibration folder itself; pass --eval for a held-out set")
        return plan.clips, "test"
    raise ClipSourceError(
        f"{plan.clips} has no labels.csv: pass --eval with a labelled folder, a WLASL split or 'synthetic'"
    )


def calibrate_bundle(bundle_dir: Path, plan: CalibrationPlan) -> AccuracyReport:
    bundle = load_bundle(bundle_dir)
    spec = bundle.spec
    calibration = open_source(plan.clips, spec, plan.count, CALIBRATION_SEED, "train", plan.video_root)
    used = quantize_to_qdq(
        bundle.model_path,
        bundle_dir / INT8_MODEL_FILE,
        spec.input_name,
        (c.clip for c in calibration),
        plan.method,
    )
    source, subset = _validation_source(plan)
    validation = open_source(source, spec, plan.eval_count, VALIDATION_SEED, subset, plan.video_root)
    report = evaluate(
        bundle.model_path, bundle_dir / INT8_MODEL_FILE, validation, spec.input_name, plan.margin
    )
    report.clips = {
        "calibration": {
            "source": plan.clips,
            "subset": "train",
            "count": used,
            "method": plan.method,
            "seed": CALIBRATION_SEED if plan.clips == SYNTHETIC else None,
        },
        "validation": {
            "source": source,
            "subset": subset,
            "seed": VALIDATION_SEED if source == SYNTHETIC else None,
        },
    }
    files = {INT8_MODEL_FILE: sha256_of(bundle_dir / INT8_MODEL_FILE)}
    if tensorrt_available():
        from edge.runtime.backends.tensorrt.calibrator import write_calibration_cache

        clips = open_source(plan.clips, spec, plan.count, CALIBRATION_SEED, "train", plan.video_root)
        report.clips["tensorrt_cache"] = {"count": write_calibration_cache(bundle, (c.clip for c in clips))}
        files[CALIBRATION_CACHE_FILE] = sha256_of(bundle_dir / CALIBRATION_CACHE_FILE)
    (bundle_dir / INT8_REPORT).write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    update_manifest(
        bundle_dir,
        files=files,
        sections={
            "int8": {
                "model": INT8_MODEL_FILE,
                "report": INT8_REPORT,
                **report.clips,
                "int8_top1": report.int8_top1,
                "fp32_top1": report.fp32_top1,
                "agreement": report.agreement,
                "n": report.n,
            }
        },
    )
    return report
