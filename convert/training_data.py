"""What a fine-tuning run trains on: the field dataset's train split and the replayed examples.

Both are held in memory as the runtime's uint8 crops (4.8 MB an example at T=32, 224x224), so that
augmenting one costs no decoding. The replay is read from any labelled source
(``convert.sources``) on its training side only (``hold_out``): never the examples ``asl-edge
evaluate`` later measures the model on. Field examples of words the model does not know are left
out and counted, never silently dropped.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter

from convert.batches import FIELD
from convert.field_dataset import FieldDataset
from convert.sources import SYNTHETIC, LabelledCrops, field_crops, knows_synthetic_glosses, open_crops
from edge.core.bundle import ModelSpec
from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

NO_REPLAY = "none"


class TrainingDataError(AslEdgeError):
    """There is nothing to train on, or no replay source to keep what the model knew."""


@dataclasses.dataclass
class TrainingExamples:
    field: list[LabelledCrops]
    replay: list[LabelledCrops]
    unknown_glosses: Counter[str] = dataclasses.field(default_factory=Counter)

    def pool(self, pool: int) -> list[LabelledCrops]:
        return self.field if pool == FIELD else self.replay


def resolve_replay(replay: str | None, spec: ModelSpec) -> str:
    """The replay source: as given, else the synthetic signer for a model of its words."""
    if replay is not None:
        return replay
    if knows_synthetic_glosses(spec):
        return SYNTHETIC
    raise TrainingDataError(
        "pass --replay with the data the model was trained on (a WLASL split nslt_N.json, a folder "
        "of labelled videos) so that it does not forget it, or --replay none"
    )


def replay_count(count: int, num_classes: int) -> int:
    """``count``, else eight examples per class, at most 256."""
    return count or min(8 * num_classes, 256)


def load_examples(
    spec: ModelSpec, dataset: FieldDataset, replay: str, count: int, seed: int
) -> TrainingExamples:
    """The dataset's train split and ``replay_count(count)`` replayed examples."""
    examples = TrainingExamples([], [])
    for item in field_crops(dataset, spec, "train"):
        if item.label is None:
            examples.unknown_glosses[item.gloss or "?"] += 1
        else:
            examples.field.append(item)
    if examples.unknown_glosses:
        log.warning(
            "left out %d examples of words the model does not know: %s",
            sum(examples.unknown_glosses.values()),
            ", ".join(sorted(examples.unknown_glosses)),
        )
    if not examples.field:
        raise TrainingDataError(f"{dataset.root}: no train examples of the model's words")
    if replay != NO_REPLAY:
        items = open_crops(replay, spec, replay_count(count, spec.num_classes), seed, "train", hold_out=True)
        examples.replay = [item for item in items if item.label is not None]
    return examples
