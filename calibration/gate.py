"""The gate between a fine-tuned candidate and the model it would replace: PASS, FAIL or INCONCLUSIVE.

Field test splits are small (a kiosk's few weeks of consented clips), so the comparison is paired:
both models answer the same clips, and only the clips where they disagree about being right say
anything. The exact sign test on those discordant clips asks whether the candidate fixed more than
it broke by more than chance (one-sided, ``alpha``); an improvement from 8 of 20 to 18 of 20 clips is
ten fixes against none, p = 0.001. On the regression source (what the model knew before) the
candidate may lose at most ``margin`` of top-1 overall, and no class may drop by more than
``max_class_drop`` where the class has enough clips to tell (one clip moves it by no more than the
threshold).

- **FAIL** when the candidate damaged something: a regression beyond the margin, a class that
  dropped, or significantly worse on the new data; or when it is simply no better on new data that
  had enough clips to show an improvement.
- **PASS** when nothing was damaged and it is significantly better on the new data.
- **INCONCLUSIVE** when nothing was damaged but the data cannot decide: too few clips the baseline
  gets wrong for any improvement to be significant, a trend too weak for the clips there are, or a
  regression source too small to resolve the margin. It says how many clips would be needed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from calibration.accuracy import Accuracy, Answer

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


def sign_test_p(wins: int, losses: int) -> float:
    """P(at least ``wins`` of ``wins + losses`` fair coin flips): the exact one-sided sign test."""
    n = wins + losses
    if n == 0:
        return 1.0
    return min(1.0, sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n)


def fixes_needed(alpha: float) -> int:
    """The fewest discordant clips that can be significant at all: all fixes, no breaks."""
    return max(1, math.ceil(math.log2(1.0 / alpha) + 1e-12))


def clips_for_resolution(tolerance: float) -> int:
    """Clips for one clip to weigh no more than ``tolerance``."""
    return math.ceil(1.0 / tolerance - 1e-9) if tolerance > 0 else 0


@dataclass(frozen=True)
class Paired:
    """How the candidate and the baseline did on the same clips."""

    n: int
    wins: int  # candidate right, baseline wrong
    losses: int  # baseline right, candidate wrong
    baseline_wrong: int

    @classmethod
    def of(cls, candidate: list[Answer], baseline: list[Answer]) -> Paired:
        by_name = {answer.name: answer for answer in baseline}
        pairs = [(answer, by_name[answer.name]) for answer in candidate if answer.name in by_name]
        return cls(
            n=len(pairs),
            wins=sum(c.top1 and not b.top1 for c, b in pairs),
            losses=sum(b.top1 and not c.top1 for c, b in pairs),
            baseline_wrong=sum(not b.top1 for _, b in pairs),
        )

    @property
    def p_better(self) -> float:
        return sign_test_p(self.wins, self.losses)

    @property
    def p_worse(self) -> float:
        return sign_test_p(self.losses, self.wins)


@dataclass(frozen=True)
class GateRules:
    alpha: float = 0.05
    margin: float = 0.01
    max_class_drop: float = 0.10


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reasons: list[str] = field(default_factory=list)
    needed: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def class_drops(candidate: Accuracy, baseline: Accuracy, rules: GateRules, what: str) -> list[str]:
    """Classes whose top-1 fell by more than the threshold, where they have clips enough to tell."""
    judged = clips_for_resolution(rules.max_class_drop)
    drops = []
    for gloss, counts in baseline.per_class.items():
        if counts.n < judged:
            continue
        drop = baseline.class_top1(gloss) - candidate.class_top1(gloss)
        if drop > rules.max_class_drop + 1e-12:
            drops.append(
                f"{what}: '{gloss}' drops {drop * 100:.0f} points ({baseline.class_top1(gloss):.0%} -> "
                f"{candidate.class_top1(gloss):.0%} of {counts.n} clips; allowed {rules.max_class_drop:.0%})"
            )
    return drops


def judge(
    new: Paired,
    new_accuracy: tuple[Accuracy, Accuracy],
    regression: tuple[Accuracy, Accuracy],
    rules: GateRules,
) -> Verdict:
    """The verdict from the paired new-data comparison and both models' accuracies
    (``(candidate, baseline)`` on the new data and on the regression source)."""
    damage: list[str] = []
    candidate_reg, baseline_reg = regression
    loss = baseline_reg.fraction("top1") - candidate_reg.fraction("top1")
    if loss > rules.margin + 1e-12:
        damage.append(
            f"regression: loses {loss * 100:.1f} top-1 points ({baseline_reg.fraction('top1'):.1%} -> "
            f"{candidate_reg.fraction('top1'):.1%} of {baseline_reg.n} clips; allowed "
            f"{rules.margin * 100:.1f})"
        )
    damage += class_drops(candidate_reg, baseline_reg, rules, "regression")
    damage += class_drops(new_accuracy[0], new_accuracy[1], rules, "new data")
    if new.losses > new.wins and new.p_worse < rules.alpha:
        damage.append(
            f"new data: worse than the baseline ({new.losses} clips broken, {new.wins} fixed, "
            f"p={new.p_worse:.3g})"
        )
    if damage:
        return Verdict(FAIL, damage)
    minimum = fixes_needed(rules.alpha)
    needed_reg = clips_for_resolution(rules.margin)
    reasons: list[str] = []
    needed: list[str] = []
    if baseline_reg.n < needed_reg:
        reasons.append(
            f"regression: only {baseline_reg.n} clips, one clip moves top-1 by "
            f"{100 / max(1, baseline_reg.n):.1f} points, coarser than the "
            f"{rules.margin * 100:.1f}-point margin"
        )
        needed.append(f"{needed_reg} regression clips (--regression-count)")
    if new.wins > new.losses and new.p_better < rules.alpha:
        if reasons:
            return Verdict(INCONCLUSIVE, reasons, "; ".join(needed))
        return Verdict(
            PASS,
            [
                f"new data: {new.wins} clips fixed, {new.losses} broken of {new.n} (p={new.p_better:.3g}); "
                f"regression: {loss * 100:+.1f} top-1 points lost"
            ],
        )
    if new.baseline_wrong < minimum:
        reasons.append(
            f"new data: the baseline is wrong on only {new.baseline_wrong} of {new.n} test clips; even "
            f"fixing all would need {minimum} to be significant (alpha {rules.alpha:g})"
        )
        error_rate = new.baseline_wrong / new.n if new.n else 0.0
        total = math.ceil(minimum / error_rate) if error_rate else None
        needed.append(
            f"{minimum} test clips the baseline gets wrong"
            + (f" (about {total} at its {error_rate:.0%} error rate)" if total else "")
        )
        return Verdict(INCONCLUSIVE, reasons, "; ".join(needed))
    if new.wins > new.losses:
        scale = 1
        while sign_test_p(new.wins * scale, new.losses * scale) >= rules.alpha and scale < 1000:
            scale += 1
        reasons.append(
            f"new data: {new.wins} clips fixed, {new.losses} broken of {new.n} (p={new.p_better:.3g}), "
            f"not significant at alpha {rules.alpha:g}"
        )
        needed.append(f"about {new.n * scale} test clips at this rate of fixes")
        return Verdict(INCONCLUSIVE, reasons, "; ".join(needed))
    return Verdict(
        FAIL,
        [
            f"new data: no better than the baseline ({new.wins} clips fixed, {new.losses} broken of "
            f"{new.n}, {new.baseline_wrong} it could have fixed)"
        ],
    )
