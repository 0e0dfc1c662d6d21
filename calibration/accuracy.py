"""Models run on labelled clips: each clip's ranked answers, and the accuracy they add up to.

The one place where a model's output becomes right or wrong, shared by INT8 calibration's report
(every precision of one bundle against its FP32) and ``asl-edge evaluate`` (a candidate bundle
against its baseline). Answers are compared by gloss, so models whose class lists differ in order
or content are compared fairly: a word a model does not know is always wrong for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from calibration.runners import Runner
from convert.sources import LabelledClip
from edge.core.decode import class_scores

TOP_K = 5


@dataclass(frozen=True)
class Answer:
    """A model's ranked glosses (best first, ``TOP_K`` of them) for one labelled clip."""

    name: str
    truth: str
    ranked: tuple[str, ...]

    @property
    def top1(self) -> bool:
        return bool(self.ranked) and self.ranked[0] == self.truth

    @property
    def top5(self) -> bool:
        return self.truth in self.ranked[:TOP_K]


def ranked_glosses(logits: np.ndarray, labels: tuple[str, ...]) -> tuple[str, ...]:
    order = np.argsort(-class_scores(logits))[:TOP_K]
    return tuple(labels[int(i)] for i in order)


def answer_clips(
    runners: Mapping[str, tuple[Runner, tuple[str, ...]]],
    clips: Iterable[LabelledClip],
    on_clip: Callable[[], None] = lambda: None,
) -> dict[str, list[Answer]]:
    """Every model's answer to every clip with a gloss (unlabelled clips are skipped), one clip at a
    time; ``runners`` maps a model's name to how it runs and its class list."""
    answers: dict[str, list[Answer]] = {name: [] for name in runners}
    for item in clips:
        if item.gloss is None:
            continue
        for name, (run, labels) in runners.items():
            answers[name].append(Answer(item.name, item.gloss, ranked_glosses(run(item.clip), labels)))
        on_clip()
    return answers


@dataclass
class ClassCounts:
    n: int = 0
    top1: int = 0
    top5: int = 0


@dataclass(frozen=True)
class Accuracy:
    """Counts of one model on one set of clips: overall, per class, and its confusion matrix."""

    n: int
    top1: int
    top5: int
    per_class: dict[str, ClassCounts] = field(default_factory=dict)
    confusion: dict[str, Counter[str]] = field(default_factory=dict)  # truth -> predicted -> clips

    @classmethod
    def of(cls, answers: Iterable[Answer]) -> Accuracy:
        per_class: dict[str, ClassCounts] = {}
        confusion: dict[str, Counter[str]] = {}
        n = top1 = top5 = 0
        for answer in answers:
            counts = per_class.setdefault(answer.truth, ClassCounts())
            counts.n += 1
            counts.top1 += answer.top1
            counts.top5 += answer.top5
            confusion.setdefault(answer.truth, Counter())[answer.ranked[0] if answer.ranked else "?"] += 1
            n, top1, top5 = n + 1, top1 + answer.top1, top5 + answer.top5
        return cls(n, top1, top5, dict(sorted(per_class.items())), confusion)

    def fraction(self, what: str) -> float:
        return getattr(self, what) / self.n if self.n else 0.0

    def class_top1(self, gloss: str) -> float:
        counts = self.per_class.get(gloss)
        return counts.top1 / counts.n if counts and counts.n else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "top1": self.top1,
            "top5": self.top5,
            "top1_fraction": self.fraction("top1"),
            "top5_fraction": self.fraction("top5"),
            "per_class": {
                gloss: {"n": c.n, "top1": c.top1, "top5": c.top5} for gloss, c in self.per_class.items()
            },
            "confusion": {truth: dict(sorted(row.items())) for truth, row in sorted(self.confusion.items())},
        }
