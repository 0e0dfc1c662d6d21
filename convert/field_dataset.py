"""A field dataset directory, as ``asl-edge dataset build`` writes it from the kiosks' feedback.

``videos/<prediction_id>.mp4`` (one consented clip each), ``labels.txt`` (one gloss per line; the
line index is the class index of ``split.json``), ``split.json`` in WLASL's ``nslt_N.json`` shape
(``{id: {"subset": "train"|"val"|"test", "action": [class, first_frame, last_frame]}}``) and
``manifest.json`` (``kind: asl-edge-dataset``, its content ``version``, counts, ``videos`` with
each clip's ``kind``, and ``lineage``). A clip of kind ``crops`` holds the crops a model saw and is
used as it is; ``raw`` videos are cropped as the runtime crops camera frames. Classes are matched
to a model's labels by gloss, never by index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.errors import AslEdgeError

DATASET_KIND = "asl-edge-dataset"
DATASET_FORMAT = 1
SUBSETS = ("train", "val", "test")
CLIP_KINDS = ("crops", "raw")


class DatasetError(AslEdgeError):
    """A field dataset directory is missing a file or does not follow the format."""


@dataclass(frozen=True)
class FieldExample:
    prediction_id: str
    gloss: str
    subset: str
    kind: str  # "crops" (the model's crops, used as they are) or "raw" (cropped like camera frames)
    path: Path
    first_frame: int  # 1-based, inclusive
    last_frame: int


@dataclass(frozen=True)
class FieldDataset:
    root: Path
    version: str
    labels: tuple[str, ...]
    examples: tuple[FieldExample, ...]
    manifest: dict[str, Any]

    @property
    def licence(self) -> str:
        lineage = self.manifest.get("lineage")
        licence = lineage.get("licence") if isinstance(lineage, dict) else None
        return str(licence) if licence else "consented kiosk clips (asl-edge feedback)"

    def subset(self, name: str) -> list[FieldExample]:
        return [example for example in self.examples if example.subset == name]

    def describe(self) -> dict[str, Any]:
        """What a model's lineage records of the dataset it was trained on."""
        lineage = self.manifest.get("lineage")
        return {
            "path": str(self.root),
            "version": self.version,
            "examples": {name: len(self.subset(name)) for name in SUBSETS},
            "licence": self.licence,
            **({"lineage": lineage} if isinstance(lineage, dict) else {}),
        }


def is_field_dataset(path: Path) -> bool:
    """A directory with a dataset manifest, or at least ``split.json``, ``labels.txt`` and ``videos/``."""
    manifest = path / "manifest.json"
    if manifest.is_file():
        try:
            return json.loads(manifest.read_text(encoding="utf-8")).get("kind") == DATASET_KIND
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            return False
    return (path / "split.json").is_file() and (path / "labels.txt").is_file() and (path / "videos").is_dir()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (not a dataset made by 'asl-edge dataset build'?)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable: {exc}") from exc


def load_field_dataset(root: str | Path) -> FieldDataset:
    """Read and check a dataset directory; every example in ``split.json`` is listed."""
    root = Path(root)
    manifest = _read_json(root / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("kind") != DATASET_KIND:
        raise DatasetError(f"{root / 'manifest.json'}: kind is not {DATASET_KIND!r}")
    if manifest.get("format") != DATASET_FORMAT:
        raise DatasetError(
            f"{root / 'manifest.json'}: format {manifest.get('format')!r} is not supported "
            f"(expected {DATASET_FORMAT})"
        )
    version = manifest.get("version")
    if not isinstance(version, str) or not version:
        raise DatasetError(f"{root / 'manifest.json'}: no dataset version")
    try:
        labels = tuple(
            line.strip() for line in (root / "labels.txt").read_text(encoding="utf-8").splitlines()
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{root / 'labels.txt'}: unreadable: {exc}") from exc
    if not labels or not all(labels):
        raise DatasetError(f"{root / 'labels.txt'}: needs one gloss per line, without blank lines")
    split = _read_json(root / "split.json")
    if not isinstance(split, dict):
        raise DatasetError(f"{root / 'split.json'}: expected an object of prediction ids")
    listed = manifest.get("videos")
    videos: dict[str, Any] = listed if isinstance(listed, dict) else {}
    examples = []
    for prediction_id in sorted(split):
        entry = split[prediction_id]
        try:
            subset = entry["subset"]
            label, first, last = (int(v) for v in entry["action"][:3])
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{root / 'split.json'}: {prediction_id} has no valid subset/action") from exc
        if subset not in SUBSETS or not 0 <= label < len(labels):
            raise DatasetError(
                f"{root / 'split.json'}: {prediction_id} has subset {subset!r} and class {label} "
                f"(subsets {', '.join(SUBSETS)}; {len(labels)} classes in labels.txt)"
            )
        info = videos.get(prediction_id)
        kind = str(info.get("kind", "crops")) if isinstance(info, dict) else "crops"
        if kind not in CLIP_KINDS:
            raise DatasetError(f"{root / 'manifest.json'}: video {prediction_id} has kind {kind!r}")
        path = root / "videos" / f"{prediction_id}.mp4"
        examples.append(FieldExample(prediction_id, labels[label], subset, kind, path, first, last))
    return FieldDataset(root, version, labels, tuple(examples), manifest)
