"""asl-edge evaluate and its gate: paired statistics on small field sets, a real improvement
(PASS), too little data (INCONCLUSIVE), a damaged candidate (FAIL), and the reports."""

import json
import re
import shutil

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from onnx.compose import add_prefix

from asl_edge.cli import main
from calibration.accuracy import Accuracy, Answer
from calibration.gate import FAIL, INCONCLUSIVE, PASS, GateRules, Paired, judge, sign_test_p
from edge.core.bundle import (
    DEMO_BUNDLE,
    LABELS_FILE,
    MODEL_FILE,
    load_bundle,
    sha256_of,
    update_manifest,
)
from edge.runtime.publish import gate_problem
from tests.field_dataset import write_field_dataset

LINEAGE = {"lineage": {"parent_model_id": "demo_i3d-bb6825e7", "replay": {"source": "synthetic", "seed": 0}}}


def _answers(truths, right):
    return [
        Answer(f"c{i}", t, (t,) if ok else ("other",))
        for i, (t, ok) in enumerate(zip(truths, right, strict=True))
    ]


def _verdict(baseline_right, candidate_right, regression=(1.0, 1.0), n_regression=120):
    truths = [f"w{i % 4}" for i in range(len(baseline_right))]
    candidate, baseline = _answers(truths, candidate_right), _answers(truths, baseline_right)
    reg_truths = [f"w{i % 12}" for i in range(n_regression)]
    reg = [
        Accuracy.of(_answers(reg_truths, [i < round(share * n_regression) for i in range(n_regression)]))
        for share in regression
    ]
    return judge(
        Paired.of(candidate, baseline),
        (Accuracy.of(candidate), Accuracy.of(baseline)),
        (reg[0], reg[1]),
        GateRules(),
    )


def test_sign_test_is_exact():
    assert sign_test_p(10, 0) == pytest.approx(1 / 1024)
    assert sign_test_p(4, 0) == 1 / 16
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(2, 2) == pytest.approx(11 / 16)


def test_gate_on_small_field_sets():
    # 8 of 20 right -> 18 of 20 right: ten fixed, none broken: PASS.
    verdict = _verdict([i < 8 for i in range(20)], [i < 18 for i in range(20)])
    assert verdict.verdict == PASS, verdict
    # The same, but the baseline is wrong on only 3 clips: no improvement could be significant.
    verdict = _verdict([i < 17 for i in range(20)], [True] * 20)
    assert verdict.verdict == INCONCLUSIVE
    assert "5 test clips the baseline gets wrong (about 34 at its 15% error rate)" in verdict.needed
    # Better but weakly: 3 fixed, 1 broken of 20.
    verdict = _verdict([i < 10 for i in range(20)], [0 < i < 12 or i == 19 for i in range(20)])
    assert verdict.verdict == INCONCLUSIVE and verdict.needed == "about 80 test clips at this rate of fixes"
    # Enough clips it could have fixed, and it fixed none: FAIL.
    assert _verdict([i < 8 for i in range(20)], [i < 8 for i in range(20)]).verdict == FAIL
    # A big improvement that costs 2 points on the regression source: FAIL, whatever the new data.
    verdict = _verdict([i < 8 for i in range(20)], [True] * 20, regression=(0.98, 1.0))
    assert verdict.verdict == FAIL and verdict.reasons[0].startswith("regression: loses 1.7 top-1 points")
    # A regression source too small to resolve one point: INCONCLUSIVE, with the count it needs.
    verdict = _verdict([i < 8 for i in range(20)], [True] * 20, n_regression=48)
    assert verdict.verdict == INCONCLUSIVE and verdict.needed == "100 regression clips (--regression-count)"


def test_a_class_that_drops_fails_the_gate_where_it_has_clips_enough():
    truths = ["a"] * 10 + ["b"] * 110
    baseline = Accuracy.of(_answers(truths, [True] * 120))
    candidate = Accuracy.of(_answers(truths, [i >= 2 for i in range(120)]))  # two 'a' clips lost
    new = _answers(["x"] * 20, [True] * 20)
    old = _answers(["x"] * 20, [False] * 20)
    verdict = judge(
        Paired.of(new, old),
        (Accuracy.of(new), Accuracy.of(old)),
        (candidate, baseline),
        GateRules(margin=0.02),
    )
    assert verdict.verdict == FAIL
    assert verdict.reasons == ["regression: 'a' drops 20 points (100% -> 80% of 10 clips; allowed 10%)"]


def mirror_aware_bundle(out):
    """A real improvement built without training: the demo model run on the clip and on its mirror
    image, taking the larger logit of each class; a left-handed signer is recognized as the
    right-handed signer the model knows."""
    plain, mirrored = (
        onnx.load(str(DEMO_BUNDLE / MODEL_FILE)),
        add_prefix(onnx.load(str(DEMO_BUNDLE / MODEL_FILE)), "m_"),
    )
    for node in plain.graph.node:
        node.output[:] = ["plain_logits" if name == "logits" else name for name in node.output]
    flip = [
        numpy_helper.from_array(np.array([v], np.int64), n)
        for n, v in (("s", -1), ("e", np.iinfo(np.int64).min), ("a", 4), ("p", -1))
    ]
    nodes = [
        helper.make_node("Slice", ["clip", "s", "e", "a", "p"], ["m_clip"]),
        *plain.graph.node,
        *mirrored.graph.node,
        helper.make_node("Max", ["plain_logits", "m_logits"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "mirror-aware", [plain.graph.input[0]], [plain.graph.output[0]],
        [*plain.graph.initializer, *mirrored.graph.initializer, *flip],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=plain.opset_import, ir_version=plain.ir_version)
    out.mkdir()
    onnx.save(model, str(out / MODEL_FILE))
    shutil.copy(DEMO_BUNDLE / LABELS_FILE, out / LABELS_FILE)
    manifest = json.loads((DEMO_BUNDLE / "manifest.json").read_text())
    manifest = {k: v for k, v in manifest.items() if k not in ("int8", "openvino", "checkpoint")}
    manifest["model_id"] = "demo-mirror-aware"
    manifest["files"] = {MODEL_FILE: {"sha256": sha256_of(out / MODEL_FILE)}}
    (out / "manifest.json").write_text(json.dumps({**manifest, **LINEAGE}))
    return out


@pytest.fixture(scope="module")
def field_test(tmp_path_factory):
    """16 left-handed clips, all in the test split: the new data of a real improvement."""
    folder = tmp_path_factory.mktemp("gate") / "left"
    dataset = write_field_dataset(
        folder, 2, seed=47, sentence_words=0, sizes=((320, 240),), subsets=("test",)
    )
    split = json.loads((dataset / "split.json").read_text())
    (dataset / "split.json").write_text(json.dumps(dict(sorted(split.items())[:16])))
    return dataset


@pytest.fixture(scope="module")
def few_tests(tmp_path_factory):
    """Three test clips: too few to show any improvement."""
    folder = tmp_path_factory.mktemp("gate") / "few"
    dataset = write_field_dataset(
        folder, 1, seed=48, sentence_words=0, sizes=((320, 240),), subsets=("test",)
    )
    split = json.loads((dataset / "split.json").read_text())
    (dataset / "split.json").write_text(json.dumps(dict(sorted(split.items())[:3])))
    return dataset


def _evaluate(candidate, dataset, report, *extra):
    return main(
        [
            "evaluate",
            str(candidate),
            "--baseline",
            str(DEMO_BUNDLE),
            "--dataset",
            str(dataset),
            "--report",
            str(report),
            *extra,
        ]
    )


@pytest.mark.slow  # evaluates two bundles on the CPU: seconds, not milliseconds
def test_a_real_improvement_passes_and_the_reports_open_offline(field_test, tmp_path, capsys):
    candidate = mirror_aware_bundle(tmp_path / "candidate")
    assert "has not passed" in gate_problem(load_bundle(candidate))
    assert (
        _evaluate(candidate, field_test, tmp_path / "report", "--regression-count", "20", "--margin", "0.05")
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("gate: PASS: new data: ")
    gate = load_bundle(candidate).manifest["gate"]
    assert gate["verdict"] == PASS and gate["model_sha256"] == sha256_of(candidate / MODEL_FILE)
    assert gate_problem(load_bundle(candidate)) is None
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    new = report["sets"]["new_data"]
    assert new["candidate"]["n"] == new["baseline"]["n"] == 16
    assert new["candidate"]["top1"] >= new["baseline"]["top1"] + 6
    assert sum(c["n"] for c in new["candidate"]["per_class"].values()) == 16
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4  # bars and confusion matrices, both sets
    assert not re.search(r"(?:src|href)=\"(?!data:)", page) and "http" not in page
    (candidate / LABELS_FILE).write_text((candidate / LABELS_FILE).read_text().replace("book", "books"))
    assert "labels.txt changed after" in gate_problem(load_bundle(candidate))


@pytest.mark.slow  # evaluates two bundles on the CPU: seconds, not milliseconds
def test_too_few_test_clips_are_inconclusive_and_say_how_many_are_needed(few_tests, tmp_path, capsys):
    candidate = mirror_aware_bundle(tmp_path / "candidate")
    assert _evaluate(candidate, few_tests, tmp_path / "r", "--regression-count", "12", "--margin", "0.1") == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("gate: INCONCLUSIVE: new data: the baseline is wrong on only")
    assert "needs 5 test clips the baseline gets wrong" in last
    assert load_bundle(candidate).manifest["gate"]["verdict"] == INCONCLUSIVE


@pytest.mark.slow  # evaluates two bundles on the CPU: seconds, not milliseconds
def test_a_candidate_with_rotated_labels_fails(few_tests, tmp_path, capsys):
    candidate = shutil.copytree(DEMO_BUNDLE, tmp_path / "rotated")
    labels = (candidate / LABELS_FILE).read_text().split()
    (candidate / LABELS_FILE).write_text("\n".join(labels[1:] + labels[:1]) + "\n")
    update_manifest(candidate, {}, LINEAGE)
    assert _evaluate(candidate, few_tests, tmp_path / "r", "--regression-count", "12", "--margin", "0.1") == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("gate: FAIL: regression: loses 100.0 top-1 points")
    assert load_bundle(candidate).manifest["gate"]["verdict"] == FAIL
