"""INT8 calibration: clip sources, a TensorRT-shaped QDQ model, and the accuracy report."""

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from asl_edge.cli import main
from calibration.clips import ClipSourceError, clips_from_frames, open_source
from calibration.qdq import QuantizationError, check_tensorrt_compatible, quantize_to_qdq
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
    for name in ("model.int8.onnx", "int8_report.json"):
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
    with pytest.raises(ClipSourceError, match="not 'synthetic', a folder of videos, or a WLASL split"):
        open_source(str(tmp_path / "nope"), demo_spec, 1)


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


def test_calibrate_command_writes_model_report_and_manifest(demo_copy, capsys):
    code = main(["calibrate", str(demo_copy), "--clips", "synthetic", "--count", "6", "--eval-count", "12"])
    out = capsys.readouterr().out
    assert code == 0
    assert "INT8 QDQ (ONNX Runtime)" in out
    assert "PASS" in out
    report = json.loads((demo_copy / "int8_report.json").read_text())
    assert report["n"] == 12
    for key in ("fp32_top1", "int8_top1", "agreement", "fp16_top1", "fp16_agreement"):
        assert 0.0 <= report[key] <= 1.0
    assert report["int8_top1"] >= report["fp32_top1"] - 0.01
    assert report["clips"]["calibration"] == {
        "source": "synthetic",
        "subset": "train",
        "count": 6,
        "method": "entropy",
        "seed": 1000,
    }
    bundle = load_bundle(demo_copy)
    bundle.verify_file("model.int8.onnx")
    assert bundle.manifest["int8"]["n"] == 12


def test_calibrate_fails_when_int8_loses_more_than_the_margin(demo_copy, capsys, monkeypatch):
    import calibration.calibrate as calibrate_module
    from calibration.report import evaluate as real_evaluate

    def pessimistic(*args, **kwargs):
        report = real_evaluate(*args, **kwargs)
        report.int8_top1 = report.fp32_top1 - 0.25
        return report

    monkeypatch.setattr(calibrate_module, "evaluate", pessimistic)
    code = main(["calibrate", str(demo_copy), "--clips", "synthetic", "--count", "4", "--eval-count", "12"])
    assert code == 1
    assert "FAIL" in capsys.readouterr().out
    assert json.loads((demo_copy / "int8_report.json").read_text())["passed"] is False


def test_calibrate_errors_are_one_line(demo_copy, tmp_path, capsys):
    assert main(["calibrate", str(demo_copy), "--clips", str(tmp_path / "missing")]) == 2
    assert main(["calibrate", str(tmp_path / "nobundle"), "--clips", "synthetic"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert "not 'synthetic', a folder of videos" in errors[0]
    assert "bundle directory not found" in errors[1]
