"""Accuracy of reduced-precision models against FP32 on a labelled validation set, and the gate.

On the same clips as FP32 (ONNX Runtime): the INT8 QDQ model, an FP16 copy of the ONNX model,
OpenVINO's INT8 model, and OpenVINO BF16 where this CPU has BF16 (how each runs:
``calibration.runners``; how answers are counted: ``calibration.accuracy``). Each
reduced precision passes its gate when it loses at most ``margin`` top-1 against FP32 and agrees
with FP32's top-1 on at least ``min_agreement`` of the clips: agreement catches a model that is
wrong where FP32 is wrong too, which a loss alone cannot see. A verdict on too few clips, or on a
model whose FP32 accuracy is no better than chance, means nothing: it is INCONCLUSIVE, not PASS.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from calibration.accuracy import answer_clips
from calibration.gate import FAIL, INCONCLUSIVE, PASS
from calibration.runners import openvino_runners, ort_runner, write_fp16_model
from convert.sources import LabelledClip
from edge.runtime.backends.onnxruntime import default_threads

# FP32 top-1 counts as better than chance when it would happen by guessing with probability below this.
CHANCE_P_VALUE = 0.01
# Where each reduced precision is recorded: the QDQ model's keys stay flat (int8_*, agreement), as
# they always were; OpenVINO's under "openvino".
GATED = ("int8", "openvino_int8", "openvino_bf16")
LABELS = {
    "fp32": "FP32 (ONNX Runtime)",
    "int8": "INT8 QDQ (for TensorRT)",
    "fp16": "FP16 (ONNX Runtime)",
    "openvino_int8": "INT8 (OpenVINO, NNCF)",
    "openvino_bf16": "BF16 (OpenVINO)",
}


@dataclass
class PrecisionScore:
    """Counts for one precision; fractions are derived from them."""

    top1: int = 0
    top5: int = 0
    agree: int = 0


def chance_p_value(correct: int, n: int, classes: int) -> float:
    """Probability of at least ``correct`` right of ``n`` by guessing among ``classes``."""
    p = 1.0 / classes
    return min(1.0, sum(math.comb(n, k) * p**k * (1.0 - p) ** (n - k) for k in range(correct, n + 1)))


def clips_needed(tolerance: float) -> int:
    """Clips for one clip to weigh no more than ``tolerance`` (0: no resolution limit applies)."""
    return math.ceil(1.0 / tolerance - 1e-9) if tolerance > 0 else 0


@dataclass
class AccuracyReport:
    n: int
    num_classes: int
    margin: float
    min_agreement: float
    scores: dict[str, PrecisionScore]
    not_measured: dict[str, str] = field(default_factory=dict)
    clips: dict[str, object] = field(default_factory=dict)

    def fraction(self, name: str, what: str) -> float:
        return getattr(self.scores[name], what) / self.n if self.n else 0.0

    @property
    def fp32_top1(self) -> float:
        return self.fraction("fp32", "top1")

    @property
    def int8_top1(self) -> float:
        return self.fraction("int8", "top1")

    @property
    def agreement(self) -> float:
        return self.fraction("int8", "agree")

    def loss(self, name: str) -> float:
        """Top-1 points (as a fraction) ``name`` loses against FP32."""
        return self.fp32_top1 - self.fraction(name, "top1")

    @property
    def int8_loss(self) -> float:
        return self.loss("int8")

    @property
    def caveats(self) -> list[str]:
        """Why a verdict on this validation set would mean nothing (empty when it means something)."""
        if self.n == 0:
            return ["no labelled validation clips"]
        reasons = []
        needed = max(clips_needed(self.margin), clips_needed(1.0 - self.min_agreement))
        if self.n < needed:
            reasons.append(
                f"only {self.n} validation clips: one clip moves top-1 by {100 / self.n:.1f} points, "
                f"coarser than the gate (margin {self.margin * 100:.1f} points, agreement "
                f"{self.min_agreement:.1%}); use {needed} or more (--eval-count)"
            )
        correct = self.scores["fp32"].top1
        p_value = chance_p_value(correct, self.n, self.num_classes)
        if p_value > CHANCE_P_VALUE:
            reasons.append(
                f"FP32 top-1 is {self.fp32_top1:.1%}, no better than chance ({1 / self.num_classes:.1%} "
                f"for {self.num_classes} classes, p={p_value:.2f}): wrong labels or an untrained model, "
                "so accuracy losses mean nothing"
            )
        return reasons

    def verdict(self, name: str) -> str:
        if name in self.not_measured:
            return INCONCLUSIVE
        if self.n and (
            self.loss(name) > self.margin + 1e-12 or self.fraction(name, "agree") < self.min_agreement - 1e-12
        ):
            return FAIL
        return INCONCLUSIVE if self.caveats else PASS

    @property
    def passed(self) -> bool:
        """The QDQ (TensorRT) model's gate."""
        return self.verdict("int8") == PASS

    @property
    def all_passed(self) -> bool:
        """Every reduced precision measured here passed its gate."""
        measured = [name for name in GATED if name in self.scores and name not in self.not_measured]
        return all(self.verdict(name) == PASS for name in measured)

    def _entry(self, name: str) -> dict[str, object]:
        if name in self.not_measured:
            return {"measured": False, "reason": self.not_measured[name], "passed": None}
        return {
            "top1": self.fraction(name, "top1"),
            "top5": self.fraction(name, "top5"),
            "agreement": self.fraction(name, "agree"),
            "loss": round(self.loss(name), 6),
            "verdict": self.verdict(name),
            "passed": self.verdict(name) == PASS,
        }

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "n": self.n,
            "num_classes": self.num_classes,
            "fp32_top1": self.fp32_top1,
            "fp32_top5": self.fraction("fp32", "top5"),
            "int8_top1": self.int8_top1,
            "int8_top5": self.fraction("int8", "top5"),
            "agreement": self.agreement,
            "fp16_top1": self.fraction("fp16", "top1"),
            "fp16_top5": self.fraction("fp16", "top5"),
            "fp16_agreement": self.fraction("fp16", "agree"),
            "margin": self.margin,
            "min_agreement": self.min_agreement,
            "int8_loss": round(self.int8_loss, 6),
            "verdict": self.verdict("int8"),
            "passed": self.passed,
            "caveats": self.caveats,
            "openvino": {
                name.removeprefix("openvino_"): self._entry(name)
                for name in ("openvino_int8", "openvino_bf16")
                if name in self.scores or name in self.not_measured
            },
            "clips": self.clips,
        }
        return data

    def table(self) -> str:
        rows = [f"accuracy on {self.n} labelled clips          top-1    top-5    agrees with FP32"]
        for name in self.scores:
            if name in self.not_measured:
                rows.append(f"  {LABELS[name]:37s} not measured: {self.not_measured[name]}")
                continue
            row = (
                f"  {LABELS[name]:37s} {self.fraction(name, 'top1'):7.1%}  {self.fraction(name, 'top5'):7.1%}"
            )
            if name != "fp32":
                row += f"  {self.fraction(name, 'agree'):7.1%}"
            rows.append(row)
        rows.append(
            f"gate: lose at most {self.margin * 100:.1f} top-1 points and agree with FP32 on at least "
            f"{self.min_agreement:.1%} of the clips"
        )
        for name in GATED:
            if name in self.scores and name not in self.not_measured:
                rows.append(
                    f"{LABELS[name]}: loses {self.loss(name) * 100:.1f} top-1 points, agrees "
                    f"{self.fraction(name, 'agree'):.1%}: {self.verdict(name)}"
                )
        rows += [f"INCONCLUSIVE because {reason}" for reason in self.caveats]
        return "\n".join(rows)


def evaluate(
    fp32_path: Path,
    int8_path: Path,
    clips: Iterable[LabelledClip],
    input_name: str,
    margin: float,
    labels: tuple[str, ...],
    min_agreement: float = 0.95,
    openvino_int8_path: Path | None = None,
    threads: int = 0,
    on_clip: Callable[[], None] = lambda: None,
) -> AccuracyReport:
    """Run every precision on every labelled clip (unlabelled clips are skipped), one clip at a time."""
    threads = threads or default_threads()
    with tempfile.TemporaryDirectory(prefix="asl-edge-fp16-") as folder:
        fp16_path = Path(folder) / "model.fp16.onnx"
        write_fp16_model(fp32_path, fp16_path)
        runners = {
            "fp32": ort_runner(fp32_path, input_name, threads),
            "int8": ort_runner(int8_path, input_name, threads, simulate_qdq=True),
            "fp16": ort_runner(fp16_path, input_name, threads),
        }
        not_measured: dict[str, str] = {}
        if openvino_int8_path is not None:
            openvino, not_measured = openvino_runners(fp32_path, openvino_int8_path, threads)
            runners.update(openvino)
        labelled = (item for item in clips if item.label is not None)
        answers = answer_clips({name: (run, labels) for name, run in runners.items()}, labelled, on_clip)
    reference = [answer.ranked[0] for answer in answers["fp32"]]
    scores = {name: PrecisionScore() for name in (*runners, *not_measured)}
    for name, given in answers.items():
        scores[name] = PrecisionScore(
            top1=sum(a.top1 for a in given),
            top5=sum(a.top5 for a in given),
            agree=sum(a.ranked[0] == best for a, best in zip(given, reference, strict=True)),
        )
    return AccuracyReport(len(reference), len(labels), margin, min_agreement, scores, not_measured)
