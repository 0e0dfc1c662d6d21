"""The statistics of a fleet report and a rollout step, on counts of judged signs.

- Wilson's score interval for one accuracy (right for small counts and for 0 % or 100 %, where
  the normal approximation collapses to a point).
- Newcombe's hybrid score interval for the difference of two independent accuracies (candidate
  kiosks against stable kiosks), built from the two Wilson intervals (Newcombe 1998, method 10).
- For paired signs (a shadow and the serving model judged on the same sign): Newcombe's interval
  for a paired difference (method 10 of his paired-data paper, the Wilson intervals of the two
  marginal accuracies corrected by their correlation), and McNemar's exact test on the discordant
  pairs (a two-sided binomial test at one half).

Differences are candidate minus stable, as fractions (0.05 is five points).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist


def z_of(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(correct: int, judged: int, z: float) -> tuple[float, float]:
    """Wilson's interval for ``correct`` of ``judged``; (0, 1) when nothing was judged."""
    if judged <= 0:
        return 0.0, 1.0
    p = correct / judged
    z2 = z * z
    centre = (p + z2 / (2 * judged)) / (1 + z2 / judged)
    half = z * math.sqrt(p * (1 - p) / judged + z2 / (4 * judged * judged)) / (1 + z2 / judged)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Accuracy:
    """Judged signs, how many were right, and Wilson's interval."""

    judged: int
    correct: int
    low: float
    high: float

    @property
    def value(self) -> float | None:
        return self.correct / self.judged if self.judged else None

    @classmethod
    def of(cls, correct: int, judged: int, z: float) -> Accuracy:
        return cls(judged, correct, *wilson(correct, judged, z))


@dataclass(frozen=True)
class Difference:
    """Candidate minus stable, with its interval (fractions)."""

    value: float
    low: float
    high: float


def independent_difference(candidate: Accuracy, stable: Accuracy) -> Difference:
    """Newcombe's hybrid score interval for ``candidate - stable`` of two independent samples."""
    p1, p2 = candidate.value or 0.0, stable.value or 0.0
    low = (p1 - p2) - math.sqrt((p1 - candidate.low) ** 2 + (stable.high - p2) ** 2)
    high = (p1 - p2) + math.sqrt((candidate.high - p1) ** 2 + (p2 - stable.low) ** 2)
    return Difference(p1 - p2, max(-1.0, low), min(1.0, high))


@dataclass(frozen=True)
class Pairs:
    """Signs judged for both models: both right, only the stable (serving) one, only the
    candidate (shadow), neither."""

    both: int
    stable_only: int
    candidate_only: int
    neither: int

    @property
    def count(self) -> int:
        return self.both + self.stable_only + self.candidate_only + self.neither


def paired_difference(pairs: Pairs, z: float) -> Difference:
    """Newcombe's interval for the paired ``candidate - stable`` accuracy difference."""
    n = pairs.count
    if n == 0:
        return Difference(0.0, -1.0, 1.0)
    a, b, c, d = pairs.both, pairs.candidate_only, pairs.stable_only, pairs.neither
    p1, p2 = (a + b) / n, (a + c) / n  # candidate right, stable right
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denominator) if denominator else 0.0
    dl1, du1, dl2, du2 = p1 - l1, u1 - p1, p2 - l2, u2 - p2
    delta = math.sqrt(max(0.0, dl1 * dl1 - 2 * phi * dl1 * du2 + du2 * du2))
    epsilon = math.sqrt(max(0.0, du1 * du1 - 2 * phi * du1 * dl2 + dl2 * dl2))
    return Difference(p1 - p2, max(-1.0, p1 - p2 - delta), min(1.0, p1 - p2 + epsilon))


def mcnemar_exact(stable_only: int, candidate_only: int) -> float:
    """The two-sided exact McNemar p: the discordant pairs as a binomial test at one half."""
    n = stable_only + candidate_only
    if n == 0:
        return 1.0
    k = min(stable_only, candidate_only)
    log_half = n * math.log(0.5)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half)
        for i in range(k + 1)
    )
    return min(1.0, 2.0 * tail)
