"""Accuracy of reduced-precision models against FP32 on a labelled validation set.

INT8 (the QDQ model) and FP16 (an FP16 copy of the ONNX model, the CPU stand-in for TensorRT's
FP16 engine) run through ONNX Runtime on the same clips as FP32; the report gives top-1 and top-5
accuracy of each and how often each agrees with FP32's top-1.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.transformers.float16 import convert_float_to_float16

from calibration.clips import LabelledClip
from edge.core.decode import class_scores
from edge.runtime.backends.onnxruntime import session_options


@dataclass
class PrecisionScore:
    """Counts for one precision; fractions are derived from them."""

    top1: int = 0
    top5: int = 0
    agree: int = 0


@dataclass
class AccuracyReport:
    n: int
    fp32_top1: float
    fp32_top5: float
    int8_top1: float
    int8_top5: float
    agreement: float
    fp16_top1: float
    fp16_top5: float
    fp16_agreement: float
    margin: float
    clips: dict[str, object] = field(default_factory=dict)

    @property
    def int8_loss(self) -> float:
        """Top-1 points (as a fraction) lost by INT8 against FP32."""
        return self.fp32_top1 - self.int8_top1

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.int8_loss <= self.margin + 1e-12

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "int8_loss": round(self.int8_loss, 6), "passed": self.passed}

    def table(self) -> str:
        rows = [
            f"accuracy on {self.n} labelled clips   top-1    top-5    agrees with FP32",
            f"  FP32 (ONNX Runtime)            {self.fp32_top1:7.1%}  {self.fp32_top5:7.1%}",
            f"  INT8 QDQ (ONNX Runtime)        {self.int8_top1:7.1%}  {self.int8_top5:7.1%}  "
            f"{self.agreement:7.1%}",
            f"  FP16 (ONNX Runtime)            {self.fp16_top1:7.1%}  {self.fp16_top5:7.1%}  "
            f"{self.fp16_agreement:7.1%}",
            f"INT8 loses {self.int8_loss * 100:.1f} top-1 points (allowed {self.margin * 100:.1f}): "
            + ("PASS" if self.passed else "FAIL"),
        ]
        return "\n".join(rows)


def write_fp16_model(model_path: Path, output_path: Path) -> None:
    """An FP16 copy of the model with float32 inputs and outputs."""
    model = convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=True)
    onnx.save(model, str(output_path))


def _session(path: Path, threads: int) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def evaluate(
    fp32_path: Path,
    int8_path: Path,
    clips: Iterable[LabelledClip],
    input_name: str,
    margin: float,
    threads: int = 0,
) -> AccuracyReport:
    """Run FP32, INT8 and FP16 on every labelled clip; unlabelled clips are skipped."""
    from edge.runtime.backends.onnxruntime import default_threads

    threads = threads or default_threads()
    with tempfile.TemporaryDirectory(prefix="asl-edge-fp16-") as folder:
        fp16_path = Path(folder) / "model.fp16.onnx"
        write_fp16_model(fp32_path, fp16_path)
        sessions = {
            name: _session(path, threads)
            for name, path in (("fp32", fp32_path), ("int8", int8_path), ("fp16", fp16_path))
        }
        scores = {name: PrecisionScore() for name in sessions}
        n = 0
        for item in clips:
            if item.label is None:
                continue
            n += 1
            fp32_best = -1
            for name, session in sessions.items():
                ranked = np.argsort(-class_scores(session.run(None, {input_name: item.clip})[0]))
                score = scores[name]
                score.top1 += int(ranked[0] == item.label)
                score.top5 += int(item.label in ranked[:5])
                if name == "fp32":
                    fp32_best = int(ranked[0])
                score.agree += int(ranked[0] == fp32_best)
    fraction = (lambda count: count / n) if n else (lambda count: 0.0)
    return AccuracyReport(
        n=n,
        fp32_top1=fraction(scores["fp32"].top1),
        fp32_top5=fraction(scores["fp32"].top5),
        int8_top1=fraction(scores["int8"].top1),
        int8_top5=fraction(scores["int8"].top5),
        agreement=fraction(scores["int8"].agree),
        fp16_top1=fraction(scores["fp16"].top1),
        fp16_top5=fraction(scores["fp16"].top5),
        fp16_agreement=fraction(scores["fp16"].agree),
        margin=margin,
    )
