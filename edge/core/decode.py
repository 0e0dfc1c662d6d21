"""From logits to words: combine scores over time, softmax, top-k, minimum confidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Combine = Literal["mean", "max"]
UNKNOWN_WORD = "unknown"


@dataclass(frozen=True)
class Scored:
    word: str
    score: float


@dataclass(frozen=True)
class Decoded:
    """The recognized word (``unknown`` below the confidence floor) and the top-k behind it."""

    word: str
    confidence: float
    top_k: tuple[Scored, ...]


def class_scores(logits: np.ndarray, combine: str = "mean") -> np.ndarray:
    """Per-time-step logits ``(..., C, T')`` to one score per class, as WLASL's two test modes."""
    if combine == "mean":
        return logits.mean(axis=-1).reshape(-1)
    if combine == "max":
        return logits.max(axis=-1).reshape(-1)
    raise ValueError(f"combine must be 'mean' or 'max', got {combine!r}")


def combine_windows(window_scores: list[np.ndarray], combine: str = "mean") -> np.ndarray:
    """The class scores of several windows of one sign as one, the same way as over time."""
    stacked = np.stack(window_scores)
    return stacked.max(axis=0) if combine == "max" else stacked.mean(axis=0)


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


def decode(
    scores: np.ndarray, labels: tuple[str, ...], top_k: int = 5, min_confidence: float = 0.0
) -> Decoded:
    """Class scores ``(C,)`` (logits) to the best word and the ``top_k`` most probable words."""
    probabilities = softmax(scores.astype(np.float64))
    order = np.argsort(-probabilities, kind="stable")[: max(1, top_k)]
    best = int(order[0])
    confidence = float(probabilities[best])
    word = labels[best] if confidence >= min_confidence else UNKNOWN_WORD
    ranked = tuple(Scored(labels[int(i)], float(probabilities[int(i)])) for i in order)
    return Decoded(word=word, confidence=confidence, top_k=ranked)
