"""Writes data sets of the drawn signer: labelled one-sign clips and continuous sentences.

The glosses are placeholder names for made-up gestures, NOT real ASL signs (see ``edge.demo.signer``).

Layout of ``out_dir``: ``clips/00000_book.mp4`` ..., ``labels.csv`` (``file,word``), optionally
``sentences/00000.mp4`` ... with ``sentences.json`` (words and each sign's span in seconds), and
``manifest.json``. Clip ``i`` is drawn from ``np.random.default_rng([seed, 1, i])`` and its word
from a per-block shuffle of the glosses, so it does not depend on how many clips are written.
``handedness="left"`` renders the left-handed signer: with the same seed, every clip and sentence
is the right-handed one's mirror image (same words, same spans), and the manifest says which.

From the command line: ``asl-edge synth --out DIR --clips 120 --seed 1 [--sentences 10]
[--handedness left]``.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge.demo.signer import GLOSSES, HANDEDNESS, MIN_SIDE, Rng, Size, Video

FOURCC = "mp4v"
SENTENCE_WORDS = (3, 6)
PLACEHOLDER_NOTE = "Gesture names are WLASL glosses used as placeholders, NOT real ASL signs."
_CLIP_STREAM, _SENTENCE_STREAM, _ORDER_STREAM = 1, 2, 3


def parse_size(text: str) -> Size:
    """``"640x480"`` -> ``(640, 480)``; raises ValueError for anything else."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"size must be WIDTHxHEIGHT in pixels, e.g. 640x480; got {text!r}")
    width, height = int(match[1]), int(match[2])
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"size must be at least {MIN_SIDE}x{MIN_SIDE} pixels; got {text!r}")
    return width, height


def clip_rng(seed: int, index: int) -> Rng:
    return np.random.default_rng([seed, _CLIP_STREAM, index])


def sentence_rng(seed: int, index: int) -> Rng:
    return np.random.default_rng([seed, _SENTENCE_STREAM, index])


def clip_words(seed: int, count: int) -> list[str]:
    """Each block of 12 clips holds every gloss once, in a seeded order; any prefix is balanced."""
    words: list[str] = []
    for block in range(-(-count // len(GLOSSES))):
        order = np.random.default_rng([seed, _ORDER_STREAM, block]).permutation(len(GLOSSES))
        words += [GLOSSES[i] for i in order]
    return words[:count]


def sentence_words(rng: Rng) -> list[str]:
    """3 to 6 different glosses in random order."""
    count = int(rng.integers(SENTENCE_WORDS[0], SENTENCE_WORDS[1] + 1))
    return [GLOSSES[i] for i in rng.choice(len(GLOSSES), count, replace=False)]


def clip_video(seed: int, index: int, word: str, size: Size, fps: float, handedness: str = "right") -> Video:
    return Video.clip(word, clip_rng(seed, index), size, fps, handedness)


def sentence_video(
    seed: int, index: int, size: Size, fps: float, handedness: str = "right"
) -> tuple[list[str], Video]:
    rng = sentence_rng(seed, index)
    words = sentence_words(rng)
    return words, Video.sentence(words, rng, size, fps, handedness=handedness)


def write_video(path: Path, video: Video) -> None:
    """Encodes the video as MP4 and checks that OpenCV reads back the same frame count and size."""
    write_frames(path, video.frames(), video.fps, video.scene.size)


def write_frames(path: Path, frames: Iterable[np.ndarray], fps: float, size: Size) -> int:
    """Encodes frames of ``size`` as MP4 one at a time (a video of any length, in little memory),
    checks that OpenCV reads the same count and size back, and returns the count."""
    fourcc = cv2.VideoWriter.fourcc(*FOURCC)
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {FOURCC} video to {path}")
    count = 0
    try:
        for frame in frames:
            writer.write(frame)
            count += 1
    finally:
        writer.release()
    _check_readable(path, count, size)
    return count


def _check_readable(path: Path, frames: int, size: Size) -> None:
    capture = cv2.VideoCapture(str(path))
    try:
        opened = capture.isOpened()
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        decoded = capture.read()[0]
    finally:
        capture.release()
    if not (opened and decoded and (width, height) == size and count == frames):
        raise RuntimeError(
            f"{path}: wrote {frames} frames of {size[0]}x{size[1]} but reading it back gives "
            f"{count} frames of {width}x{height} (opened={opened}, decoded={decoded})"
        )


def _check_arguments(
    clips: int,
    seed: int,
    sentences: int,
    size: Size,
    fps: float,
    handedness: str,
) -> None:
    if clips < 0 or sentences < 0:
        raise ValueError(f"clips and sentences must be >= 0, got {clips} and {sentences}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"{FOURCC} MP4 needs an even width and height, got {size[0]}x{size[1]}")
    if handedness not in HANDEDNESS:
        raise ValueError(f"handedness must be one of {', '.join(HANDEDNESS)}, got {handedness!r}")


def write_dataset(
    out_dir: str | Path,
    clips: int,
    seed: int,
    sentences: int = 0,
    size: Size = (640, 480),
    fps: float = 30.0,
    progress: bool = True,
    handedness: str = "right",
) -> None:
    """Renders and writes the clips, the sentences and their labels; same seed, same pixels
    (mirrored for ``handedness="left"``)."""
    _check_arguments(clips, seed, sentences, size, fps, handedness)
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    if sentences:
        (out / "sentences").mkdir(exist_ok=True)
    labels: list[tuple[str, str]] = []
    entries: list[dict[str, object]] = []
    with tqdm(total=clips + sentences, disable=not progress, desc="synth", unit="video") as bar:
        for index, word in enumerate(clip_words(seed, clips)):
            name = f"clips/{index:05d}_{word}.mp4"
            write_video(out / name, clip_video(seed, index, word, size, fps, handedness))
            labels.append((name, word))
            bar.update()
        for index in range(sentences):
            words, video = sentence_video(seed, index, size, fps, handedness)
            name = f"sentences/{index:05d}.mp4"
            write_video(out / name, video)
            spans = [[start, end] for start, end in video.spans_s]
            entries.append({"file": name, "words": words, "spans_s": spans})
            bar.update()
    _write_labels(out / "labels.csv", labels)
    if sentences:
        (out / "sentences.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    _write_manifest(out / "manifest.json", clips, seed, sentences, size, fps, handedness)


def _write_labels(path: Path, rows: Sequence[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "word"])
        writer.writerows(rows)


def _write_manifest(
    path: Path,
    clips: int,
    seed: int,
    sentences: int,
    size: Size,
    fps: float,
    handedness: str,
) -> None:
    manifest = {
        "generator": "edge.demo.synth (asl-edge synthetic signer)",
        "seed": seed,
        "handedness": handedness,
        "clips": clips,
        "sentences": sentences,
        "size": list(size),
        "fps": fps,
        "fourcc": FOURCC,
        "glosses": list(GLOSSES),
        "placeholder_glosses": True,
        "note": PLACEHOLDER_NOTE,
    }
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
