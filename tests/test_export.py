"""ONNX export: a clean static graph that computes what PyTorch computes."""

import json
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from asl_edge.cli import main
from convert.export import ExportError, check_parity, export_onnx
from convert.i3d import InceptionI3d
from convert.pipeline import convert_checkpoint
from convert.random_model import randomize, smooth_random_clips
from edge.core.bundle import load_bundle, sha256_of
from tests.conftest import save_checkpoint, write_labels


@pytest.mark.slow
def test_export_is_static_opset17_without_stray_pads(tiny_model, tmp_path):
    model = export_onnx(tiny_model, 24, tmp_path / "m.onnx")
    assert [o.version for o in model.opset_import if o.domain == ""] == [17]
    assert all(o.domain == "" for o in model.opset_import)
    ops = Counter(node.op_type for node in model.graph.node)
    assert ops["Conv"] == 58
    # Convolutions and max pools (whose inputs are post-ReLU, so zero padding changes nothing)
    # carry their padding themselves.
    assert ops["Pad"] == 0
    assert not {"If", "Shape", "ConstantOfShape", "Squeeze"} & set(ops)
    dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 10, 2]
    inputs = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert inputs == [1, 3, 24, 224, 224]


@pytest.mark.slow
def test_parity_detects_a_different_model(tiny_model, tmp_path):
    export_onnx(tiny_model, 16, tmp_path / "m.onnx")
    good = check_parity(tiny_model, tmp_path / "m.onnx", clips=3)
    assert good.passed
    assert good.max_rel_diff < 1e-4
    other = randomize(InceptionI3d(10, width=0.125), seed=99)
    bad = check_parity(other, tmp_path / "m.onnx", clips=3)
    assert not bad.passed
    assert bad.max_rel_diff > 0.05


def test_random_test_models_are_input_dependent(tiny_model):
    clips = torch.from_numpy(smooth_random_clips(8, 16, seed=3))
    with torch.no_grad():
        top1 = tiny_model(clips).mean(-1).argmax(1)
    assert len(set(top1.tolist())) >= 3


@pytest.mark.slow
def test_full_width_wlasl100_checkpoint_converts_within_tolerance(tmp_path):
    """The 'done when' check: full width, 100 classes, DataParallel prefix."""
    model = randomize(InceptionI3d(100), seed=1, frames=16, probes=2)
    checkpoint = save_checkpoint(model, tmp_path / "nslt_100.pt", prefix="module.")
    labels = write_labels(tmp_path / "wlasl_class_list.txt", 2000)
    result = convert_checkpoint(checkpoint, labels, 16, tmp_path / "bundle", parity_clips=2)
    assert result.parity.max_rel_diff <= 1e-3
    assert result.parity.top1_agreement == 1.0
    session = ort.InferenceSession(str(tmp_path / "bundle/model.onnx"), providers=["CPUExecutionProvider"])
    clip = smooth_random_clips(1, 16, seed=5)
    expected = model(torch.from_numpy(clip)).detach().numpy()
    actual = session.run(None, {"clip": clip})[0]
    assert np.abs(actual - expected).max() <= 1e-3 * np.abs(expected).max()


@pytest.mark.slow
def test_convert_cli_writes_a_complete_bundle(tiny_checkpoint, tiny_labels, tmp_path, capsys):
    out = tmp_path / "b"
    assert (
        main(
            [
                "convert",
                str(tiny_checkpoint),
                "--labels",
                str(tiny_labels),
                "--frames",
                "16",
                "-o",
                str(out),
                "--resize-short-side",
                "288",
                "--roi",
                "0.1,0,0.8,1",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "top-1 agreement 100%" in printed
    assert "max abs diff" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"] == {
        "name": "clip",
        "shape": [1, 3, 16, 224, 224],
        "dtype": "float32",
        "layout": "NCTHW",
        "color_order": "BGR",
        "value_range": [-1.0, 1.0],
    }
    assert manifest["output"]["shape"] == [1, 10, 1]
    assert manifest["preprocessing"] == {
        "resize_short_side": 288,
        "crop_size": 224,
        "roi": [0.1, 0.0, 0.8, 1.0],
    }
    assert manifest["files"]["model.onnx"]["sha256"] == sha256_of(out / "model.onnx")
    assert manifest["source"]["checkpoint_sha256"] == sha256_of(tiny_checkpoint)
    assert manifest["checks"]["parity"]["passed"] is True
    assert (out / "labels.txt").read_text().split("\n")[:3] == ["gloss0", "gloss1", "gloss2"]
    bundle = load_bundle(out)
    assert bundle.spec.labels == tuple(f"gloss{i}" for i in range(10))
    assert not list(out.glob("*.partial"))
    onnx.checker.check_model(str(out / "model.onnx"))


@pytest.mark.parametrize("frames", ["12", "20", "8"])
def test_convert_rejects_bad_clip_lengths(tiny_checkpoint, tiny_labels, tmp_path, capsys, frames):
    code = main(
        [
            "convert",
            str(tiny_checkpoint),
            "--labels",
            str(tiny_labels),
            "--frames",
            frames,
            "-o",
            str(tmp_path / "b"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "multiple of 8 and at least 16" in err
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_convert_errors_are_one_line(tiny_checkpoint, tmp_path, capsys):
    write_labels(tmp_path / "few.txt", 4)
    cases = [
        ([str(tiny_checkpoint), "--labels", str(tmp_path / "few.txt")], "4 labels for a checkpoint with 10"),
        ([str(tmp_path / "none.pt"), "--labels", str(tmp_path / "few.txt")], "no such file"),
    ]
    for args, pattern in cases:
        assert main(["convert", *args, "--frames", "16", "-o", str(tmp_path / "b")]) == 2
        err = capsys.readouterr().err
        assert pattern in err
        assert err.startswith("asl-edge: error: ")
        assert err.count("\n") == 1


def test_check_frames_names_the_rule():
    from convert.pipeline import check_frames

    check_frames(64)
    with pytest.raises(ExportError, match="multiple of 8"):
        check_frames(30)
