"""asl-edge finetune on the demo model: a few real steps on a small left-handed field dataset,
deterministic, resumed after a kill -9 with the same weights, and two CPU processes under torchrun."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from asl_edge.cli import main
from convert.augment import augment
from convert.batches import FIELD, REPLAY, BatchPlan
from edge.core.bundle import DEMO_BUNDLE, load_bundle
from tests.field_dataset import write_field_dataset
from tests.services import ROOT

QUICK = ["--batch", "2", "--replay-count", "4", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="session")
def left_dataset(tmp_path_factory):
    """24 left-handed one-sign clips (two per word), cropped and resampled as the runtime does."""
    return write_field_dataset(
        tmp_path_factory.mktemp("field") / "left", 2, seed=31, sentence_words=0, sizes=((320, 240),)
    )


def _weights(bundle):
    return torch.load(bundle / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_batches_are_class_balanced_mixed_and_a_function_of_the_step():
    field = [0, 0, 0, 0, 0, 0, 1, 2]  # a lopsided field set
    replay = [0, 1, 2, 3] * 2
    plan = BatchPlan(field, replay, batch=4, replay_fraction=0.5, seed=3)
    assert plan.steps_per_epoch == 4
    picks = [pick for step in range(plan.steps_per_epoch) for pick in plan.batch(step)]
    assert sum(p.pool == FIELD for p in picks) == sum(p.pool == REPLAY for p in picks) == 8
    field_classes = np.bincount([field[p.index] for p in picks if p.pool == FIELD], minlength=3)
    assert field_classes.max() - field_classes.min() <= 1  # class 0's six clips do not drown the rest
    replay_classes = np.bincount([replay[p.index] for p in picks if p.pool == REPLAY], minlength=4)
    assert list(replay_classes) == [2, 2, 2, 2]
    again = BatchPlan(field, replay, batch=4, replay_fraction=0.5, seed=3)
    assert [again.batch(s) for s in (5, 1)] == [plan.batch(s) for s in (5, 1)]
    assert BatchPlan(field, replay, 4, 0.5, seed=4).batch(0) != plan.batch(0)


def test_augmentation_is_seeded_and_keeps_the_clip_shape():
    crops = np.random.default_rng(0).integers(0, 255, (32, 224, 224, 3), dtype=np.uint8)
    first = augment(crops, np.random.default_rng(7))
    assert first.shape == crops.shape and first.dtype == np.uint8
    assert np.array_equal(first, augment(crops, np.random.default_rng(7)))
    assert not np.array_equal(first, augment(crops, np.random.default_rng(8)))


def test_finetune_resumed_after_kill_has_the_weights_of_an_uninterrupted_run(left_dataset, tmp_path):
    arguments = ["finetune", str(DEMO_BUNDLE), "--dataset", str(left_dataset), "--steps", "4", *QUICK]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert main([*arguments, "--out", str(whole)]) == 0

    state = tmp_path / "resumed.partial" / "state.pt"
    process = subprocess.Popen(
        [sys.executable, "-m", "asl_edge", *arguments, "--out", str(resumed), "--save-every", "1"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not state.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        process.kill()  # SIGKILL: no handler runs, the state on disk is all that is left
    finally:
        process.wait(timeout=30)
    saved = torch.load(state, map_location="cpu", weights_only=True)["step"]
    assert 1 <= saved < 4
    assert not resumed.exists()
    assert main([*arguments, "--out", str(resumed)]) == 0
    assert not state.parent.exists()

    first, second = _weights(whole), _weights(resumed)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    parent = torch.load(DEMO_BUNDLE / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert torch.equal(first["Conv3d_1a_7x7.conv3d.weight"], parent["Conv3d_1a_7x7.conv3d.weight"])  # frozen
    assert not torch.equal(first["Mixed_5c.b0.conv3d.weight"], parent["Mixed_5c.b0.conv3d.weight"])

    bundle = load_bundle(resumed)
    lineage = bundle.manifest["lineage"]
    dataset_manifest = json.loads((left_dataset / "manifest.json").read_text())
    assert lineage["parent_model_id"] == load_bundle(DEMO_BUNDLE).spec.model_id
    assert lineage["parent_checkpoint_sha256"] == load_bundle(DEMO_BUNDLE).manifest["checkpoint"]["sha256"]
    assert lineage["dataset_version"] == dataset_manifest["version"]
    assert lineage["replay"]["source"] == "synthetic"
    assert lineage["training"]["resumed_from_step"] == saved
    assert set(lineage["licences"]) == {"parent_weights", "dataset", "replay"}
    assert bundle.spec.model_id.startswith("demo_i3d-ft-")
    assert "NOT real ASL" in bundle.manifest["note"]
    assert bundle.manifest["checkpoint"]["sha256"] == load_bundle(whole).manifest["checkpoint"]["sha256"]


@pytest.mark.slow  # two training processes under torchrun
def test_finetune_runs_as_two_cpu_processes_under_torchrun(left_dataset, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "asl_edge", "finetune", str(DEMO_BUNDLE), "--dataset", str(left_dataset), "--out", str(out),
        "--steps", "2", *QUICK,
    ]  # fmt: skip
    result = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("wrote ") == 1  # process 0 writes and reports, process 1 only trains
    training = load_bundle(out).manifest["lineage"]["training"]
    assert (training["processes"], training["steps"], training["batch"]) == (2, 2, 2)


def test_finetune_refuses_what_it_cannot_train_with_one_line(left_dataset, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    base = ["finetune", str(DEMO_BUNDLE), "--dataset", str(left_dataset), *QUICK]
    assert main([*base, "--out", str(tmp_path / "taken")]) == 2
    assert "exists; choose a new --out" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "n"), "--replay", str(tmp_path / "nothing")]) == 2
    assert "not 'synthetic', a folder of videos" in capsys.readouterr().err
    assert main(["finetune", str(DEMO_BUNDLE), "--dataset", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "manifest.json" in errors[0]
    if not torch.cuda.is_available():
        assert main([*base, "--out", str(tmp_path / "c"), "--device", "cuda"]) == 2
        assert "PyTorch sees no CUDA GPU here" in capsys.readouterr().err
