"""``asl-edge fleet report``: how each release does in the field, from the kiosks' own feedback.

Accuracy per release (serving, and in shadow), per cohort, per word and per kiosk, each with its
count and Wilson interval; the paired table of shadow against serving on the same signs, with the
discordant counts and McNemar's exact p; and the feedback volume. ``DIR/report.json`` holds the
figures, ``DIR/report.html`` shows them on one self-contained page (calibration/fleet/page.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.fleet.feedback import ALL, Count, FleetFeedback, Tallies
from calibration.fleet.stats import Accuracy, Pairs, mcnemar_exact, paired_difference, z_of
from edge import __version__
from edge.core.atomic import atomic_write_text
from edge.core.utc import utc_iso
from edge.runtime.s3 import S3Settings

KIND = "asl-edge-fleet-report"
FORMAT = 1
CACHE_DIR = ".cache"
LOCAL = "local:"  # names a local bundle (no release version) by its model id: local:<model id>


@dataclass(frozen=True)
class ReportPlan:
    source: str
    out: Path
    endpoint_url: str = ""
    credentials_file: str = ""
    since: str | None = None  # YYYY-MM-DD, UTC
    confidence: float = 0.95


def release_name(version: str, model_id: str) -> str:
    """A release by its version; a local bundle (no version) by its model id."""
    return version or f"{LOCAL}{model_id}"


def accuracy_entry(correct: int, judged: int, z: float) -> dict[str, Any]:
    """``judged``, ``correct``, ``accuracy`` and its interval ``ci_low``-``ci_high`` (null when
    nothing was judged)."""
    accuracy = Accuracy.of(correct, judged, z)
    known = judged > 0
    return {
        "judged": judged,
        "correct": correct,
        "accuracy": round(accuracy.value, 6) if accuracy.value is not None else None,
        "ci_low": round(accuracy.low, 6) if known else None,
        "ci_high": round(accuracy.high, 6) if known else None,
    }


def _grouped(counts: list[Count], names: tuple[str, ...], z: float) -> list[dict[str, Any]]:
    """Rows of (version, model id, *names) counts as JSON objects."""
    rows = []
    for count in counts:
        version, model_id, *rest = count.key
        rows.append(
            {
                "release": release_name(version, model_id),
                **dict(zip(names, rest, strict=True)),
                **accuracy_entry(count.correct, count.judged, z),
            }
        )
    return rows


def figures(tallies: Tallies, confidence: float) -> dict[str, Any]:
    """The report's figures (what ``report.json`` holds besides its header)."""
    z = z_of(confidence)
    releases: dict[str, dict[str, Any]] = {}
    for count in tallies.releases:
        role, version, model_id = count.key
        if role == "serving":
            name = release_name(version, model_id)
            releases[name] = {
                "version": version,
                "model_id": model_id,
                **accuracy_entry(count.correct, count.judged, z),
                "shadow": None,
            }
    for count in tallies.releases:
        role, version, _ = count.key
        if role == "shadow":
            entry = releases.setdefault(
                version, {"version": version, "model_id": "", **accuracy_entry(0, 0, z), "shadow": None}
            )
            entry["shadow"] = accuracy_entry(count.correct, count.judged, z)
    paired = []
    for pair in tallies.paired:
        cells = Pairs(pair.both_right, pair.serving_only, pair.shadow_only, pair.both_wrong)
        difference = paired_difference(cells, z)
        paired.append(
            {
                "serving": pair.serving_version,
                "shadow": pair.shadow_version,
                "pairs": pair.pairs,
                "both_right": pair.both_right,
                "serving_only": pair.serving_only,
                "shadow_only": pair.shadow_only,
                "both_wrong": pair.both_wrong,
                "difference": round(difference.value, 6),
                "ci_low": round(difference.low, 6),
                "ci_high": round(difference.high, 6),
                "mcnemar_p": round(mcnemar_exact(pair.serving_only, pair.shadow_only), 6),
            }
        )
    volume: dict[tuple[str, str], dict[str, Any]] = {}
    for row in tallies.volume:
        entry = volume.setdefault(
            (release_name(row.version, row.model_id), row.cohort),
            {
                "release": release_name(row.version, row.model_id),
                "cohort": row.cohort,
                "answers": 0,
                "kiosk_days": 0,
                "named": 0,
            },
        )
        entry["answers"] += row.answers
        entry["kiosk_days"] += row.kiosks
        entry["named"] += row.named
    for entry in volume.values():
        entry["answers_per_kiosk_day"] = round(entry["answers"] / max(1, entry["kiosk_days"]), 2)
        entry["named_share"] = round(entry["named"] / max(1, entry["answers"]), 4)
    days = []
    for count in tallies.days:
        role, version, model_id, day = count.key
        name = release_name(version, model_id) if role == "serving" else version
        days.append(
            {"role": role, "release": name, "day": day, **accuracy_entry(count.correct, count.judged, z)}
        )
    return {
        "releases": releases,
        "cohorts": _grouped(tallies.cohorts, ("cohort",), z),
        "words": _grouped(tallies.words, ("word",), z),
        "devices": _grouped(tallies.devices, ("device",), z),
        "days": days,
        "paired": paired,
        "feedback_volume": list(volume.values()),
    }


def build_report(plan: ReportPlan) -> dict[str, Any]:
    """Read the synced feedback, write ``report.json`` and ``report.html``; returns the report."""
    from calibration.fleet.page import render_page

    settings = S3Settings(plan.endpoint_url, None, plan.credentials_file, unsigned_without_credentials=True)
    feedback = FleetFeedback(plan.source, settings, plan.out / CACHE_DIR)
    try:
        feedback.load(plan.since)
        tallies = feedback.tallies(ALL)
        sql = dict(feedback.sql)
    finally:
        feedback.close()
    report = {
        "kind": KIND,
        "format": FORMAT,
        "created": utc_iso(),
        "tool": f"asl-edge {__version__}",
        "source": {"uri": feedback.location.url(), "since": plan.since, "batches": feedback.batches},
        "confidence": plan.confidence,
        "judged": sum(c.judged for c in tallies.releases if c.key[0] == "serving"),
        **figures(tallies, plan.confidence),
        "sql": sql,
    }
    plan.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plan.out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(plan.out / "report.html", render_page(report))
    return report
