"""``asl-edge rollout step``: read the channel's pointer and the fleet's feedback, decide
(calibration/fleet/decide.py), and apply the decision by re-signing the pointer
(edge/runtime/pointer_moves.py). Meant for a timer or a CI job on the publisher's machine.

The feedback is mirrored into a cache that persists between steps (only new batches are fetched),
from the day before the candidate started on (a batch is filed under the day of its first answer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from calibration.dataset.errors import NoFeedback
from calibration.fleet.decide import Decision, Thresholds, decide
from calibration.fleet.feedback import FleetFeedback, Tallies
from edge.runtime.channel import Channel
from edge.runtime.pointer_moves import HOLD, apply_decision, read_current
from edge.runtime.release_keys import load_private_key
from edge.runtime.releases import POINTER_FILE, ReleaseError
from edge.runtime.s3 import S3Settings, parse_s3_url

Say = Callable[[str], None]


@dataclass(frozen=True)
class StepPlan:
    channel: str
    feedback: str
    key: Path
    endpoint_url: str = ""
    credentials_file: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)
    dry_run: bool = False
    cache: Path | None = None  # default: $XDG_CACHE_HOME/asl-edge/feedback/<bucket>/<prefix>


def default_cache(feedback: str) -> Path:
    location = parse_s3_url(feedback)
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asl-edge" / "feedback"
    return root / location.bucket / (location.prefix.replace("/", "_") or "_")


def _cutoff(iso: str) -> str:
    """A pointer's time as the judged table compares it: YYYY-MM-DDTHH:MM:SS."""
    return iso.replace("Z", "")[:19]


def run_step(plan: StepPlan, say: Say) -> Decision:
    """The analysis (``say`` gets each line), then the decision, applied unless ``dry_run``."""
    private_key = load_private_key(plan.key)
    channel = Channel(plan.channel, S3Settings(plan.endpoint_url, None, plan.credentials_file))
    current = read_current(channel, private_key)
    pointer = current.pointer
    if pointer is None:
        what = "has no pointer" if current.sequence == 0 else "is not signed by this key"
        raise ReleaseError(f"{channel.location.url(POINTER_FILE)} {what}: nothing to step")
    say(f"channel {channel.location.url()}: stable {pointer.version} (sequence {pointer.sequence})")
    candidate = pointer.candidate
    if candidate is None:
        return decide(pointer, Tallies.empty(), Tallies.empty(), plan.thresholds, datetime.now(timezone.utc))
    settings = S3Settings(plan.endpoint_url, None, plan.credentials_file, unsigned_without_credentials=True)
    feedback = FleetFeedback(plan.feedback, settings, plan.cache or default_cache(plan.feedback))
    since_day = (date.fromisoformat(candidate.started[:10]) - timedelta(days=1)).isoformat()
    try:
        feedback.load(since_day)
        since_start = feedback.tallies(_cutoff(candidate.started))
        since_step = feedback.tallies(_cutoff(candidate.step_began))
        say(f"feedback {feedback.location.url()}: {feedback.batches} batches from {since_day} on")
    except NoFeedback as exc:
        say(f"feedback: {exc}")
        since_start = since_step = Tallies.empty()
    finally:
        feedback.close()
    decision = decide(pointer, since_start, since_step, plan.thresholds, datetime.now(timezone.utc))
    for line in decision.lines:
        say(line)
    if decision.decision == HOLD:
        return decision
    if plan.dry_run:
        say("dry run: the pointer is unchanged")
        return decision
    moved = apply_decision(
        channel,
        private_key,
        pointer,
        decision.decision,
        decision.why,
        plan.thresholds.document(),
        decision.fraction,
    )
    now = (
        f"candidate {moved.candidate.version} at {moved.candidate.fraction:g}"
        if moved.candidate
        else "no candidate"
    )
    say(f"{channel.location.url()} now points to stable {moved.version}, {now} (sequence {moved.sequence})")
    return decision
