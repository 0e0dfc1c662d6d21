"""Which subset an example belongs to: a rule of its own id (and day), never of the rest of the data.

By default the first 8 bytes of the SHA-256 of the prediction id, as a fraction of 2**64, decide:
below 0.70 train, below 0.85 val, else test. An example keeps its subset however much data is
added later, and no prediction can be in two subsets. With ``holdout_since`` every prediction made
on that UTC day or later is test, and the hash divides the earlier ones between train and val in
the same 70:15 proportion.
"""

from __future__ import annotations

import hashlib

SUBSETS = ("train", "val", "test")
TRAIN_FRACTION = 0.70
VAL_FRACTION = 0.15


def hash_position(prediction_id: str) -> float:
    """A fraction in [0, 1) fixed by the id alone."""
    digest = hashlib.sha256(prediction_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def subset_of(prediction_id: str, predicted_day: str, holdout_since: str | None = None) -> str:
    """``train``, ``val`` or ``test`` for one example; ``predicted_day`` is its YYYY-MM-DD (UTC)."""
    position = hash_position(prediction_id)
    if holdout_since is not None:
        if predicted_day >= holdout_since:
            return "test"
        return "train" if position < TRAIN_FRACTION / (TRAIN_FRACTION + VAL_FRACTION) else "val"
    if position < TRAIN_FRACTION:
        return "train"
    return "val" if position < TRAIN_FRACTION + VAL_FRACTION else "test"


def split_rule(holdout_since: str | None) -> dict[str, object]:
    """The rule as the manifest records it."""
    rule: dict[str, object] = {
        "by": "sha256(prediction_id)[:8] / 2**64",
        "fractions": {
            "train": TRAIN_FRACTION,
            "val": VAL_FRACTION,
            "test": round(1 - TRAIN_FRACTION - VAL_FRACTION, 6),
        },
    }
    if holdout_since is not None:
        rule["holdout_since"] = holdout_since
        rule["note"] = (
            "predictions made on holdout_since (UTC) or later are test; the earlier train:val 70:15"
        )
    return rule
