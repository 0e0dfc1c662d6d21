"""Deterministic, labelled clip sources for INT8 calibration and accuracy reports.

Every video is preprocessed exactly like the runtime (the bundle's ``PreprocessParams``) and
turned into model inputs by the runtime's own rule (``edge.core.sampling``): the whole sign
resampled to T frames, or, for WLASL-style windowed models, its T-frame windows (one, padded, for
a sign shorter than T). A ``count`` counts videos; each yields one clip per model input. Sources
are sorted or seeded, so the same arguments always give the same clips in the same order.

Three sources: a folder of videos (labelled by ``labels.csv``, ``file,word``, when present), a WLASL
split (``nslt_N.json`` and a video root; the ``train`` subset by default), or the synthetic signer.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.core.bundle import ModelSpec
from edge.core.errors import AslEdgeError, VideoError
from edge.core.preprocess import FrameCropper, frames_to_clip
from edge.core.sampling import model_inputs
from edge.runtime.video import read_frames

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
SYNTHETIC = "synthetic"
SYNTHETIC_SIZES = ((640, 480), (640, 360), (360, 640))


class ClipSourceError(AslEdgeError):
    """A clip source cannot be read or does not fit the model."""


@dataclass(frozen=True)
class LabelledClip:
    name: str
    clip: np.ndarray  # (1, 3, T, H, W) float32, ready for a backend
    label: int | None  # class index, None when the source has no labels


def clips_from_frames(frames: Iterable[np.ndarray], spec: ModelSpec) -> list[np.ndarray]:
    """The model inputs one sign's frames become, exactly as the runtime builds them."""
    cropper = FrameCropper(spec.preprocessing)
    crops = (cropper(frame) for frame in frames)
    clips = [frames_to_clip(window) for window in model_inputs(crops, spec.frames, spec.sampling)]
    if not clips:
        raise VideoError("no frames")
    return clips


def _labelled(
    name: str, frames: Iterable[np.ndarray], spec: ModelSpec, label: int | None
) -> Iterator[LabelledClip]:
    """One LabelledClip per model input of a sign (``name#k`` when a long sign gives several)."""
    clips = clips_from_frames(frames, spec)
    for index, clip in enumerate(clips):
        yield LabelledClip(name if len(clips) == 1 else f"{name}#{index}", clip, label)


def random_clips(spec: ModelSpec, count: int, seed: int) -> Iterator[LabelledClip]:
    """Unlabelled smooth random clips, for comparing two backends on a model of any label set."""
    import cv2

    rng = np.random.default_rng(seed)
    _, channels, frames, height, width = spec.input_shape
    for index in range(count):
        coarse = rng.uniform(-1.0, 1.0, size=(channels, max(2, frames // 4), 7, 7)).astype(np.float32)
        clip = np.empty((1, channels, frames, height, width), dtype=np.float32)
        for c in range(channels):
            for t in range(frames):
                step = coarse[c, min(t * coarse.shape[1] // frames, coarse.shape[1] - 1)]
                clip[0, c, t] = cv2.resize(step, (width, height), interpolation=cv2.INTER_LINEAR)
        yield LabelledClip(f"random/{seed}/{index:05d}", clip, None)


def _label_index(spec: ModelSpec) -> dict[str, int]:
    return {gloss: index for index, gloss in enumerate(spec.labels)}


def synthetic_clips(spec: ModelSpec, count: int, seed: int) -> Iterator[LabelledClip]:
    """Synthetic-signer clips, classes in turn; only for bundles whose labels are its glosses."""
    from edge.demo.signer import GLOSSES, render_clip

    if spec.labels != GLOSSES:
        raise ClipSourceError(
            "synthetic clips only fit models trained on the synthetic signer's 12 glosses; "
            "pass a folder of labelled videos or a WLASL split"
        )
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        word = GLOSSES[index % len(GLOSSES)]
        size = SYNTHETIC_SIZES[index % len(SYNTHETIC_SIZES)]
        video = render_clip(word, rng, size, 30.0)
        name = f"synthetic/{seed}/{index:05d}_{word}"
        yield from _labelled(name, video, spec, index % len(GLOSSES))


def _folder_labels(folder: Path, spec: ModelSpec) -> dict[str, int]:
    path = folder / "labels.csv"
    if not path.is_file():
        return {}
    glosses = _label_index(spec)
    labels: dict[str, int] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                word = (row.get("word") or "").strip()
                if word not in glosses:
                    raise ClipSourceError(f"{path}: word {word!r} is not one of the model's labels")
                labels[(row.get("file") or "").strip()] = glosses[word]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClipSourceError(f"{path}: cannot read labels: {exc}") from exc
    return labels


def folder_clips(folder: Path, spec: ModelSpec, count: int | None = None) -> Iterator[LabelledClip]:
    """Videos under ``folder`` in sorted order; unreadable videos are skipped with their reason."""
    if not folder.is_dir():
        raise ClipSourceError(f"{folder}: not a directory of videos")
    labels = _folder_labels(folder, spec)
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if labels:
        videos = [p for p in videos if p.relative_to(folder).as_posix() in labels]
    if not videos:
        raise ClipSourceError(f"{folder}: no videos ({', '.join(VIDEO_SUFFIXES)})")
    produced = 0
    for path in videos:
        if count is not None and produced >= count:
            return
        name = path.relative_to(folder).as_posix()
        try:
            clips = list(_labelled(name, read_frames(path), spec, labels.get(name)))
        except VideoError as exc:
            log.warning("skipping %s: %s", name, exc)
            continue
        produced += 1
        yield from clips


def wlasl_split_clips(
    split_file: Path,
    spec: ModelSpec,
    subset: str = "train",
    video_root: Path | None = None,
    count: int | None = None,
) -> Iterator[LabelledClip]:
    """Clips of one subset of a WLASL split file (``{video_id: {subset, action: [class, start, end]}}``).

    Videos are ``<video_root>/<video_id>.mp4`` (``video_root`` defaults to a ``videos`` folder
    beside the split file); frames ``start..end`` (1-based, inclusive) when the split gives them.
    """
    try:
        split = json.loads(split_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClipSourceError(f"{split_file}: cannot read WLASL split: {exc}") from exc
    if not isinstance(split, dict):
        raise ClipSourceError(f"{split_file}: a WLASL split is a JSON object of video ids")
    root = video_root or split_file.parent / "videos"
    produced = 0
    for video_id in sorted(split):
        entry = split[video_id]
        if not isinstance(entry, dict) or entry.get("subset") != subset:
            continue
        if count is not None and produced >= count:
            return
        try:
            label, start, end = (int(v) for v in entry["action"][:3])
        except (KeyError, TypeError, ValueError) as exc:
            raise ClipSourceError(f"{split_file}: entry {video_id} has no valid 'action'") from exc
        if not 0 <= label < spec.num_classes:
            raise ClipSourceError(
                f"{split_file}: entry {video_id} has class {label}; the model has {spec.num_classes}"
            )
        path = root / f"{video_id}.mp4"
        try:
            frames = list(read_frames(path))
        except VideoError as exc:
            log.warning("skipping %s: %s", video_id, exc)
            continue
        if start > 0 and end >= start:
            frames = frames[start - 1 : end] or frames
        produced += 1
        yield from _labelled(video_id, frames, spec, label)


def open_source(
    source: str,
    spec: ModelSpec,
    count: int,
    seed: int = 0,
    subset: str = "train",
    video_root: Path | None = None,
) -> Iterator[LabelledClip]:
    """``synthetic``, a folder of videos, or a WLASL split ``.json``, as named on the command line."""
    if source == SYNTHETIC:
        return synthetic_clips(spec, count, seed)
    path = Path(source)
    if path.suffix.lower() == ".json":
        return wlasl_split_clips(path, spec, subset, video_root, count)
    if path.is_dir():
        return folder_clips(path, spec, count)
    raise ClipSourceError(
        f"{source}: not 'synthetic', a folder of videos, or a WLASL split file (nslt_N.json)"
    )
