"""``asl-edge recognize`` on files and URLs: results, windows, padding, and bad inputs."""

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from asl_edge.cli import main
from edge.core.bundle import load_bundle
from edge.core.decode import class_scores, decode
from edge.core.errors import VideoError
from edge.core.preprocess import FrameCropper, frames_to_clip
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.recognize import VideoRecognizer
from tests.conftest import AUTO_CPU_BACKEND, moving_blob_frames, write_video


def _expected_word(bundle_dir, frames) -> str:
    """Recognition computed by hand with plain ONNX Runtime, for one window."""
    bundle = load_bundle(bundle_dir)
    cropper = FrameCropper(bundle.spec.preprocessing)
    clip = frames_to_clip([cropper(f) for f in frames])
    session = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"clip": clip})[0]
    return decode(class_scores(logits), bundle.spec.labels).word


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {
        "red": write_video(folder / "red.mp4", moving_blob_frames(16, colour=(0, 0, 255), seed=1)),
        "green": write_video(folder / "green.avi", moving_blob_frames(16, colour=(0, 255, 0), seed=2)),
        "long": write_video(folder / "long.mp4", moving_blob_frames(40, size=(480, 640), seed=3)),
        "short": write_video(folder / "short.mp4", moving_blob_frames(5, seed=4)),
    }


def test_json_output_fields_and_exit_code(tiny_bundle, videos, capsys):
    code = main(
        [
            "recognize",
            str(videos["red"]),
            str(videos["green"]),
            "--bundle",
            str(tiny_bundle),
            "--json",
            "--top-k",
            "3",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert err == ""
    rows = [json.loads(line) for line in out.strip().splitlines()]
    assert [row["source"] for row in rows] == [str(videos["red"]), str(videos["green"])]
    for row in rows:
        assert set(row) >= {"source", "word", "confidence", "top_k", "latency_ms"}
        assert len(row["top_k"]) == 3
        assert row["top_k"][0]["word"] == row["word"]
        assert row["confidence"] == pytest.approx(row["top_k"][0]["score"], abs=1e-6)
        scores = [k["score"] for k in row["top_k"]]
        assert scores == sorted(scores, reverse=True)
        assert row["latency_ms"] > 0
        assert row["backend"] == AUTO_CPU_BACKEND


def test_word_matches_a_hand_computed_inference(tiny_bundle, videos, capsys):
    from tests.conftest import moving_blob_frames as frames_of

    for name, colour, seed in (("red", (0, 0, 255), 1), ("green", (0, 255, 0), 2)):
        main(["recognize", str(videos[name]), "--bundle", str(tiny_bundle), "--json"])
        row = json.loads(capsys.readouterr().out)
        # Decoded (lossy mp4v) frames differ slightly from the originals; the word must not.
        assert row["word"] == _expected_word(tiny_bundle, frames_of(16, colour=colour, seed=seed))


def test_plain_output_is_one_line_per_source(tiny_bundle, videos, capsys):
    assert main(["recognize", str(videos["red"]), "--bundle", str(tiny_bundle)]) == 0
    line = capsys.readouterr().out.strip()
    source, word, confidence = line.split("\t")
    assert source == str(videos["red"])
    assert word.startswith("gloss")
    assert 0 < float(confidence) <= 1


def test_long_videos_are_split_and_short_ones_padded(tiny_bundle, videos):
    bundle = load_bundle(tiny_bundle)
    recognizer = VideoRecognizer(OnnxRuntimeBackend(bundle.model_path, bundle.spec))
    long = recognizer.recognize_source(str(videos["long"]))
    assert (long.frames, long.windows) == (40, 3)  # 0-15, 16-31, and 24-39 for the remainder
    short = recognizer.recognize_source(str(videos["short"]))
    assert (short.frames, short.windows) == (5, 1)
    exact = recognizer.recognize_frames(moving_blob_frames(32))
    assert exact[1:] == (32, 2)


def test_padding_repeats_the_last_frame(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    recognizer = VideoRecognizer(OnnxRuntimeBackend(bundle.model_path, bundle.spec), top_k=10)
    frames = moving_blob_frames(6, seed=9)
    padded = frames + [frames[-1]] * 10
    short, _, _ = recognizer.recognize_frames(frames)
    full, _, _ = recognizer.recognize_frames(padded)
    assert [s.word for s in short.top_k] == [s.word for s in full.top_k]
    assert short.confidence == pytest.approx(full.confidence, rel=1e-5)


def test_mean_and_max_combine_the_windows_as_computed_by_hand(tiny_bundle):
    """Mean: logits averaged over time, then over windows; max: the maximum of both. The top-10
    probabilities of each match a hand computation and differ from each other."""
    bundle = load_bundle(tiny_bundle)
    frames = moving_blob_frames(40, size=(480, 640), seed=3)
    cropper = FrameCropper(bundle.spec.preprocessing)
    session = ort.InferenceSession(str(bundle.model_path), providers=["CPUExecutionProvider"])
    windows = [frames[0:16], frames[16:32], frames[24:40]]
    logits = np.stack(
        [session.run(None, {"clip": frames_to_clip([cropper(f) for f in w])})[0] for w in windows]
    )
    by_hand = {"mean": logits.mean(axis=-1).mean(axis=0), "max": logits.max(axis=-1).max(axis=0)}
    results = {}
    for combine, scores in by_hand.items():
        recognizer = VideoRecognizer(OnnxRuntimeBackend(bundle.model_path, bundle.spec), combine, top_k=10)
        decision, count, runs = recognizer.recognize_frames(frames)
        expected = decode(scores.reshape(-1), bundle.spec.labels, top_k=10)
        assert (count, runs) == (40, 3)
        assert [s.word for s in decision.top_k] == [s.word for s in expected.top_k]
        assert [s.score for s in decision.top_k] == pytest.approx([s.score for s in expected.top_k], rel=1e-4)
        results[combine] = [s.score for s in decision.top_k]
    assert results["mean"] != pytest.approx(results["max"], rel=1e-3)


def test_url_source(tiny_bundle, videos, http_root, capsys):
    root, base = http_root
    shutil.copy(videos["red"], root / "sign.mp4")
    assert (
        main(["recognize", f"{base}/sign.mp4", str(videos["red"]), "--bundle", str(tiny_bundle), "--json"])
        == 0
    )
    by_url, by_file = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines())
    assert by_url["source"] == f"{base}/sign.mp4"
    assert by_url["word"] == by_file["word"]
    assert by_url["confidence"] == pytest.approx(by_file["confidence"], abs=1e-6)


def test_bad_sources_fail_one_line_each_and_the_rest_still_run(
    tiny_bundle, videos, http_root, tmp_path, capsys
):
    root, base = http_root
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "empty.mp4").write_bytes(b"")
    (root / "notvideo.mp4").write_bytes(b"hello")
    sources = [
        str(tmp_path / "corrupt.mp4"),
        str(videos["red"]),
        str(tmp_path / "empty.mp4"),
        str(tmp_path / "missing.mp4"),
        f"{base}/absent.mp4",
        f"{base}/notvideo.mp4",
        "http://127.0.0.1:9/refused.mp4",
        str(tmp_path),
        str(videos["green"]),
    ]
    code = main(["recognize", *sources, "--bundle", str(tiny_bundle), "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert [json.loads(line)["source"] for line in out.strip().splitlines()] == [
        str(videos["red"]),
        str(videos["green"]),
    ]
    errors = err.strip().splitlines()
    assert len(errors) == 7
    assert all(line.startswith("asl-edge: error: ") for line in errors)
    for source, line in zip([s for s in sources if "red" not in s and "green" not in s], errors, strict=True):
        assert source in line
    assert "HTTP 404" in errors[3]
    assert "not a file" in errors[6]


def test_missing_bundle_is_a_clear_error(tmp_path, videos, capsys):
    assert main(["recognize", str(videos["red"]), "--bundle", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "bundle directory not found" in err
    assert err.count("\n") == 1


def test_frames_iterator_without_frames_is_an_error(tiny_bundle):
    bundle = load_bundle(tiny_bundle)
    recognizer = VideoRecognizer(OnnxRuntimeBackend(bundle.model_path, bundle.spec))
    with pytest.raises(VideoError):
        recognizer.recognize_frames([])


def test_resample_mode_runs_one_clip_over_the_whole_video(tiny_bundle, videos, capsys):
    assert (
        main(
            [
                "recognize",
                str(videos["long"]),
                "--bundle",
                str(tiny_bundle),
                "--json",
                "--sampling",
                "resample",
            ]
        )
        == 0
    )
    row = json.loads(capsys.readouterr().out)
    assert (row["frames"], row["windows"]) == (40, 1)
    bundle = load_bundle(tiny_bundle)
    recognizer = VideoRecognizer(OnnxRuntimeBackend(bundle.model_path, bundle.spec), sampling="resample")
    frames = moving_blob_frames(46, seed=5)  # evenly spaced picks: 0, 3, ..., 45
    decision, _, _ = recognizer.recognize_frames(frames)
    assert decision.word == _expected_word(tiny_bundle, frames[::3])


def test_multi_line_library_errors_stay_on_one_line(capsys):
    from edge.core.command_line import print_error

    print_error("first line\n  second line\n")
    assert capsys.readouterr().err == "asl-edge: error: first line | second line\n"
