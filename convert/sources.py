"""Labelled clips from every kind of source the build-time tools read: the one owner of them.

INT8 calibration, fine-tuning's replay and ``asl-edge evaluate`` read the same sources:

- ``synthetic``: the drawn signer (only for models trained on its 12 glosses), seeded;
- a folder of videos, labelled by ``labels.csv`` (``file,word``) when present, such as
  ``asl-edge synth`` writes;
- a WLASL split (``nslt_N.json`` and a video root; the ``train`` subset by default);
- a field dataset directory made by ``asl-edge dataset build`` (``convert.field_dataset``).

Raw videos are preprocessed exactly like the runtime (the bundle's ``PreprocessParams``); a field
dataset's clips of kind ``crops`` already are the model's crops and are only resampled in time when
their frame count is not the model's. Either way the runtime's own rule (``edge.core.sampling``)
makes model inputs: the whole sign resampled to T frames, or, for WLASL-style windowed models, its
T-frame windows (one, padded, for a sign shorter than T). A ``count`` counts videos; each yields one
item per model input. Sources are sorted or seeded, so the same arguments give the same clips in the
same order. Labels are class indices into the model's labels, matched by gloss where the source
names glosses; an example of a gloss the model does not know keeps its gloss and has no label.

Training and evaluation need examples that were not trained on: with ``hold_out``, a folder of
videos is split by a hash of each file's name (one in ``HOLDOUT_EVERY`` is ``test``, the rest
``train``), as WLASL splits and field datasets already are; synthetic clips differ by seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convert.field_dataset import FieldDataset, is_field_dataset, load_field_dataset
from edge.core.bundle import ModelSpec
from edge.core.errors import AslEdgeError, VideoError
from edge.core.preprocess import FrameCropper, frames_to_clip
from edge.core.sampling import model_inputs
from edge.runtime.video import read_frames

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
SYNTHETIC = "synthetic"
SYNTHETIC_SIZES = ((640, 480), (640, 360), (360, 640))
HOLDOUT_EVERY = 5


class ClipSourceError(AslEdgeError):
    """A clip source cannot be read or does not fit the model."""


@dataclass(frozen=True)
class LabelledCrops:
    """One model input of a sign as uint8 crops, the form training holds and augments."""

    name: str
    crops: np.ndarray  # (T, H, W, 3) uint8 BGR, the frames the model sees
    label: int | None  # class index into the model's labels; None when unlabelled or unknown to it
    gloss: str | None = None

    def to_clip(self) -> LabelledClip:
        return LabelledClip(self.name, frames_to_clip(list(self.crops)), self.label, self.gloss)


@dataclass(frozen=True)
class LabelledClip:
    name: str
    clip: np.ndarray  # (1, 3, T, H, W) float32, ready for a backend
    label: int | None  # class index, None when the source has no labels
    gloss: str | None = None


def clips_from_frames(frames: Iterable[np.ndarray], spec: ModelSpec) -> list[np.ndarray]:
    """The model inputs one sign's frames become, exactly as the runtime builds them."""
    return [frames_to_clip(list(window)) for window in crop_windows(frames, spec)]


def crop_windows(frames: Iterable[np.ndarray], spec: ModelSpec, cropped: bool = False) -> list[np.ndarray]:
    """The ``(T, H, W, 3)`` uint8 crops of each model input; ``cropped`` frames are used as they are."""
    if cropped:
        crops: Iterable[np.ndarray] = frames
    else:
        cropper = FrameCropper(spec.preprocessing)
        crops = (cropper(frame) for frame in frames)
    windows = [np.stack(window) for window in model_inputs(crops, spec.frames, spec.sampling)]
    if not windows:
        raise VideoError("no frames")
    return windows


def _labelled(
    name: str,
    frames: Iterable[np.ndarray],
    spec: ModelSpec,
    label: int | None,
    gloss: str | None = None,
    cropped: bool = False,
) -> Iterator[LabelledCrops]:
    """One item per model input of a sign (``name#k`` when a long sign gives several)."""
    windows = crop_windows(frames, spec, cropped)
    for index, crops in enumerate(windows):
        yield LabelledCrops(name if len(windows) == 1 else f"{name}#{index}", crops, label, gloss)


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


def knows_synthetic_glosses(spec: ModelSpec) -> bool:
    """Whether the model's labels include every gesture of the synthetic signer (in any order)."""
    from edge.demo.signer import GLOSSES

    return set(GLOSSES) <= set(spec.labels)


def synthetic_crops(spec: ModelSpec, count: int, seed: int) -> Iterator[LabelledCrops]:
    """Synthetic-signer clips, classes in turn; only for models that know its 12 glosses."""
    from edge.demo.signer import GLOSSES, render_clip

    if not knows_synthetic_glosses(spec):
        raise ClipSourceError(
            "synthetic clips only fit models trained on the synthetic signer's 12 glosses; "
            "pass a folder of labelled videos or a WLASL split"
        )
    index_of = _label_index(spec)
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        word = GLOSSES[index % len(GLOSSES)]
        size = SYNTHETIC_SIZES[index % len(SYNTHETIC_SIZES)]
        video = render_clip(word, rng, size, 30.0)
        name = f"synthetic/{seed}/{index:05d}_{word}"
        yield from _labelled(name, video, spec, index_of[word], word)


def _folder_labels(folder: Path, spec: ModelSpec) -> dict[str, str]:
    path = folder / "labels.csv"
    if not path.is_file():
        return {}
    glosses = _label_index(spec)
    labels: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                word = (row.get("word") or "").strip()
                if word not in glosses:
                    raise ClipSourceError(f"{path}: word {word!r} is not one of the model's labels")
                labels[(row.get("file") or "").strip()] = word
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClipSourceError(f"{path}: cannot read labels: {exc}") from exc
    return labels


def held_out(name: str) -> bool:
    """Whether a folder's video belongs to its ``test`` part: stable, whatever else the folder holds."""
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest(), 16) % HOLDOUT_EVERY == 0


def folder_crops(
    folder: Path, spec: ModelSpec, count: int | None = None, part: str | None = None
) -> Iterator[LabelledCrops]:
    """Videos under ``folder`` in sorted order (``part`` ``train``/``test``: that side of the
    hold-out); unreadable videos are skipped with their reason."""
    if not folder.is_dir():
        raise ClipSourceError(f"{folder}: not a directory of videos")
    labels = _folder_labels(folder, spec)
    index = _label_index(spec)
    videos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if labels:
        videos = [p for p in videos if p.relative_to(folder).as_posix() in labels]
    if part is not None:
        videos = [p for p in videos if held_out(p.relative_to(folder).as_posix()) == (part == "test")]
    if not videos:
        raise ClipSourceError(f"{folder}: no videos ({', '.join(VIDEO_SUFFIXES)})")
    produced = 0
    for path in videos:
        if count is not None and produced >= count:
            return
        name = path.relative_to(folder).as_posix()
        gloss = labels.get(name)
        try:
            clips = list(_labelled(name, read_frames(path), spec, index.get(gloss or ""), gloss))
        except VideoError as exc:
            log.warning("skipping %s: %s", name, exc)
            continue
        produced += 1
        yield from clips


def _frame_range(frames: list[np.ndarray], start: int, end: int) -> list[np.ndarray]:
    """Frames ``start..end`` (1-based, inclusive) when given, else all of them."""
    if start > 0 and end >= start:
        return frames[start - 1 : end] or frames
    return frames


def wlasl_split_crops(
    split_file: Path,
    spec: ModelSpec,
    subset: str = "train",
    video_root: Path | None = None,
    count: int | None = None,
) -> Iterator[LabelledCrops]:
    """Clips of one subset of a WLASL split file (``{video_id: {subset, action: [class, start, end]}}``).

    Videos are ``<video_root>/<video_id>.mp4`` (``video_root`` defaults to a ``videos`` folder
    beside the split file); frames ``start..end`` (1-based, inclusive) when the split gives them.
    Class indices are the model's: WLASL-N's classes are the first N of its class list.
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
        produced += 1
        yield from _labelled(video_id, _frame_range(frames, start, end), spec, label, spec.labels[label])


def field_crops(
    dataset: FieldDataset, spec: ModelSpec, subset: str = "train", count: int | None = None
) -> Iterator[LabelledCrops]:
    """The examples of one subset of a field dataset, in prediction-id order. Crops are used as they
    are (resampled in time only); a clip that cannot be read, or whose crops are not the model's
    size, is skipped with its reason."""
    index = _label_index(spec)
    crop = spec.preprocessing.crop_size
    produced = 0
    for example in dataset.subset(subset):
        if count is not None and produced >= count:
            return
        try:
            frames = _frame_range(list(read_frames(example.path)), example.first_frame, example.last_frame)
        except VideoError as exc:
            log.warning("skipping %s: %s", example.prediction_id, exc)
            continue
        cropped = example.kind == "crops"
        if cropped and frames[0].shape[:2] != (crop, crop):
            log.warning(
                "skipping %s: its crops are %dx%d, the model's are %dx%d (crops are never rescaled)",
                example.prediction_id,
                frames[0].shape[1],
                frames[0].shape[0],
                crop,
                crop,
            )
            continue
        produced += 1
        gloss = example.gloss
        yield from _labelled(example.prediction_id, frames, spec, index.get(gloss), gloss, cropped)


def source_kind(source: str) -> str:
    """``synthetic``, ``wlasl`` (a split file), ``dataset`` (a field dataset) or ``folder``."""
    if source == SYNTHETIC:
        return "synthetic"
    path = Path(source)
    if path.suffix.lower() == ".json":
        return "wlasl"
    if path.is_dir():
        return "dataset" if is_field_dataset(path) else "folder"
    raise ClipSourceError(
        f"{source}: not 'synthetic', a folder of videos, a WLASL split file (nslt_N.json) or a "
        "dataset directory"
    )


def open_crops(
    source: str,
    spec: ModelSpec,
    count: int | None,
    seed: int = 0,
    subset: str = "train",
    video_root: Path | None = None,
    hold_out: bool = False,
) -> Iterator[LabelledCrops]:
    """Any source as named on the command line (``count`` None: every video of a folder, split or
    dataset); ``hold_out`` splits a plain folder too."""
    kind = source_kind(source)
    if kind == "synthetic":
        if count is None:
            raise ClipSourceError("synthetic clips are made to order: give a count")
        return synthetic_crops(spec, count, seed)
    if kind == "wlasl":
        return wlasl_split_crops(Path(source), spec, subset, video_root, count)
    if kind == "dataset":
        return field_crops(load_field_dataset(source), spec, subset, count)
    return folder_crops(Path(source), spec, count, subset if hold_out else None)


def open_source(
    source: str,
    spec: ModelSpec,
    count: int | None,
    seed: int = 0,
    subset: str = "train",
    video_root: Path | None = None,
    hold_out: bool = False,
) -> Iterator[LabelledClip]:
    """The same clips as ``open_crops``, as float model inputs for a backend, one at a time."""
    return (item.to_clip() for item in open_crops(source, spec, count, seed, subset, video_root, hold_out))
