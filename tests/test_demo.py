"""The committed demo bundle, its training script and ``make demo``'s recognition run."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from asl_edge.cli import main
from edge.core.bundle import demo_bundle_path, load_bundle, sha256_of
from edge.demo.signer import GLOSSES, render_clip
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.recognize import VideoRecognizer

ROOT = Path(__file__).resolve().parent.parent
DEMO_BUNDLE = ROOT / "edge" / "demo" / "bundle"
# Sizes the training never rendered: 4:3 at 640x480, 16:9, portrait, and a large 16:9 frame.
HELD_OUT_SIZES = ((640, 480), (640, 360), (360, 640), (1280, 720))


@pytest.fixture(scope="module")
def demo_recognizer():
    bundle = load_bundle(DEMO_BUNDLE)
    recognizer = VideoRecognizer(OnnxRuntimeBackend(bundle.model_path, bundle.spec))
    yield recognizer
    recognizer.backend.close()


def test_demo_bundle_is_the_default_and_says_it_is_synthetic():
    assert demo_bundle_path() == DEMO_BUNDLE
    bundle = load_bundle(DEMO_BUNDLE)
    assert bundle.spec.labels == GLOSSES
    assert bundle.spec.sampling == "resample"
    assert "NOT real ASL" in bundle.manifest["note"]
    size = sum(f.stat().st_size for f in DEMO_BUNDLE.iterdir())
    assert size < 4 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.parametrize("size", HELD_OUT_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_demo_accuracy_on_fresh_clips(demo_recognizer, size):
    """At least 95% top-1 on clips from seeds the training never used, per frame size."""
    hits, total = 0, 24
    for index in range(total):
        rng = np.random.default_rng([777_001, size[0], size[1], index])
        word = GLOSSES[index % len(GLOSSES)]
        decision, _, _ = demo_recognizer.recognize_frames(render_clip(word, rng, size, 30.0))
        hits += decision.word == word
    assert hits / total >= 0.95, f"{hits}/{total} at {size}"


@pytest.mark.slow
def test_recognize_without_bundle_uses_the_demo_on_synth_videos(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ASL_EDGE_CONFIG", raising=False)
    monkeypatch.setattr("edge.core.config.DEFAULT_CONFIG_PATH", tmp_path / "none.toml")
    assert main(["synth", "--out", str(tmp_path), "--clips", "12", "--seed", "4242", "--no-progress"]) == 0
    capsys.readouterr()
    rows = (tmp_path / "labels.csv").read_text().splitlines()[1:]
    files = [str(tmp_path / row.split(",")[0]) for row in rows]
    assert main(["recognize", *files, "--json"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    correct = sum(r["word"] == row.split(",")[1] for r, row in zip(results, rows, strict=True))
    assert correct >= 11


@pytest.mark.slow
@pytest.mark.buildtime  # trains with PyTorch in a subprocess, where tests/tiers.py cannot look
def test_training_smoke_run_writes_a_working_bundle(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "convert.demo_model", "--out", str(tmp_path / "b"), "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads(result.stdout.strip().splitlines()[-1])
    assert stats["steps"] == 3
    bundle = load_bundle(tmp_path / "b")
    assert bundle.spec.frames == 16
    assert bundle.manifest["training"]["steps"] == 3
    assert 0.0 <= bundle.manifest["training"]["heldout_top1"] <= 1.0
    assert "training" in result.stderr  # the progress bar


@pytest.mark.slow
def test_make_demo_prints_each_word_and_the_accuracy():
    result = subprocess.run(
        [sys.executable, "-m", "edge.demo.showcase", "--clips", "6", "--seed", "11"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    rows = [line for line in lines if line.startswith("clips/")]
    assert len(rows) == 6
    for row in rows:
        name, expected, recognized = row.split()[:3]
        assert expected in GLOSSES
        assert recognized in (*GLOSSES, "unknown")
        assert name.endswith(f"_{expected}.mp4")
    match = re.fullmatch(r"accuracy: (\d+)/6 = \d+%", lines[-1])
    assert match
    assert int(match.group(1)) >= 5


def test_demo_bundle_carries_a_passing_int8_report():
    bundle = load_bundle(DEMO_BUNDLE)
    bundle.verify_file("model.int8.onnx")
    report = json.loads((DEMO_BUNDLE / "int8_report.json").read_text())
    assert report["n"] >= 100
    assert report["int8_top1"] >= report["fp32_top1"] - 0.01
    assert report["fp32_top1"] >= 0.95
    assert report["passed"] is True
    assert bundle.manifest["int8"]["calibration"]["source"] == "synthetic"


@pytest.mark.service  # asl-edge demo starts a broker and a daemon in its own process
def test_live_demo_prints_words_from_the_daemon_and_the_summary():
    result = subprocess.run(
        [sys.executable, "-m", "asl_edge", "demo", "--fast", "--seed", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    expected = next(line for line in lines if line.startswith("expected:")).split()[1:]
    recognized = next(line for line in lines if line.startswith("recognized:")).split()[1:]
    word_lines = [line for line in lines if re.match(r"^\s+\d+\.\d\d-\s*\d+\.\d\d s ", line)]
    assert [line.split()[-2] for line in word_lines] == recognized
    assert len(expected) >= 3
    assert sum(a == b for a, b in zip(expected, recognized, strict=False)) >= len(expected) - 1
    assert re.fullmatch(r"accuracy: \d+/\d+ = \d+%", lines[-1])
    assert any(re.fullmatch(r"kiosk screen: http://127\.0\.0\.1:\d+/ \(open it .*\)", line) for line in lines)


def test_demo_checkpoint_is_the_one_recovered_from_its_onnx_model_and_computes_it():
    """checkpoint.pt (what asl-edge finetune starts from) holds model.onnx's folded weights with
    identity BatchNorm, and PyTorch on it agrees with ONNX Runtime on the ONNX file."""
    import torch

    from convert.checkpoint import load_checkpoint
    from convert.export import check_parity
    from convert.recover import folded_state_dict

    bundle = load_bundle(DEMO_BUNDLE)
    assert bundle.manifest["checkpoint"]["sha256"] == sha256_of(DEMO_BUNDLE / "checkpoint.pt")
    saved = torch.load(DEMO_BUNDLE / "checkpoint.pt", map_location="cpu", weights_only=True)
    recovered = folded_state_dict(bundle.model_path)
    assert saved.keys() == recovered.keys()
    assert all(torch.equal(saved[key], recovered[key]) for key in saved)
    parity = check_parity(load_checkpoint(DEMO_BUNDLE / "checkpoint.pt"), bundle.model_path, clips=2)
    assert parity.passed and parity.max_rel_diff < 1e-5
