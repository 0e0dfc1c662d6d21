"""A fine-tuned model's lineage: what it was made from, and the licences it inherits.

A model is bound by the terms of everything it learned from, so the lineage names them all: the
parent's weights, the dataset and the replay source. Known sources are named by rule; anything else
says it is unknown and how to record it, rather than guessing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from convert.field_dataset import FieldDataset, load_field_dataset
from convert.sources import source_kind
from edge.core.bundle import LINEAGE_SECTION

SYNTHETIC_LICENCE = "asl-edge synthetic signer: generated data, no third-party content"
DEMO_LICENCE = "asl-edge synthetic demo model: trained on the synthetic signer only"
WLASL_LICENCE = "WLASL: Computational Use of Data Agreement (C-UDA), non-commercial use only"
UNKNOWN_WEIGHTS = (
    "unknown: record it with --parent-licence (WLASL's published I3D weights are for non-commercial use only)"
)


def parent_licence(manifest: dict[str, Any], given: str | None = None) -> str:
    """``given``, else what the parent's own lineage or manifest records, else a rule for the demo."""
    if given:
        return given
    lineage = manifest.get(LINEAGE_SECTION)
    if isinstance(lineage, dict) and isinstance(lineage.get("licences"), dict):
        return "; ".join(f"{key}: {value}" for key, value in sorted(lineage["licences"].items()))
    if isinstance(manifest.get("licence"), str):
        return str(manifest["licence"])
    if isinstance(manifest.get("training"), dict) and "note" in manifest:
        return DEMO_LICENCE
    return UNKNOWN_WEIGHTS


def replay_licence(source: str) -> str:
    """The licence of a replay (or regression) source, by its kind."""
    kind = source_kind(source)
    if kind == "synthetic":
        return SYNTHETIC_LICENCE
    if kind == "wlasl":
        return WLASL_LICENCE
    if kind == "dataset":
        return load_field_dataset(source).licence
    manifest = Path(source) / "manifest.json"
    try:
        generator = json.loads(manifest.read_text(encoding="utf-8")).get("generator", "")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        generator = ""
    if "synthetic signer" in str(generator):
        return SYNTHETIC_LICENCE
    return "unknown: a folder of videos (record its licence with the data)"


def build_lineage(
    parent: dict[str, Any],
    dataset: FieldDataset,
    replay: str,
    replay_use: dict[str, Any],
    checkpoint_sha256: str,
    given_parent_licence: str | None = None,
) -> dict[str, Any]:
    """The ``lineage`` block of a model fine-tuned from ``parent`` (its manifest) on ``dataset``,
    replaying ``replay`` (``replay_use``: its seed and how many examples); the caller adds the
    training settings."""
    replay_entry: dict[str, Any] = {"source": replay}
    if replay != "none":
        kind = source_kind(replay)
        replay_entry.update(
            {
                "kind": kind,
                "subset": "train",
                "examples": replay_use["examples"],
                "licence": replay_licence(replay),
                **({"seed": replay_use["seed"]} if kind == "synthetic" else {}),
            }
        )
    return {
        "parent_model_id": parent.get("model_id"),
        "parent_checkpoint_sha256": checkpoint_sha256,
        "dataset_version": dataset.version,
        "dataset": dataset.describe(),
        "replay": replay_entry,
        "licences": {
            "parent_weights": parent_licence(parent, given_parent_licence),
            "dataset": dataset.licence,
            "replay": replay_entry.get("licence", "no replay"),
        },
    }
