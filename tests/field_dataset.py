"""Field datasets as ``asl-edge dataset build`` writes them (the contract in issue 19), made from the
synthetic signer for tests and benches: every sign of a rendered sentence is segmented, cropped and
resampled by the kiosk's own ``SignPipeline`` and saved by its own ``ClipKeeper``, so each
``videos/<id>.mp4`` is exactly the consented clip a kiosk would have synced. With
``sentence_words=0`` (quick, for tests) each example is one rendered sign, cropped by the runtime's
``FrameCropper`` and resampled by ``model_inputs`` without a segmenter. ``handedness="left"``
mirrors every frame (``cv2.flip(frame, 1)``), as ``asl-edge synth --handedness left`` does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.core.bundle import DEMO_BUNDLE, load_bundle
from edge.core.config import ModelConfig, SegmenterConfig
from edge.core.preprocess import FrameCropper
from edge.core.sampling import model_inputs
from edge.demo.signer import GLOSSES, Video
from edge.runtime.backends.onnxruntime import OnnxRuntimeBackend
from edge.runtime.capture import Frame
from edge.runtime.clips import ClipKeeper
from edge.runtime.pipeline import SignPipeline

SIZES = ((640, 480), (640, 360), (480, 640), (800, 600))
SUBSETS = ("train",) * 14 + ("val",) * 3 + ("test",) * 3  # ~70/15/15, as the builder's default


def subset_of(prediction_id: str, subsets: tuple[str, ...] = SUBSETS) -> str:
    """The split by a hash of the id: stable as the data grows."""
    return subsets[int(hashlib.sha256(prediction_id.encode()).hexdigest(), 16) % len(subsets)]


def kiosk_signs(
    words: list[str], seed: int, size: tuple[int, int], handedness: str, pipeline_backend
) -> Iterator[tuple[str, np.ndarray, float]]:
    """(word, crops (T, 224, 224, 3), fps) of each sign the kiosk's pipeline finds in one video."""
    rng = np.random.default_rng([seed, size[0], size[1], len(words)])
    video = Video.sentence(words, rng, size, 30.0) if len(words) > 1 else Video.clip(words[0], rng, size)
    spec = pipeline_backend.spec
    pipeline = SignPipeline(SegmenterConfig(), ModelConfig(), spec, 30)
    signs = []
    for index, frame in enumerate(video.frames()):
        image = cv2.flip(frame, 1) if handedness == "left" else frame
        sign = pipeline.feed(Frame(image, index / video.fps, index), pipeline_backend)
        if sign is not None:
            signs.append((sign.start_s, sign.end_s, np.stack(sign.frames), sign.fps))
    last = pipeline.finish(pipeline_backend)
    if last is not None:
        signs.append((last.start_s, last.end_s, np.stack(last.frames), last.fps))
    for start, end, crops, fps in signs:
        overlaps = [max(0.0, min(end, b) - max(start, a)) for a, b in video.spans_s]
        best = int(np.argmax(overlaps))
        if overlaps[best] > 0:
            yield words[best], crops, fps


def rendered_signs(
    words: list[str], seed: int, size: tuple[int, int], handedness: str, spec
) -> Iterator[tuple[str, np.ndarray, float]]:
    """(word, crops, fps) of one-sign clips cropped and resampled as the runtime does, unsegmented."""
    cropper = FrameCropper(spec.preprocessing)
    for offset, word in enumerate(words):
        rng = np.random.default_rng([seed, size[0], size[1], offset])
        video = Video.clip(word, rng, size)
        frames = (cv2.flip(f, 1) if handedness == "left" else f for f in video.frames())
        (crops,) = model_inputs((cropper(frame) for frame in frames), spec.frames, spec.sampling)
        yield word, np.stack(crops), len(crops) / (len(video) / video.fps)


def write_field_dataset(
    out: Path,
    clips_per_word: int,
    seed: int,
    handedness: str = "left",
    sentence_words: int = 4,
    sizes: tuple[tuple[int, int], ...] = SIZES,
    device: str = "kiosk-1",
    subsets: tuple[str, ...] = SUBSETS,
) -> Path:
    """A dataset directory with at most ``clips_per_word`` kiosk clips of each gloss, from
    left-handed (or right-handed) sentences of ``sentence_words`` signs (1: one-sign clips through
    the kiosk's pipeline; 0: one-sign clips without it); ``subsets`` is the hash split's cycle
    (``("test",)`` puts every example in the test split)."""
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(DEMO_BUNDLE)
    backend = OnnxRuntimeBackend(bundle.model_path, bundle.spec)
    keeper = ClipKeeper(videos, remembered=1)
    counts = dict.fromkeys(GLOSSES, 0)
    rng = np.random.default_rng(seed)
    entries: dict[str, dict] = {}
    index = 0
    try:
        while min(counts.values()) < clips_per_word:
            wanted = [w for w in GLOSSES if counts[w] < clips_per_word]
            picked = list(rng.choice(wanted, min(max(sentence_words, 1), len(wanted)), replace=False))
            size = sizes[index % len(sizes)]
            signs = (
                kiosk_signs(picked, seed * 1000 + index, size, handedness, backend)
                if sentence_words
                else rendered_signs(picked, seed * 1000 + index, size, handedness, bundle.spec)
            )
            for word, crops, fps in signs:
                if counts[word] >= clips_per_word:
                    continue
                prediction_id = hashlib.sha256(f"{seed}-{index}-{len(entries)}".encode()).hexdigest()[:32]
                keeper.remember(prediction_id, list(crops), fps)
                keeper.write(prediction_id)
                counts[word] += 1
                entries[prediction_id] = {"word": word, "frames": len(crops)}
            index += 1
    finally:
        backend.close()
    labels = sorted(GLOSSES)
    split = {
        pid: {"subset": subset_of(pid, subsets), "action": [labels.index(e["word"]), 1, e["frames"]]}
        for pid, e in sorted(entries.items())
    }
    (out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    (out / "split.json").write_text(json.dumps(split, indent=2) + "\n", encoding="utf-8")
    digests = {pid: hashlib.sha256((videos / f"{pid}.mp4").read_bytes()).hexdigest() for pid in entries}
    content = json.dumps(
        {"examples": [[pid, split[pid]["action"][0], split[pid]["subset"], digests[pid]] for pid in split]},
        sort_keys=True,
    ) + "\n".join(labels)
    per_split: dict[str, int] = {}
    for entry in split.values():
        per_split[entry["subset"]] = per_split.get(entry["subset"], 0) + 1
    manifest = {
        "kind": "asl-edge-dataset",
        "format": 1,
        "version": hashlib.sha256(content.encode()).hexdigest(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {"uri": "synthetic://tests/field_dataset", "keys": []},
        "sql": {},
        "counts": {
            "rows": len(entries),
            "predictions": len(entries),
            "examples": len(entries),
            "per_split": per_split,
            "per_class": counts,
            "per_device": {device: len(entries)},
        },
        "skipped": {},
        "skipped_examples": [],
        "new_word_candidates": {},
        "videos": {
            pid: {
                "kind": "crops",
                "frames": e["frames"],
                "width": 224,
                "height": 224,
                "sha256": digests[pid],
                "clip_key": f"clips/device={device}/{pid}.mp4",
                "device": device,
                "date": "2026-12-01",
                "label": e["word"],
                "model_id": bundle.spec.model_id,
                "model_version": "",
            }
            for pid, e in sorted(entries.items())
        },
        "lineage": {
            "consented_clips": len(entries),
            "devices": [device],
            "days": ["2026-12-01"],
            "revocations": 0,
            "licence": "consented kiosk clips (asl-edge feedback)",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out
