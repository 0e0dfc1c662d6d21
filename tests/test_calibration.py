"""INT8 calibration: clip sources, a TensorRT-shaped QDQ model, and the accuracy report."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from asl_edge.cli import main
from calibration.qdq import QuantizationError, check_tensorrt_compatible, quantize_to_qdq
from convert.sources import ClipSourceError, clips_from_frames, open_source
from edge.core.bundle import DEMO_BUNDLE, load_bundle
from edge.demo.signer import GLOSSES
from tests.conftest import moving_blob_frames, write_video

ROOT_BUNDLE = DEMO_BUNDLE


@pytest.fixture(scope="module")
def demo_spec():
    return load_bundle(ROOT_BUNDLE).spec


@pytest.fixture
def demo_copy(tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(ROOT_BUNDLE, target)
    for name in ("model.int8.onnx", "int8_report.json", "model.openvino.int8.xml", "model.openvino.int8.bin"):
        (target / name).unlink(missing_ok=True)
    return target


def test_synthetic_source_is_deterministic_and_labelled(demo_spec):
    first = list(open_source("synthetic", demo_spec, 3, seed=5))
    again = list(open_source("synthetic", demo_spec, 3, seed=5))
    other = list(open_source("synthetic", demo_spec, 3, seed=6))
    assert [c.label for c in first] == [0, 1, 2]
    assert first[0].clip.shape == (1, 3, 32, 224, 224)
    assert all(np.array_equal(a.clip, b.clip) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].clip, other[0].clip)


def test_synthetic_source_refuses_other_label_sets(tiny_bundle):
    with pytest.raises(ClipSourceError, match="synthetic signer's 12 glosses"):
        list(open_source("synthetic", load_bundle(tiny_bundle).spec, 2))


def test_clips_are_the_model_inputs_the_runtime_builds(demo_spec, tiny_bundle):
    frames = moving_blob_frames(70)
    (resampled,) = clips_from_frames(frames, demo_spec)
    assert resampled.shape == (1, 3, 32, 224, 224)
    windowed_spec = load_bundle(tiny_bundle).spec  # windows of 16
    windowed = clips_from_frames(frames, windowed_spec)
    # Four consecutive windows and one aligned to the end, as recognize and the daemon run them.
    assert len(windowed) == 5
    assert np.array_equal(windowed[1], clips_from_frames(frames[16:32], windowed_spec)[0])
    assert np.array_equal(windowed[4], clips_from_frames(frames[54:70], windowed_spec)[0])
    (short,) = clips_from_frames(frames[:4], windowed_spec)
    assert np.array_equal(short[:, :, 3], short[:, :, 15])


def test_folder_source_reads_labels_and_skips_bad_videos(demo_spec, tmp_path, caplog):
    write_video(tmp_path / "a.mp4", moving_blob_frames(20, seed=1))
    write_video(tmp_path / "b.mp4", moving_blob_frames(20, seed=2))
    (tmp_path / "c.mp4").write_bytes(b"broken")
    (tmp_path / "labels.csv").write_text("file,word\na.mp4,book\nb.mp4,fine\nc.mp4,go\n")
    clips = list(open_source(str(tmp_path), demo_spec, 10))
    assert [(c.name, c.label) for c in clips] == [("a.mp4", 0), ("b.mp4", GLOSSES.index("fine"))]
    assert "skipping c.mp4" in caplog.text
    (tmp_path / "labels.csv").write_text("file,word\na.mp4,banana\n")
    with pytest.raises(ClipSourceError, match="'banana' is not one of the model's labels"):
        list(open_source(str(tmp_path), demo_spec, 10))


def test_wlasl_split_source_uses_the_subset_and_frame_range(demo_spec, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for video_id, seed in (("00001", 1), ("00002", 2), ("00003", 3)):
        write_video(videos / f"{video_id}.mp4", moving_blob_frames(40, seed=seed))
    split = {
        "00001": {"subset": "train", "action": [4, 1, 40]},
        "00002": {"subset": "test", "action": [7, 5, 30]},
        "00003": {"subset": "train", "action": [11, 0, 0]},
        "00009": {"subset": "train", "action": [1, 1, 10]},  # video missing: skipped
    }
    (tmp_path / "nslt_12.json").write_text(json.dumps(split))
    train = list(open_source(str(tmp_path / "nslt_12.json"), demo_spec, 10))
    assert [(c.name, c.label) for c in train] == [("00001", 4), ("00003", 11)]
    test = list(open_source(str(tmp_path / "nslt_12.json"), demo_spec, 10, subset="test"))
    assert [(c.name, c.label) for c in test] == [("00002", 7)]
    split["00001"]["action"] = [40, 1, 2]
    (tmp_path / "nslt_12.json").write_text(json.dumps(split))
    with pytest.raises(ClipSourceError, match="class 40; the model has 12"):
        list(open_source(str(tmp_path / "nslt_12.json"), demo_spec, 10))


def test_unknown_source_is_a_clear_error(demo_spec, tmp_path):
    with pytest.raises(ClipSourceError, match="not 'synthetic', a folder of videos, a WLASL split file"):
        open_source(str(tmp_path / "nope"), demo_spec, 1)


@pytest.mark.slow
def test_qdq_model_is_symmetric_per_channel_and_close_to_fp32(demo_spec, tmp_path):
    clips = [c.clip for c in open_source("synthetic", demo_spec, 6, seed=1)]
    used = quantize_to_qdq(load_bundle(ROOT_BUNDLE).model_path, tmp_path / "q.onnx", "clip", clips)
    assert used == 6
    model = onnx.load(str(tmp_path / "q.onnx"))
    assert {o.domain for o in model.opset_import} == {""}
    assert model.opset_import[0].version >= 13
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Conv") == 58
    assert ops.count("QuantizeLinear") >= 58 - 1
    initializers = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_dq = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        and n.input[0] in initializers
        and initializers[n.input[0]].ndim == 5
    ]
    assert len(weight_dq) == 58
    for node in weight_dq:
        weights, scales = initializers[node.input[0]], initializers[node.input[1]]
        assert weights.dtype == np.int8
        assert weights.min() >= -127
        assert scales.shape == (weights.shape[0],)  # per output channel
        assert not np.any(initializers[node.input[2]])
    fp32 = ort.InferenceSession(str(load_bundle(ROOT_BUNDLE).model_path))
    int8 = ort.InferenceSession(str(tmp_path / "q.onnx"))
    for clip in clips[:3]:
        a, b = fp32.run(None, {"clip": clip})[0], int8.run(None, {"clip": clip})[0]
        assert a.mean(-1).argmax() == b.mean(-1).argmax()
        assert np.abs(a - b).max() < 0.25 * np.abs(a).max()


def test_compatibility_check_rejects_asymmetric_zero_points(tmp_path):
    from onnx import TensorProto, helper

    zero_point = helper.make_tensor("zp", TensorProto.UINT8, [], [128])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"], name="q")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1])],
        [scale, zero_point],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(QuantizationError, match="zero point must be int8 0"):
        check_tensorrt_compatible(model)
    model.opset_import[0].version = 11
    with pytest.raises(QuantizationError, match="opset 11"):
        check_tensorrt_compatible(model)


@pytest.mark.slow
def test_calibrate_command_writes_both_int8_models_report_and_manifest(demo_copy, capsys):
    options = ["--count", "4", "--eval-count", "12", "--margin", "0.1", "--min-agreement", "0.9"]
    code = main(["calibrate", str(demo_copy), "--clips", "synthetic", *options])
    captured = capsys.readouterr()
    assert code == 0, captured.out
    assert "INT8 QDQ (for TensorRT)" in captured.out
    assert "INT8 (OpenVINO, NNCF): loses 0.0 top-1 points, agrees 100.0%: PASS" in captured.out
    # Progress of each stage on stderr: clips done, elapsed, and at the end the total.
    progress = captured.err.splitlines()
    for stage, total in (("INT8 QDQ calibration (ONNX Runtime)", 4), ("accuracy", 12)):
        assert (
            f"asl-edge: {stage}: 1/{total} clips"
            in progress[[stage in line for line in progress].index(True)]
        )
        assert any(line.startswith(f"asl-edge: {stage}: {total}/{total} clips, ") for line in progress)
    assert any("about" in line and "left" in line for line in progress)
    report = json.loads((demo_copy / "int8_report.json").read_text())
    assert (report["n"], report["verdict"], report["caveats"]) == (12, "PASS", [])
    for key in ("fp32_top1", "int8_top1", "agreement", "fp16_top1", "fp16_agreement"):
        assert 0.0 <= report[key] <= 1.0
    assert report["int8_top1"] >= report["fp32_top1"] - 0.1
    assert report["openvino"]["int8"]["verdict"] == "PASS"
    assert report["clips"]["calibration"] == {
        "source": "synthetic",
        "subset": "train",
        "count": 4,
        "method": "entropy",
        "seed": 1000,
    }
    bundle = load_bundle(demo_copy)
    for name in ("model.int8.onnx", "model.openvino.int8.xml", "model.openvino.int8.bin"):
        bundle.verify_file(name)
    assert bundle.manifest["int8"]["n"] == 12
    assert bundle.manifest["openvino"]["int8"]["passed"] is True
    assert bundle.manifest["openvino"]["int8"]["model"] == "model.openvino.int8.xml"


@pytest.mark.slow
def test_calibrate_on_too_few_clips_is_inconclusive_not_a_pass(demo_copy, capsys):
    code = main(["calibrate", str(demo_copy), "--clips", "synthetic", "--count", "1", "--eval-count", "2"])
    out = capsys.readouterr().out
    assert code == 1
    assert "INCONCLUSIVE because only 2 validation clips" in out
    report = json.loads((demo_copy / "int8_report.json").read_text())
    assert (report["verdict"], report["passed"]) == ("INCONCLUSIVE", False)
    assert load_bundle(demo_copy).manifest["openvino"]["int8"]["passed"] is False


@pytest.mark.slow
def test_without_openvino_only_the_tensorrt_model_is_made_and_the_skip_is_said(demo_copy, capsys):
    openvino_section = load_bundle(demo_copy).manifest["openvino"]
    options = ["--count", "1", "--eval-count", "2", "--openvino", "no"]
    assert main(["calibrate", str(demo_copy), "--clips", "synthetic", *options]) == 1  # 2 clips: inconclusive
    captured = capsys.readouterr()
    assert "asl-edge: INT8 (OpenVINO, NNCF): skipped: --openvino no" in captured.err
    assert "NNCF" not in captured.err.replace("INT8 (OpenVINO, NNCF): skipped", "")
    lines = captured.out.splitlines()
    assert lines[-2:] == [
        "INT8 (OpenVINO, NNCF): skipped: --openvino no",
        f"wrote {demo_copy / 'model.int8.onnx'} and int8_report.json",
    ]
    assert not any(line.startswith("  INT8 (OpenVINO") for line in lines)
    assert not (demo_copy / "model.openvino.int8.xml").exists()
    bundle = load_bundle(demo_copy)
    assert bundle.manifest["openvino"] == openvino_section
    assert bundle.manifest["int8"]["n"] == 2
    assert json.loads((demo_copy / "int8_report.json").read_text())["openvino"] == {}


def test_openvino_yes_without_nncf_is_refused_before_any_work(demo_copy, capsys, monkeypatch):
    from calibration import calibrate

    monkeypatch.setattr(calibrate, "OPENVINO_PACKAGES", ("nncf-that-is-not-installed",))
    assert calibrate.openvino_skip_reason("auto") == (
        "nncf-that-is-not-installed not installed (pip install 'asl-edge[calibrate]' for x86 CPU kiosks)"
    )
    assert main(["calibrate", str(demo_copy), "--clips", "synthetic", "--openvino", "yes"]) == 2
    assert "--openvino yes: nncf-that-is-not-installed not installed" in capsys.readouterr().err
    assert calibrate.openvino_skip_reason("no") == "--openvino no"


def test_calibrate_errors_are_one_line(demo_copy, tmp_path, capsys):
    assert main(["calibrate", str(demo_copy), "--clips", str(tmp_path / "missing")]) == 2
    assert main(["calibrate", str(tmp_path / "nobundle"), "--clips", "synthetic"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert "not 'synthetic', a folder of videos" in errors[0]
    assert "bundle directory not found" in errors[1]


def test_streaming_qdq_is_what_quantize_static_writes(tiny_bundle, tmp_path):
    """MinMax merges exactly, so one-clip-at-a-time calibration must give quantize_static's file."""
    import contextlib
    import io

    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from calibration.qdq import QDQ_OPTIONS
    from convert.onnx_tools import keep_used_opsets
    from convert.sources import random_clips

    bundle = load_bundle(tiny_bundle)
    clips = [c.clip for c in random_clips(bundle.spec, 3, seed=5)]
    assert quantize_to_qdq(bundle.model_path, tmp_path / "streamed.onnx", "clip", clips, "minmax") == 3

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._clips = iter(clips)

        def get_next(self):
            clip = next(self._clips, None)
            return None if clip is None else {"clip": clip}

    quant_pre_process(str(bundle.model_path), str(tmp_path / "prepared.onnx"))
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(
            str(tmp_path / "prepared.onnx"),
            str(tmp_path / "whole.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv"],
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options=QDQ_OPTIONS,
        )
    whole = onnx.load(str(tmp_path / "whole.onnx"))
    keep_used_opsets(whole)
    assert onnx.load(str(tmp_path / "streamed.onnx")).SerializeToString() == whole.SerializeToString()


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_calibration_takes_one_clip_at_a_time(tiny_bundle, tmp_path, method):
    """Each clip's statistics are merged before the next clip is read: the source is never read
    ahead, so memory holds one clip's activations whatever the count."""
    from convert.sources import random_clips

    bundle = load_bundle(tiny_bundle)
    events = []

    def source():
        for index, item in enumerate(random_clips(bundle.spec, 3, seed=6)):
            events.append(("read", index))
            yield item.clip

    quantize_to_qdq(
        bundle.model_path, tmp_path / "q.onnx", "clip", source(), method, lambda: events.append(("merged",))
    )
    assert events == [("read", 0), ("merged",), ("read", 1), ("merged",), ("read", 2), ("merged",)]
    check_tensorrt_compatible(onnx.load(str(tmp_path / "q.onnx")))


def _report(n=200, classes=12, fp32=190, int8=188, agree=196, margin=0.01, min_agreement=0.95, **extra):
    from calibration.report import AccuracyReport, PrecisionScore

    scores = {"fp32": PrecisionScore(fp32, fp32, 0), "int8": PrecisionScore(int8, int8, agree)}
    scores["fp16"] = PrecisionScore(fp32, fp32, n)
    return AccuracyReport(n, classes, margin, min_agreement, scores, **extra)


def test_gate_passes_a_faithful_int8_model():
    report = _report()
    assert report.verdict("int8") == "PASS"
    assert report.passed and report.all_passed
    assert report.caveats == []
    assert report.to_dict()["verdict"] == "PASS"


def test_gate_fails_on_loss_and_on_disagreement():
    assert _report(int8=180).verdict("int8") == "FAIL"  # loses 5 points
    # Agrees with FP32 on a quarter of the clips and loses nothing: FP32 is as wrong as INT8 there.
    lookalike = _report(n=200, classes=12, fp32=50, int8=50, agree=50)
    assert lookalike.verdict("int8") == "FAIL"
    assert "agrees 25.0%: FAIL" in lookalike.table()


def test_gate_is_inconclusive_on_too_few_clips_or_a_model_at_chance():
    small = _report(n=12, fp32=12, int8=12, agree=12)
    assert small.verdict("int8") == "INCONCLUSIVE"
    assert not small.passed
    assert "only 12 validation clips" in small.caveats[0]
    assert "use 100 or more" in small.caveats[0]
    chance = _report(n=240, classes=100, fp32=3, int8=3, agree=240)
    assert chance.verdict("int8") == "INCONCLUSIVE"
    assert "no better than chance (1.0% for 100 classes" in chance.caveats[0]
    assert "INCONCLUSIVE because FP32 top-1 is 1.2%" in chance.table()
    # A clear failure stays a failure however weak the evidence.
    assert _report(n=12, fp32=12, int8=6, agree=6).verdict("int8") == "FAIL"


def test_progress_reports_clips_elapsed_and_time_left():
    from calibration.progress import Progress

    now = [100.0]
    lines = []
    progress = Progress("stage", 4, lines.append, every_s=5.0, clock=lambda: now[0])
    for step_s in (10.0, 2.0, 3.0, 1.0):
        now[0] += step_s
        progress.step()
    assert lines == [
        "stage: 1/4 clips, 10s elapsed, about 30s left",
        "stage: 3/4 clips, 15s elapsed, about 5s left",
        "stage: 4/4 clips, 16s elapsed",
    ]
