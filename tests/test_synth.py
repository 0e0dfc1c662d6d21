"""The synthetic signer and its data-set writer: determinism, labels, timing, shapes, geometry."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.demo import signer, synth
from edge.demo.signer import GLOSSES, Video, render_clip, render_sentence

SIZE = (160, 120)
SAFE_FRACTION = 0.85
"""The figure must stay inside this central part of the frame's central square."""
FPS = 30.0
SEED = 11


def read_video(path: Path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert frames, f"no frames decoded from {path}"
    return np.stack(frames)


def motion(frames: np.ndarray) -> np.ndarray:
    """Per frame step, the fraction of pixels whose grey level changes by more than 20."""
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]).astype(np.int16)
    return (np.abs(np.diff(grey, axis=0)) > 20).mean(axis=(1, 2))


def span_and_gap_motion(
    frames: np.ndarray, spans: list[tuple[float, float]], fps: float
) -> tuple[float, float]:
    """Mean motion inside the signs and inside the rests between them (a frame away from edges)."""
    steps = motion(frames)
    inside = np.zeros(len(steps), bool)
    for start, end in spans:
        inside[round(start * fps) : round(end * fps) - 1] = True
    gaps = np.zeros(len(steps), bool)
    for (_, end), (start, _) in itertools.pairwise(spans):
        gaps[round(end * fps) + 1 : round(start * fps) - 2] = True
    return float(steps[inside].mean()), float(steps[gaps].mean())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synth.write_dataset(out, clips=3, seed=SEED, sentences=1, size=SIZE, fps=FPS, progress=False)
    return out


def test_glosses_are_twelve_placeholders_in_order() -> None:
    assert GLOSSES == (
        "book", "drink", "computer", "before", "chair", "go",
        "clothes", "who", "candy", "cousin", "deaf", "fine",
    )  # fmt: skip
    assert "NOT real ASL" in (signer.__doc__ or "")


def test_clip_has_requested_size_and_plausible_length() -> None:
    video = Video.clip("computer", np.random.default_rng(3), SIZE, FPS)
    frames = video.render()
    assert frames.shape == (len(video), SIZE[1], SIZE[0], 3)
    assert frames.dtype == np.uint8
    [(start, end)] = video.spans_s
    assert 0.2 - 1 / FPS <= start <= 0.5 + 1 / FPS
    assert signer.SIGN_SECONDS[0] - 1 / FPS <= end - start <= signer.SIGN_SECONDS[1] + 1 / FPS
    assert 0.2 - 1 / FPS <= len(video) / FPS - end <= 0.5 + 1 / FPS


def test_sign_lengths_vary_within_bounds() -> None:
    lengths = [
        len(signer.plan_sign(word, np.random.default_rng(seed), FPS)) / FPS
        for word in GLOSSES
        for seed in range(4)
    ]
    assert min(lengths) >= signer.SIGN_SECONDS[0] - 1 / FPS
    assert max(lengths) <= signer.SIGN_SECONDS[1] + 1 / FPS
    assert max(lengths) - min(lengths) > 0.6


def test_same_seed_same_pixels_other_seed_other_pixels() -> None:
    first = render_clip("deaf", np.random.default_rng(5), SIZE, FPS)
    again = render_clip("deaf", np.random.default_rng(5), SIZE, FPS)
    other = render_clip("deaf", np.random.default_rng(6), SIZE, FPS)
    np.testing.assert_array_equal(first, again)
    frames = min(len(first), len(other))
    assert np.abs(first[:frames].astype(int) - other[:frames]).mean() > 10


def test_unknown_word_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown gesture 'hello'"):
        render_clip("hello", np.random.default_rng(0), SIZE, FPS)


def test_sentence_spans_are_ordered_with_still_rests_between() -> None:
    words = ["book", "who", "fine", "go"]
    frames, spans = render_sentence(words, np.random.default_rng(2), SIZE, FPS)
    duration = len(frames) / FPS
    assert len(spans) == len(words)
    rest = signer.SENTENCE_REST_SECONDS[0] - 1 / FPS
    assert spans[0][0] >= rest
    assert duration - spans[-1][1] >= rest
    for start, end in spans:
        assert signer.SIGN_SECONDS[0] - 1 / FPS <= end - start <= signer.SIGN_SECONDS[1] + 1 / FPS
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start - end >= rest
    in_signs, in_rests = span_and_gap_motion(frames, spans, FPS)
    assert in_signs > 0.002
    assert in_rests < 0.1 * in_signs


def test_rest_pose_is_still_and_every_sign_frame_leaves_it() -> None:
    video = Video.sentence(["candy", "chair"], np.random.default_rng(8), SIZE, FPS)
    offsets = np.linalg.norm(video.poses.right - signer.REST_HAND, axis=1)
    for start, end in video.spans_s:
        assert offsets[round(start * FPS) - 1] == 0
        assert offsets[round(end * FPS)] == 0
        assert offsets[round(start * FPS) : round(end * FPS)].min() > 0


def hand_trajectory(word: str, seed: int) -> np.ndarray:
    """Both hands' positions over a sign, resampled to 32 steps: (32, 4)."""
    poses = signer.plan_sign(word, np.random.default_rng(seed), FPS)
    steps = np.linspace(0, len(poses) - 1, 32)
    frames = np.arange(len(poses))
    hands = [hand[:, axis] for hand in (poses.right, poses.left) for axis in (0, 1)]
    return np.stack([np.interp(steps, frames, values) for values in hands], axis=1)


def test_gestures_have_distinct_hand_trajectories() -> None:
    """Nearest-mean classification of unseen performances is perfect, with a clear margin."""
    means = {}
    for word in GLOSSES:
        means[word] = np.mean([hand_trajectory(word, seed) for seed in range(4)], axis=0)
    for word in GLOSSES:
        for seed in range(100, 104):
            trajectory = hand_trajectory(word, seed)
            distances = {other: np.linalg.norm(trajectory - mean) for other, mean in means.items()}
            nearest_other = min(d for other, d in distances.items() if other != word)
            assert nearest_other > 1.3 * distances[word], word


def clean(video: Video) -> Video:
    """The same take without noise, blur or distractor, so the figure is all that differs."""
    scene = dataclasses.replace(video.scene, grain=None, distractor=None, blur_sigma=0.0)
    return Video(scene, video.poses, video.spans_s, video.fps, np.random.default_rng(0))


def central_square(size: tuple[int, int], fraction: float) -> tuple[float, float, float, float]:
    width, height = size
    half = min(width, height) * fraction / 2
    return width / 2 - half, height / 2 - half, width / 2 + half, height / 2 + half


@pytest.mark.parametrize("size", [(256, 144), (144, 256), (160, 120)])
def test_figure_stays_inside_the_central_square(size: tuple[int, int]) -> None:
    x0, y0, x1, y1 = central_square(size, SAFE_FRACTION)
    lowest_top, highest_bottom = size[1], 0
    for index, word in enumerate(GLOSSES):
        video = clean(Video.clip(word, np.random.default_rng([index, *size]), size, FPS))
        frame = np.empty((size[1], size[0], 3), np.uint8)
        for i in range(0, len(video), 3):
            video.paint(i, frame)
            changed = np.abs(frame.astype(np.int16) - video.scene.background).max(axis=2) > 0
            ys, xs = np.nonzero(changed)
            assert xs.min() >= x0 - 1 and xs.max() <= x1, (word, i)
            assert ys.min() >= y0 - 1 and ys.max() <= y1, (word, i)
            lowest_top, highest_bottom = min(lowest_top, ys.min()), max(highest_bottom, ys.max())
    assert highest_bottom - lowest_top > 0.55 * min(size)


@pytest.mark.parametrize("size", [(640, 360), (360, 640), (640, 480), (64, 48)])
def test_random_placement_keeps_the_figure_box_in_the_safe_square(size: tuple[int, int]) -> None:
    x0, y0, x1, y1 = central_square(size, SAFE_FRACTION)
    fx0, fy0, fx1, fy1 = signer.FIGURE_BOX
    placements = [signer.place_figure(np.random.default_rng(seed), size) for seed in range(300)]
    for (cx, cy), unit in placements:
        assert cx + fx0 * unit >= x0 - 1e-9 and cx + fx1 * unit <= x1 + 1e-9
        assert cy + fy0 * unit >= y0 - 1e-9 and cy + fy1 * unit <= y1 + 1e-9
    units = [unit for _, unit in placements]
    centers = np.array([origin for origin, _ in placements])
    assert np.ptp(units) > 0.1 * min(size)
    assert np.ptp(centers, axis=0).min() > 0.05 * min(size)


def test_dataset_labels_match_videos(dataset: Path) -> None:
    with (dataset / "labels.csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["file", "word"]
    assert [word for _, word in rows[1:]] == synth.clip_words(SEED, 3)
    for index, (name, word) in enumerate(rows[1:]):
        assert name == f"clips/{index:05d}_{word}.mp4"
        decoded = read_video(dataset / name)
        rendered = synth.clip_video(SEED, index, word, SIZE, FPS).render()
        assert decoded.shape == rendered.shape
        error = np.abs(decoded.astype(int) - rendered).mean()
        assert error < 5
        assert error < 0.5 * np.abs(decoded[..., ::-1].astype(int) - rendered).mean(), "not BGR"


def test_dataset_sentences_match_videos(dataset: Path) -> None:
    [entry] = json.loads((dataset / "sentences.json").read_text())
    words, video = synth.sentence_video(SEED, 0, SIZE, FPS)
    assert entry["file"] == "sentences/00000.mp4"
    assert entry["words"] == words
    assert synth.SENTENCE_WORDS[0] <= len(words) <= synth.SENTENCE_WORDS[1]
    assert set(words) <= set(GLOSSES)
    assert entry["spans_s"] == [list(span) for span in video.spans_s]
    frames = read_video(dataset / entry["file"])
    assert len(frames) == len(video)
    spans = [tuple(span) for span in entry["spans_s"]]
    assert all(0 < start < end <= len(frames) / FPS for start, end in spans)
    in_signs, in_rests = span_and_gap_motion(frames, spans, FPS)
    assert in_rests < 0.1 * in_signs


def test_dataset_manifest_says_placeholders(dataset: Path) -> None:
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["seed"] == SEED
    assert manifest["size"] == list(SIZE)
    assert manifest["fps"] == FPS
    assert manifest["glosses"] == list(GLOSSES)
    assert manifest["placeholder_glosses"] is True
    assert "NOT real ASL" in manifest["note"]
    assert manifest["handedness"] == "right"


def test_the_left_handed_signer_is_the_right_handed_ones_mirror_image() -> None:
    for seed in (0, 7):
        right = synth.clip_video(seed, 0, "candy", SIZE, FPS).render()
        left = synth.clip_video(seed, 0, "candy", SIZE, FPS, handedness="left").render()
        np.testing.assert_array_equal(left, right[:, :, ::-1])
        assert np.abs(left.astype(int) - right).mean() > 5, "a mirror that changes nothing"
    words, right_video = synth.sentence_video(SEED, 0, SIZE, FPS)
    left_words, left_video = synth.sentence_video(SEED, 0, SIZE, FPS, handedness="left")
    assert (left_words, left_video.spans_s) == (words, right_video.spans_s)
    np.testing.assert_array_equal(left_video.render(), right_video.render()[:, :, ::-1])
    with pytest.raises(ValueError, match="handedness must be one of right, left"):
        Video.clip("candy", np.random.default_rng(0), SIZE, FPS, handedness="both")


def test_synth_handedness_left_writes_mirrored_videos_and_says_so(dataset: Path, tmp_path: Path, capsys):
    from asl_edge.cli import main

    out = tmp_path / "left"
    command = ["synth", "--out", str(out), "--clips", "1", "--seed", str(SEED), "--sentences", "1"]
    command += ["--size", f"{SIZE[0]}x{SIZE[1]}", "--no-progress", "--handedness", "left"]
    assert main(command) == 0
    assert "left-handed signer" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["handedness"] == "left"
    rows = [list(csv.reader((folder / "labels.csv").open(newline=""))) for folder in (out, dataset)]
    assert rows[0] == rows[1][:2], "the same words in the same files"
    assert (out / "sentences.json").read_text() == (dataset / "sentences.json").read_text()
    for name in (rows[0][1][0], "sentences/00000.mp4"):
        left, right = read_video(out / name).astype(int), read_video(dataset / name)
        assert np.abs(left - right[:, :, ::-1]).mean() < 5 < np.abs(left - right).mean()


def test_dataset_is_reproducible_from_its_seed(dataset: Path, tmp_path: Path) -> None:
    for name, seed in (("same", SEED), ("other", SEED + 1)):
        synth.write_dataset(tmp_path / name, clips=2, seed=seed, size=SIZE, fps=FPS, progress=False)
    for name in ("clips/00000_", "clips/00001_"):
        [original] = dataset.glob(f"{name}*.mp4")
        [same] = (tmp_path / "same").glob(f"{name}*.mp4")
        [other] = (tmp_path / "other").glob(f"{name}*.mp4")
        np.testing.assert_array_equal(read_video(same), read_video(original))
        first, second = read_video(original), read_video(other)
        frames = min(len(first), len(second))
        assert np.abs(first[:frames].astype(int) - second[:frames]).mean() > 10


def test_clip_words_are_balanced_and_independent_of_the_count() -> None:
    words = synth.clip_words(4, 30)
    counts = [words.count(word) for word in GLOSSES]
    assert min(counts) == 2 and max(counts) == 3
    assert synth.clip_words(4, 7) == words[:7]
    assert synth.clip_words(4, 12) != synth.clip_words(5, 12)
    assert sorted(synth.clip_words(4, 12)) == sorted(GLOSSES)


@pytest.mark.parametrize(
    ("text", "expected"), [("640x480", (640, 480)), (" 360X640 ", (360, 640)), ("16x16", (16, 16))]
)
def test_parse_size(text: str, expected: tuple[int, int]) -> None:
    assert synth.parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    ["640", "640x", "x480", "640x480x3", "-640x480", "6.4x4.8", "wide", ""],
)
def test_parse_size_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        synth.parse_size(text)


@pytest.mark.parametrize("text", ["0x480", "640x0", "8x8"])
def test_parse_size_rejects_tiny(text: str) -> None:
    with pytest.raises(ValueError, match="at least 16x16"):
        synth.parse_size(text)


def test_write_dataset_rejects_odd_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even width and height"):
        synth.write_dataset(tmp_path, clips=1, seed=0, size=(161, 120), progress=False)


def test_synth_cli_errors_are_one_line(tmp_path, capsys):
    from asl_edge.cli import main

    (tmp_path / "file").write_text("x")
    assert main(["synth", "--out", str(tmp_path / "file" / "d"), "--clips", "1", "--seed", "0"]) == 2
    assert (
        main(["synth", "--out", str(tmp_path / "d"), "--clips", "1", "--seed", "0", "--size", "161x120"]) == 2
    )
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2
    assert all(line.startswith("asl-edge: error: ") for line in errors)
    assert "even width and height" in errors[1]
