"""``asl-edge rollout step``'s rules: from the fleet's judged signs to promote, expand, rollback or
hold.

The evidence is the candidate against the stable release over the same time: the candidate's
judged signs where it served (canary kiosks) against the stable release's (the other kiosks), an
independent comparison; or, for a shadow rollout, the signs both models read (the stable one
serving, the candidate in shadow) whose right word the user named, a paired comparison.

- **rollback** as soon as the candidate is worse than stable beyond the margin with confidence:
  the upper bound of the difference (candidate minus stable) is below ``-margin`` over everything
  since the candidate started; for a shadow, McNemar's exact test on the discordant signs must
  agree at the same confidence.
- **promote** or **expand** when, since the current step began, the candidate has at least
  ``min_judged`` judged signs, the step has baked ``bake_s`` seconds, and the lower bound of the
  difference is above ``-margin`` (not worse beyond the margin). Expand moves the fraction to the
  next of ``steps``; past the last one below 1 it is a promotion. Each step earns the next on its
  own evidence: what counted for one step does not count again.
- **hold** otherwise, saying what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from calibration.fleet.feedback import Tallies
from calibration.fleet.stats import (
    Accuracy,
    Difference,
    Pairs,
    independent_difference,
    mcnemar_exact,
    paired_difference,
    z_of,
)
from edge.runtime.pointer_moves import EXPAND, HOLD, PROMOTE, ROLLBACK
from edge.runtime.releases import Candidate, ChannelPointer

DEFAULT_STEPS = (0.1, 0.5, 1.0)


@dataclass(frozen=True)
class Thresholds:
    """The flags of ``rollout step``; recorded with each decision in the pointer's history."""

    min_judged: int = 60
    bake_s: float = 0.0
    margin: float = 0.1
    confidence: float = 0.95
    steps: tuple[float, ...] = DEFAULT_STEPS

    def document(self) -> dict[str, object]:
        return {
            "min_judged": self.min_judged,
            "bake_s": self.bake_s,
            "margin": self.margin,
            "confidence": self.confidence,
            "steps": list(self.steps),
        }

    def next_fraction(self, fraction: float) -> float | None:
        """The next step after ``fraction``; None when the next one is everybody (a promotion)."""
        for step in self.steps:
            if step > fraction + 1e-9:
                return step if step < 1.0 else None
        return None


@dataclass(frozen=True)
class Evidence:
    """The candidate against stable over one window."""

    paired: bool
    candidate: Accuracy
    stable: Accuracy
    difference: Difference
    discordant: tuple[int, int] = (0, 0)  # (stable only right, candidate only right), paired
    p_value: float | None = None  # McNemar's exact p, paired

    @property
    def judged(self) -> int:
        return self.candidate.judged


@dataclass(frozen=True)
class Decision:
    decision: str
    why: str
    fraction: float | None = None  # expand: the new fraction
    lines: list[str] = field(default_factory=list)  # the analysis, printed before the decision


def evidence(tallies: Tallies, pointer: ChannelPointer, candidate: Candidate, z: float) -> Evidence:
    """What the tallies say of ``candidate`` against the pointer's stable release."""
    if candidate.shadow:
        counts = tallies.pairs(pointer.version, candidate.version)
        pairs = Pairs(counts.both_right, counts.serving_only, counts.shadow_only, counts.both_wrong)
        n = pairs.count
        return Evidence(
            True,
            Accuracy.of(pairs.both + pairs.candidate_only, n, z),
            Accuracy.of(pairs.both + pairs.stable_only, n, z),
            paired_difference(pairs, z),
            (pairs.stable_only, pairs.candidate_only),
            mcnemar_exact(pairs.stable_only, pairs.candidate_only),
        )
    cand, stable = tallies.serving(candidate.version), tallies.serving(pointer.version)
    a, b = Accuracy.of(cand.correct, cand.judged, z), Accuracy.of(stable.correct, stable.judged, z)
    return Evidence(False, a, b, independent_difference(a, b))


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def _accuracy(accuracy: Accuracy) -> str:
    if not accuracy.judged:
        return "no judged signs"
    return (
        f"{accuracy.correct} of {accuracy.judged} right ({(accuracy.value or 0) * 100:.1f}%, "
        f"CI {accuracy.low * 100:.1f}-{accuracy.high * 100:.1f}%)"
    )


def describe(evidence: Evidence, pointer: ChannelPointer, candidate: Candidate, window: str) -> list[str]:
    """The analysis of one window, a line a fact."""
    how = (
        "paired: both models on the same signs" if evidence.paired else "candidate kiosks against the others"
    )
    lines = [
        f"{window} ({how}):",
        f"  candidate {candidate.version}: {_accuracy(evidence.candidate)}",
        f"  stable {pointer.version}: {_accuracy(evidence.stable)}",
    ]
    if evidence.candidate.judged and evidence.stable.judged:
        diff = evidence.difference
        lines.append(
            f"  difference {_points(diff.value)} points (CI {_points(diff.low)} to {_points(diff.high)})"
        )
    if evidence.paired:
        stable_only, candidate_only = evidence.discordant
        lines.append(
            f"  discordant signs: stable only right {stable_only}, candidate only right {candidate_only}; "
            f"McNemar exact p = {evidence.p_value:.4g}"
        )
    return lines


def _elapsed_s(since: str, now: datetime) -> float:
    return (now - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()


def decide(
    pointer: ChannelPointer,
    since_start: Tallies,
    since_step: Tallies,
    thresholds: Thresholds,
    now: datetime,
) -> Decision:
    """The rollout's next move for the pointer's candidate, from the counts of two windows: since
    the candidate started (for a rollback) and since its current step began."""
    candidate = pointer.candidate
    if candidate is None:
        return Decision(HOLD, "no candidate is rolling out (publish --candidate starts one)")
    z = z_of(thresholds.confidence)
    margin = thresholds.margin
    level = f"{thresholds.confidence:.0%}"
    whole = evidence(since_start, pointer, candidate, z)
    step = evidence(since_step, pointer, candidate, z)
    lines = [
        f"candidate {candidate.version} at {candidate.fraction:g} of the kiosks"
        f"{' in shadow' if candidate.shadow else ''}, step {candidate.step} since {candidate.step_began}; "
        f"stable {pointer.version}; intervals at {level}",
        *describe(whole, pointer, candidate, f"since the candidate started ({candidate.started})"),
        *describe(step, pointer, candidate, f"since step {candidate.step} began ({candidate.step_began})"),
    ]
    worse = (
        whole.candidate.judged > 0
        and whole.stable.judged > 0
        and whole.difference.high < -margin
        and (not whole.paired or (whole.p_value or 1.0) < 1 - thresholds.confidence)
    )
    if worse:
        why = (
            f"worse than stable {pointer.version} beyond the margin of {margin * 100:g} points: "
            f"{whole.candidate.correct} of {whole.candidate.judged} right against "
            f"{whole.stable.correct} of {whole.stable.judged}, difference {_points(whole.difference.value)} "
            f"points (upper bound {_points(whole.difference.high)}"
            + (f", McNemar p = {whole.p_value:.3g}" if whole.paired else "")
            + f"); {candidate.version} leaves the channel, "
            + (
                "its kiosks stop running it in shadow"
                if candidate.shadow
                else f"its kiosks return to {pointer.version}"
            )
        )
        return Decision(ROLLBACK, why, None, lines)
    missing = []
    unit = "judged signs in shadow" if step.paired else "judged signs"
    if step.judged < thresholds.min_judged:
        missing.append(f"{step.judged} of {thresholds.min_judged} {unit}")
    if not step.paired and step.stable.judged == 0:
        missing.append(f"no judged signs of stable {pointer.version} to compare")
    baked_s = _elapsed_s(candidate.step_began, now)
    if baked_s < thresholds.bake_s:
        missing.append(f"baked {max(0.0, baked_s):.0f} of {thresholds.bake_s:g} s")
    enough = step.judged >= thresholds.min_judged and step.stable.judged > 0
    if enough and step.difference.low <= -margin:  # more signs narrow the interval
        missing.append(
            f"not yet within the margin: the difference's lower bound is {_points(step.difference.low)} "
            f"points, it must be above {-margin * 100:g}"
        )
    if missing:
        return Decision(HOLD, "; ".join(missing), None, lines)
    evidence_text = (
        f"{step.judged} {unit} since step {candidate.step}, not worse than stable beyond "
        f"{margin * 100:g} points (difference {_points(step.difference.value)}, lower bound "
        f"{_points(step.difference.low)}), baked {baked_s:.0f} s"
    )
    following = thresholds.next_fraction(candidate.fraction)
    if following is None:
        why = f"{evidence_text}: {candidate.version} becomes the stable release for every kiosk"
        return Decision(PROMOTE, why, None, lines)
    why = f"{evidence_text}: {candidate.fraction:g} -> {following:g} of the kiosks"
    return Decision(EXPAND, why, following, lines)
