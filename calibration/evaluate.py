"""``asl-edge evaluate``: a fine-tuned candidate against its baseline, and the gate between them.

Both models answer the field dataset's ``test`` split (the new data) and a regression source (what
the baseline knew: by default the replay source in the candidate's lineage, on examples it was not
trained on: another seed of the synthetic signer, the test part of a folder or of a WLASL split),
through ONNX Runtime FP32. Answers are compared by gloss. The verdict (``calibration.gate``) is
recorded in the candidate's manifest with the sha256 of the model and labels it judged, so that
``asl-edge publish`` can tell that exactly this model passed; ``report.json`` and a self-contained
``report.html`` go into the report directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.accuracy import Accuracy, Answer, answer_clips
from calibration.comparison import Evaluation, SetResult
from calibration.gate import GateRules, Paired, judge
from calibration.progress import Progress
from calibration.runners import ort_runner
from convert.field_dataset import load_field_dataset
from convert.sources import SYNTHETIC, ClipSourceError, knows_synthetic_glosses, open_source, source_kind
from edge.core.atomic import atomic_write_text
from edge.core.bundle import (
    GATE_SECTION,
    LABELS_FILE,
    LINEAGE_SECTION,
    MODEL_FILE,
    Bundle,
    load_bundle,
    sha256_of,
    update_manifest,
)
from edge.runtime.backends.onnxruntime import default_threads

REGRESSION_SEED = 3_000
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class EvaluationPlan:
    candidate: Path
    baseline: Path
    dataset: Path
    regression: str | None = None  # None: the replay source in the candidate's lineage
    regression_count: int = 120
    report_dir: Path | None = None  # None: <candidate>.evaluation beside the bundle
    rules: GateRules = dataclasses.field(default_factory=GateRules)
    threads: int = 0


def regression_source(candidate: Bundle, given: str | None) -> tuple[str, int]:
    """(source, seed): ``given``, else the candidate's replay source; synthetic clips from a seed
    the candidate was not trained on."""
    lineage = candidate.manifest.get(LINEAGE_SECTION)
    replay = lineage.get("replay") if isinstance(lineage, dict) else None
    replayed = replay.get("source") if isinstance(replay, dict) else None
    trained_seed = replay.get("seed") if isinstance(replay, dict) else None
    source = given
    if source is None and isinstance(replayed, str) and replayed != "none":
        source = replayed
    if source is None and knows_synthetic_glosses(candidate.spec):
        source = SYNTHETIC
    if source is None:
        raise ClipSourceError(
            "the candidate's lineage names no replay source: pass --regression with what the baseline "
            "was trained on (a WLASL split nslt_N.json, a folder of labelled videos, 'synthetic')"
        )
    collides = source == replayed == SYNTHETIC and trained_seed == REGRESSION_SEED
    return source, REGRESSION_SEED + 1 if collides else REGRESSION_SEED


def _answers(
    bundles: dict[str, Bundle],
    what: str,
    source: str,
    count: int | None,
    seed: int,
    threads: int,
    report: Callable[[str], None],
) -> dict[str, list[Answer]]:
    """Each model's answers on the source's test examples; models that take the same inputs share
    each decoded clip."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, bundle in bundles.items():
        spec = bundle.spec
        groups.setdefault((spec.preprocessing, spec.sampling, spec.input_shape), []).append(name)
    answers: dict[str, list[Answer]] = {}
    for names in groups.values():
        spec = bundles[names[0]].spec
        clips = open_source(source, spec, count, seed, "test", hold_out=True)
        runners = {}
        for name in names:
            bundle = bundles[name]
            runners[name] = (
                ort_runner(bundle.model_path, bundle.spec.input_name, threads),
                bundle.spec.labels,
            )
        stage = Progress(f"{what} ({', '.join(names)})", count or 0, report)
        answers.update(answer_clips(runners, clips, stage.step))
    return answers


def _set_result(name: str, source: str, answers: dict[str, list[Answer]]) -> SetResult:
    return SetResult(
        name,
        source,
        Accuracy.of(answers["candidate"]),
        Accuracy.of(answers["baseline"]),
        Paired.of(answers["candidate"], answers["baseline"]),
    )


def evaluate_candidate(plan: EvaluationPlan, report: Callable[[str], None] = lambda line: None) -> Evaluation:
    """Run both models on both sets, judge, write the reports and record the verdict."""
    candidate, baseline = load_bundle(plan.candidate), load_bundle(plan.baseline)
    dataset = load_field_dataset(plan.dataset)
    regression, seed = regression_source(candidate, plan.regression)
    source_kind(regression)
    threads = plan.threads or default_threads()
    bundles = {"candidate": candidate, "baseline": baseline}
    tests = len(dataset.subset("test"))
    new_answers = _answers(bundles, "new data", str(dataset.root), tests, 0, threads, report)
    new = _set_result("new data", f"{dataset.root} (test split)", new_answers)
    old_answers = _answers(bundles, "regression", regression, plan.regression_count, seed, threads, report)
    old = _set_result("regression", regression, old_answers)
    verdict = judge(new.paired, (new.candidate, new.baseline), (old.candidate, old.baseline), plan.rules)
    report_dir = plan.report_dir or plan.candidate.with_name(plan.candidate.name + ".evaluation")
    record = {
        "verdict": verdict.verdict,
        "reasons": verdict.reasons,
        "needed": verdict.needed,
        "model_sha256": sha256_of(candidate.path / MODEL_FILE),
        "labels_sha256": sha256_of(candidate.path / LABELS_FILE),
        "model_id": candidate.spec.model_id,
        "baseline_model_id": baseline.spec.model_id,
        "dataset_version": dataset.version,
        "regression": {
            "source": regression,
            "seed": seed if source_kind(regression) == "synthetic" else None,
        },
        "rules": dataclasses.asdict(plan.rules),
        "new_data": {
            "n": new.paired.n,
            "candidate_top1": new.candidate.fraction("top1"),
            "baseline_top1": new.baseline.fraction("top1"),
        },
        "regression_top1": {
            "n": old.baseline.n,
            "candidate": old.candidate.fraction("top1"),
            "baseline": old.baseline.fraction("top1"),
        },
        "evaluated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "report": str(report_dir / REPORT_HTML),
    }
    result = Evaluation(
        candidate.spec.model_id, baseline.spec.model_id, new, old, verdict, report_dir, record
    )
    write_reports(result)
    update_manifest(candidate.path, files={}, sections={GATE_SECTION: record})
    return result


def write_reports(result: Evaluation) -> None:
    from calibration.report_page import render_page  # matplotlib: only when a report is written

    result.report_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "candidate": result.candidate_id,
        "baseline": result.baseline_id,
        "gate": result.record,
        "sets": {"new_data": result.new.to_dict(), "regression": result.regression.to_dict()},
    }
    atomic_write_text(result.report_dir / REPORT_JSON, json.dumps(data, indent=2) + "\n")
    atomic_write_text(result.report_dir / REPORT_HTML, render_page(result))


def summary_lines(result: Evaluation) -> list[str]:
    """The table the command prints; the last line is the verdict."""
    lines = [
        f"candidate {result.candidate_id} vs baseline {result.baseline_id}",
        "                       clips   top-1 baseline -> candidate   top-5 baseline -> candidate"
        "   fixed  broken  p(better)",
    ]
    for item in (result.new, result.regression):
        base, cand, paired = item.baseline, item.candidate, item.paired
        lines.append(
            f"  {item.name:18s} {base.n:6d}   {base.fraction('top1'):14.1%} -> {cand.fraction('top1'):7.1%}"
            f"   {base.fraction('top5'):14.1%} -> {cand.fraction('top5'):7.1%}"
            f"   {paired.wins:5d}  {paired.losses:6d}  {paired.p_better:9.3g}"
        )
    lines.append(f"wrote {result.report_dir / REPORT_HTML} and {REPORT_JSON}")
    verdict = result.verdict
    detail = "; ".join(verdict.reasons)
    if verdict.needed:
        detail += f"; needs {verdict.needed}"
    lines.append(f"gate: {verdict.verdict}: {detail}")
    return lines
