"""Labelled clip sources (convert/sources.py): field datasets used as the crops they are, labels by
gloss, and the hold-out that keeps a folder's test part out of training."""

import json

import numpy as np
import pytest

from convert.field_dataset import DatasetError, load_field_dataset
from convert.sources import held_out, open_crops
from edge.core.bundle import DEMO_BUNDLE, load_bundle
from edge.core.sampling import model_inputs
from edge.runtime.video import read_frames
from tests.conftest import moving_blob_frames, write_video


@pytest.fixture(scope="module")
def spec():
    return load_bundle(DEMO_BUNDLE).spec


def _dataset(root, videos, labels, split, kinds=None):
    (root / "videos").mkdir(parents=True)
    for name, frames in videos.items():
        write_video(root / "videos" / f"{name}.mp4", frames)
    (root / "labels.txt").write_text("\n".join(labels) + "\n")
    (root / "split.json").write_text(json.dumps(split))
    manifest = {"kind": "asl-edge-dataset", "format": 1, "version": "v1", "videos": kinds or {}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_field_clips_are_used_as_the_crops_they_are(spec, tmp_path):
    crops = moving_blob_frames(20, size=(224, 224), seed=3)
    dataset = _dataset(
        tmp_path / "d",
        {"p1": crops, "p2": moving_blob_frames(32, size=(320, 240)), "p3": crops},
        ["book", "banana", "who"],  # not the model's order, and a word it does not know
        {
            "p1": {"subset": "train", "action": [2, 1, 20]},
            "p2": {"subset": "train", "action": [0, 1, 32]},
            "p3": {"subset": "train", "action": [1, 1, 20]},
        },
    )
    items = list(open_crops(str(dataset), spec, None))
    # p2's frames are 320x240, not the model's 224x224 crops: skipped, never rescaled.
    assert [(i.name, i.gloss, i.label) for i in items] == [("p1", "who", 7), ("p3", "banana", None)]
    decoded = list(read_frames(dataset / "videos" / "p1.mp4"))
    (expected,) = model_inputs(decoded, spec.frames, spec.sampling)  # resampled in time only
    assert np.array_equal(items[0].crops, np.stack(expected))
    assert items[0].to_clip().clip.shape == (1, 3, 32, 224, 224)


def test_raw_field_videos_are_cropped_like_camera_frames(spec, tmp_path):
    dataset = _dataset(
        tmp_path / "d",
        {"p1": moving_blob_frames(40, size=(320, 240))},
        ["go"],
        {"p1": {"subset": "test", "action": [0, 1, 40]}},
        {"p1": {"kind": "raw"}},
    )
    (item,) = open_crops(str(dataset), spec, None, subset="test")
    assert item.crops.shape == (32, 224, 224, 3) and item.gloss == "go"
    assert list(open_crops(str(dataset), spec, None, subset="train")) == []


def test_a_dataset_that_breaks_the_format_is_refused(tmp_path):
    root = _dataset(tmp_path / "d", {}, ["go"], {"p1": {"subset": "holdout", "action": [0, 1, 4]}})
    with pytest.raises(DatasetError, match="has subset 'holdout'"):
        load_field_dataset(root)
    (root / "manifest.json").write_text(json.dumps({"kind": "something-else"}))
    with pytest.raises(DatasetError, match="kind is not 'asl-edge-dataset'"):
        load_field_dataset(root)


def test_a_folder_held_out_never_trains_on_its_test_part(spec, tmp_path):
    names = [f"clip{i:02d}.mp4" for i in range(10)]
    for index, name in enumerate(names):
        write_video(tmp_path / name, moving_blob_frames(8, seed=index))
    (tmp_path / "labels.csv").write_text("file,word\n" + "".join(f"{n},fine\n" for n in names))
    train = {i.name for i in open_crops(str(tmp_path), spec, None, hold_out=True)}
    test = {i.name for i in open_crops(str(tmp_path), spec, None, subset="test", hold_out=True)}
    assert train | test == set(names) and not train & test
    assert test == {n for n in names if held_out(n)} and test
    assert {i.name for i in open_crops(str(tmp_path), spec, None)} == set(names)  # calibration: all
