"""``asl-edge calibrate``: the INT8 models of a bundle, their accuracy report, and their provenance.

Writes ``model.int8.onnx`` (explicit QDQ, for TensorRT's INT8 build), ``model.openvino.int8.xml``
with its ``.bin`` (NNCF, for OpenVINO on x86 CPU kiosks; only where NNCF and OpenVINO are installed,
or when asked for, so that a Jetson makes its TensorRT model without them), ``int8_report.json`` and,
where TensorRT is installed, ``calibration.cache`` from its entropy calibrator (the legacy path),
and records them, with what they were calibrated and evaluated on and each accuracy gate's verdict, in the
manifest. Every stage reads its clips one at a time from the source (decoded again for each stage)
and reports its progress, so memory stays flat in ``--count``. The default validation set follows
the calibration source: a WLASL split's ``test`` subset, fresh synthetic clips (another seed) for
the synthetic signer, or the labelled folder itself.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from calibration.openvino_int8 import quantize_for_openvino
from calibration.progress import Progress
from calibration.qdq import quantize_to_qdq
from calibration.report import AccuracyReport, evaluate
from convert.sources import SYNTHETIC, ClipSourceError, open_source
from edge.core.bundle import (
    CALIBRATION_CACHE_FILE,
    INT8_MODEL_FILE,
    OPENVINO_INT8_FILE,
    OPENVINO_INT8_WEIGHTS_FILE,
    load_bundle,
    sha256_of,
    update_manifest,
)
from edge.core.errors import AslEdgeError
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
    min_agreement: float = 0.95
    method: str = "entropy"
    video_root: Path | None = None
    openvino: str = "auto"  # auto: where NNCF and OpenVINO are installed; yes: required; no: never


class OpenVinoMissing(AslEdgeError):
    """``--openvino yes`` where NNCF or OpenVINO is not installed."""


OPENVINO_MODES = ("auto", "yes", "no")
OPENVINO_PACKAGES = ("nncf", "openvino")


@dataclass
class Calibration:
    """What a calibration wrote, its accuracy report, and why the OpenVINO model was not made."""

    report: AccuracyReport
    written: list[str] = field(default_factory=list)
    openvino_skipped: str | None = None

    def summary(self, bundle_dir: Path) -> str:
        """What ``asl-edge calibrate`` prints on stdout after its progress."""
        lines = [self.report.table()]
        if self.openvino_skipped:
            lines.append(f"INT8 (OpenVINO, NNCF): skipped: {self.openvino_skipped}")
        first, *rest = self.written
        files = ", ".join([str(bundle_dir / first), *rest[:-1]]) + (f" and {rest[-1]}" if rest else "")
        lines.append(f"wrote {files}")
        return "\n".join(lines)


def openvino_skip_reason(mode: str) -> str | None:
    """Why the OpenVINO INT8 model is not made (None: it is); OpenVinoMissing for ``yes`` without it."""
    if mode == "no":
        return "--openvino no"
    missing = [name for name in OPENVINO_PACKAGES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    reason = f"{' and '.join(missing)} not installed (pip install 'asl-edge[calibrate]' for x86 CPU kiosks)"
    if mode == "yes":
        raise OpenVinoMissing(f"--openvino yes: {reason}")
    return reason


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


def calibrate_bundle(
    bundle_dir: Path, plan: CalibrationPlan, report_progress: Callable[[str], None] = lambda line: None
) -> Calibration:
    """Write the INT8 models and the accuracy report; each stage reports its progress. A skipped
    OpenVINO model leaves an earlier one, and its manifest entry, as they were."""
    bundle = load_bundle(bundle_dir)
    spec = bundle.spec
    openvino_skipped = openvino_skip_reason(plan.openvino)
    if openvino_skipped:
        report_progress(f"INT8 (OpenVINO, NNCF): skipped: {openvino_skipped}")

    def calibration_clips() -> Iterator[np.ndarray]:
        clips = open_source(plan.clips, spec, plan.count, CALIBRATION_SEED, "train", plan.video_root)
        return (c.clip for c in clips)

    stage = Progress("INT8 QDQ calibration (ONNX Runtime)", plan.count, report_progress)
    used = quantize_to_qdq(
        bundle.model_path,
        bundle_dir / INT8_MODEL_FILE,
        spec.input_name,
        calibration_clips(),
        plan.method,
        stage.step,
    )
    if not openvino_skipped:
        stage = Progress("INT8 calibration (OpenVINO, NNCF)", used, report_progress)
        quantize_for_openvino(
            bundle.model_path, bundle_dir / OPENVINO_INT8_FILE, calibration_clips, used, stage.step
        )
    source, subset = _validation_source(plan)
    validation = open_source(source, spec, plan.eval_count, VALIDATION_SEED, subset, plan.video_root)
    stage = Progress("accuracy", plan.eval_count, report_progress)
    report = evaluate(
        bundle.model_path,
        bundle_dir / INT8_MODEL_FILE,
        validation,
        spec.input_name,
        plan.margin,
        spec.labels,
        plan.min_agreement,
        openvino_int8_path=None if openvino_skipped else bundle_dir / OPENVINO_INT8_FILE,
        on_clip=stage.step,
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
    made = [INT8_MODEL_FILE] + ([] if openvino_skipped else [OPENVINO_INT8_FILE, OPENVINO_INT8_WEIGHTS_FILE])
    files = {name: sha256_of(bundle_dir / name) for name in made}
    if tensorrt_available():
        from edge.runtime.backends.tensorrt.calibrator import write_calibration_cache

        stage = Progress("TensorRT entropy calibration", used, report_progress)
        count = write_calibration_cache(bundle, stage.track(calibration_clips()))
        report.clips["tensorrt_cache"] = {"count": count}
        files[CALIBRATION_CACHE_FILE] = sha256_of(bundle_dir / CALIBRATION_CACHE_FILE)
    summary = report.to_dict()
    (bundle_dir / INT8_REPORT).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    sections: dict[str, object] = {
        "int8": {
            "model": INT8_MODEL_FILE,
            "report": INT8_REPORT,
            **report.clips,
            "int8_top1": report.int8_top1,
            "fp32_top1": report.fp32_top1,
            "agreement": report.agreement,
            "n": report.n,
            "verdict": report.verdict("int8"),
        },
    }
    if not openvino_skipped:
        sections["openvino"] = {
            "int8": {"model": OPENVINO_INT8_FILE, **summary["openvino"]["int8"]},  # type: ignore[index]
            "bf16": summary["openvino"]["bf16"],  # type: ignore[index]
        }
    update_manifest(bundle_dir, files=files, sections=sections)
    written = [INT8_MODEL_FILE]
    if not openvino_skipped:
        written.append(f"{OPENVINO_INT8_FILE} (.bin)")
    if CALIBRATION_CACHE_FILE in files:
        written.append(CALIBRATION_CACHE_FILE)
    return Calibration(report, [*written, INT8_REPORT], openvino_skipped)
