"""What ``asl-edge evaluate`` found: both models on each set of clips, and the verdict."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.accuracy import Accuracy
from calibration.gate import Paired, Verdict


@dataclass(frozen=True)
class SetResult:
    """Both models on one set of clips."""

    name: str
    source: str
    candidate: Accuracy
    baseline: Accuracy
    paired: Paired

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "candidate": self.candidate.to_dict(),
            "baseline": self.baseline.to_dict(),
            "paired": {
                **dataclasses.asdict(self.paired),
                "p_better": self.paired.p_better,
                "p_worse": self.paired.p_worse,
            },
        }


@dataclass(frozen=True)
class Evaluation:
    candidate_id: str
    baseline_id: str
    new: SetResult
    regression: SetResult
    verdict: Verdict
    report_dir: Path
    record: dict[str, Any]
