"""``asl-edge verify``: does an engine compute what the FP32 ONNX model computes?

Runs two backends on the same clips and compares logits and top-1 decisions. On the Jetson the
candidate is the TensorRT engine and the reference ONNX Runtime FP32; the comparison itself is
plain Python, tested here with two ONNX Runtime backends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from convert.sources import SYNTHETIC, open_source, random_clips
from edge.core.bundle import load_bundle
from edge.core.decode import class_scores
from edge.core.errors import BackendError
from edge.runtime.backends.base import Backend

# (max relative logit difference, min top-1 agreement) an engine of each precision must meet.
TOLERANCES = {
    "fp32": (1e-3, 1.0),
    "fp16": (1e-2, 1.0),
    "bf16": (float("inf"), 0.95),
    "int8": (float("inf"), 0.95),
}


@dataclass(frozen=True)
class VerifyReport:
    clips: int
    max_abs_diff: float
    max_rel_diff: float
    top1_agreement: float
    precision: str

    @property
    def passed(self) -> bool:
        max_rel, min_agreement = TOLERANCES[self.precision]
        return self.clips > 0 and self.max_rel_diff <= max_rel and self.top1_agreement >= min_agreement

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> str:
        max_rel, min_agreement = TOLERANCES[self.precision]
        return (
            f"{self.precision} vs ONNX Runtime FP32 on {self.clips} clips: max abs diff "
            f"{self.max_abs_diff:.3g}, relative {self.max_rel_diff:.3g} (limit {max_rel:g}), top-1 "
            f"agreement {self.top1_agreement:.1%} (needs {min_agreement:.0%}): "
            + ("PASS" if self.passed else "FAIL")
        )


def compare_backends(
    candidate: Backend, reference: Backend, clips: Iterable[np.ndarray], precision: str
) -> VerifyReport:
    """Logit differences (relative to the reference's largest logit) and top-1 agreement."""
    if precision not in TOLERANCES:
        raise ValueError(f"precision must be one of {', '.join(TOLERANCES)}, got {precision!r}")
    count = agree = 0
    max_abs = max_ref = 0.0
    for clip in clips:
        expected = reference.infer(clip).copy()
        actual = candidate.infer(clip)
        count += 1
        max_abs = max(max_abs, float(np.abs(actual - expected).max()))
        max_ref = max(max_ref, float(np.abs(expected).max()))
        agree += int(class_scores(actual).argmax() == class_scores(expected).argmax())
    return VerifyReport(
        clips=count,
        max_abs_diff=max_abs,
        max_rel_diff=max_abs / max(max_ref, 1e-12),
        top1_agreement=agree / count if count else 0.0,
        precision=precision,
    )


def verify_engine(
    bundle_dir: Path, engine: str | None, clips: str | None, count: int
) -> tuple[Path, VerifyReport]:
    """This device's engine (or ``engine``) against ONNX Runtime FP32 on ``count`` clips: the named
    source, else synthetic-signer clips for a demo-like bundle, else smooth random clips."""
    from edge.demo.signer import GLOSSES
    from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
    from edge.runtime.backends.tensorrt.backend import TensorRTBackend, import_tensorrt
    from edge.runtime.backends.tensorrt.engines import current_device, read_sidecar, select_engine

    import_tensorrt()
    bundle = load_bundle(bundle_dir)
    path = Path(engine) if engine else select_engine(bundle.path, current_device(), bundle.checksums())
    if path is None:
        raise BackendError(f"no engine for this device in {bundle.path / 'engines'}; run 'asl-edge build'")
    source = clips or (SYNTHETIC if bundle.spec.labels == GLOSSES else None)
    inputs = open_source(source, bundle.spec, count) if source else random_clips(bundle.spec, count, 0)
    candidate = TensorRTBackend(bundle, path)
    reference = OnnxRuntimeBackend(bundle.model_path, bundle.spec)
    try:
        report = compare_backends(
            candidate, reference, (c.clip for c in inputs), read_sidecar(path).precision
        )
    finally:
        candidate.close()
        reference.close()
    return path, report
