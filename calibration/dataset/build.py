"""``asl-edge dataset build``: from the bucket to a versioned dataset directory.

List the prefix; fetch the CSV batches of the days chosen and the revocation lists into
``DIR/.cache``; let DuckDB pick each prediction's latest answer and sort the predictions into
examples and skipped (why); fetch, verify and copy the clips of the examples; split; write
``videos/<prediction_id>.mp4``, ``labels.txt``, ``split.json`` (WLASL's ``nslt_N.json`` shape) and
``manifest.json`` last, so a manifest always describes a finished build. The dataset's
``version`` hashes what a consumer trains on (ids, labels, subsets, video bytes, the class list),
so a rebuild from the same bucket gives the same version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from calibration.dataset.bucket import BucketMirror, Listing, ObjectGone, RemoteObject, safe_key
from calibration.dataset.errors import DatasetError, NoFeedback
from calibration.dataset.query import DATABASE_FILE, FeedbackQuery, Tally, UsableRow, open_database
from calibration.dataset.revocations import read_revocations
from calibration.dataset.split import SUBSETS, split_rule, subset_of
from calibration.dataset.videos import BadClip, ClipInfo, inspect_clip
from edge import __version__
from edge.core.atomic import atomic_write_text
from edge.core.bundle import LABELS_FILE, read_labels
from edge.runtime.s3 import S3Settings, parse_s3_url

log = logging.getLogger(__name__)

FORMAT = 1
KIND = "asl-edge-dataset"
LICENCE = "consented kiosk clips (asl-edge feedback)"
CACHE_DIR = ".cache"
VIDEOS_DIR = "videos"
FETCH_THREADS = 8
_PREDICTION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # what a kiosk accepts (edge/runtime/feedback.py)

Report = Callable[[str], None]


@dataclass(frozen=True)
class BuildPlan:
    """What to build: ``since``/``until``/``holdout_since`` are YYYY-MM-DD days (UTC), or None."""

    source: str
    out: Path
    endpoint_url: str = ""
    credentials_file: str = ""
    since: str | None = None
    until: str | None = None
    labels: Path | None = None
    holdout_since: str | None = None
    progress: bool = True


@dataclass
class BuildResult:
    version: str
    examples: int
    per_split: dict[str, int]
    rows: int
    batches: int
    fetched: dict[str, int] = field(default_factory=dict)  # objects downloaded by this run
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Example:
    row: UsableRow
    clip: ClipInfo
    sha256: str
    subset: str


@dataclass(frozen=True)
class Built:
    """Everything the build found, for the files it writes."""

    labels: list[str]
    examples: list[Example]
    tally: Tally
    skipped: Counter[str]
    problems: list[dict[str, str]]
    batches: list[RemoteObject]
    revocations: list[RemoteObject]
    sql: dict[str, str]
    version: str


def class_list(path: Path) -> list[str]:
    """``--labels``: a labels.txt, or a bundle folder holding one; each gloss once."""
    labels = list(read_labels(path / LABELS_FILE if path.is_dir() else path))
    repeated = sorted(gloss for gloss, times in Counter(labels).items() if times > 1)
    if repeated:
        raise DatasetError(f"{path}: {', '.join(repeated)} appear more than once in the class list")
    return labels


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_version(labels: list[str], examples: Iterable[Example]) -> str:
    """sha256 of the class list and each example's id, label, subset and video sha256, in id order."""
    content = {
        "labels": labels,
        "examples": sorted([e.row.prediction_id, e.row.label, e.subset, e.sha256] for e in examples),
    }
    return hashlib.sha256(json.dumps(content, separators=(",", ":")).encode("utf-8")).hexdigest()


class DatasetBuilder:
    """One build; ``report`` gets one line for each clip reported and skipped."""

    def __init__(self, plan: BuildPlan, report: Report) -> None:
        self.plan = plan
        self.report = report
        self.location = parse_s3_url(plan.source)
        self.out = plan.out
        self.cache = plan.out / CACHE_DIR
        settings = S3Settings(
            plan.endpoint_url, None, plan.credentials_file, unsigned_without_credentials=True
        )
        self.labels = class_list(plan.labels) if plan.labels else None
        self.mirror = BucketMirror(self.location, settings, self.cache)
        self.fetched: Counter[str] = Counter({"batches": 0, "revocations": 0, "clips": 0})
        self._counting = threading.Lock()

    def run(self) -> BuildResult:
        listing = self.mirror.list()
        batches = [o for o, day in listing.batches if self._chosen(day)]
        if not batches:
            raise NoFeedback(
                f"no feedback batches under {self.location.url()}/device=*/date=*/{self._days()}"
            )
        self._fetch_all("batches", batches)
        self._fetch_all("revocations", listing.revocations)
        revoked = read_revocations((o.key, self.mirror.local_path(o.key)) for o in listing.revocations)
        database = open_database(self.cache / "duckdb")
        try:
            return self._query(
                FeedbackQuery(database, self.plan.since, self.plan.until), listing, batches, revoked
            )
        finally:
            database.close()
            (self.cache / "duckdb" / DATABASE_FILE).unlink(missing_ok=True)

    def _query(
        self, query: FeedbackQuery, listing: Listing, batches: list[RemoteObject], revoked: set[str]
    ) -> BuildResult:
        query.load([self.mirror.local_path(o.key) for o in batches], revoked)
        labels = self.labels if self.labels is not None else query.vocabulary()
        tally = query.classify(labels)
        if tally.rows == 0:
            raise NoFeedback(f"the feedback batches under {self.location.url()} hold no rows{self._days()}")
        skipped = Counter(tally.skipped)
        problems: list[dict[str, str]] = []
        examples = self._examples(query, listing, skipped, problems)
        self._forget_revoked(query, listing)
        version = dataset_version(labels, examples)
        sql = dict(query.ran)
        built = Built(labels, examples, tally, skipped, problems, batches, listing.revocations, sql, version)
        self._write(built)
        per_split = Counter(e.subset for e in examples)
        return BuildResult(
            version,
            len(examples),
            {subset: per_split[subset] for subset in SUBSETS},
            tally.rows,
            len(batches),
            dict(self.fetched),
            dict(sorted(skipped.items())),
        )

    def _chosen(self, day: str) -> bool:
        return (self.plan.since is None or day >= self.plan.since) and (
            self.plan.until is None or day <= self.plan.until
        )

    def _days(self) -> str:
        since, until = self.plan.since, self.plan.until
        if since is None and until is None:
            return ""
        return f" between {since or 'the first day'} and {until or 'the last day'}"

    def _fetch_all(self, what: str, objects: list[RemoteObject]) -> None:
        """Fetch in parallel (boto3 clients are thread-safe), with a progress bar on stderr."""

        def fetch(item: RemoteObject) -> None:
            try:
                if self.mirror.fetch(item):
                    self._count_fetch(what)
            except ObjectGone:
                raise DatasetError(
                    f"{self.mirror.url(item.key)} disappeared while the build read it"
                ) from None

        with (
            ThreadPoolExecutor(FETCH_THREADS) as pool,
            tqdm(total=len(objects), desc=what, unit="object", disable=not self.plan.progress) as bar,
        ):
            for _ in pool.map(fetch, objects):
                bar.update()

    def _count_fetch(self, what: str) -> None:
        with self._counting:
            self.fetched[what] += 1

    def _examples(
        self, query: FeedbackQuery, listing: Listing, skipped: Counter[str], problems: list[dict[str, str]]
    ) -> list[Example]:
        """Fetch, verify and copy the clip of every usable prediction; the bad ones are skipped."""
        rows = list(query.usable())
        (self.out / VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
        with (
            ThreadPoolExecutor(FETCH_THREADS) as pool,
            tqdm(total=len(rows), desc="clips", unit="clip", disable=not self.plan.progress) as bar,
        ):
            outcomes = []
            for outcome in pool.map(lambda row: self._clip(row, listing), rows):
                outcomes.append(outcome)
                bar.update()
        examples = []
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, BadClip):
                skipped[outcome.reason] += 1
                problems.append({"prediction_id": row.prediction_id, "reason": outcome.reason})
                self.report(f"skipped {row.prediction_id} ({row.clip_key}): {outcome.reason}: {outcome}")
                continue
            info, digest = outcome
            subset = subset_of(row.prediction_id, row.predicted_day, self.plan.holdout_since)
            examples.append(Example(row, info, digest, subset))
        self._remove_stale_videos({e.row.prediction_id for e in examples})
        return examples

    def _clip(self, row: UsableRow, listing: Listing) -> tuple[ClipInfo, str] | BadClip:
        """Worker thread: the clip fetched, checked and copied to videos/, or why it cannot be."""
        if not _PREDICTION_ID.fullmatch(row.prediction_id) or row.prediction_id in (".", ".."):
            return BadClip("bad_prediction_id", "not an id a kiosk issues")
        if not safe_key(row.clip_key):
            return BadClip("clip_missing", "the clip key cannot name an object")
        try:
            remote = listing.others.get(row.clip_key) or self.mirror.head(row.clip_key)
            if self.mirror.fetch(remote):
                self._count_fetch("clips")
        except ObjectGone:
            return BadClip("clip_missing", "the CSV names a clip the bucket does not hold")
        local = self.mirror.local_path(row.clip_key)
        try:
            info = inspect_clip(local)
        except BadClip as bad:
            return bad
        target = self.out / VIDEOS_DIR / f"{row.prediction_id}.mp4"
        digest = sha256_file(local)
        if not (
            target.is_file()
            and target.stat().st_size == local.stat().st_size
            and sha256_file(target) == digest
        ):
            shutil.copyfile(local, target)
        return info, digest

    def _remove_stale_videos(self, keep: set[str]) -> None:
        """videos/ holds exactly the examples: a clip revoked or gone since the last build leaves."""
        for path in (self.out / VIDEOS_DIR).glob("*.mp4"):
            if path.stem not in keep:
                path.unlink()

    def _forget_revoked(self, query: FeedbackQuery, listing: Listing) -> None:
        """Delete the cache's copies of revoked clips and of objects gone from the bucket."""
        keep = listing.keys() - set(query.revoked_clip_keys())
        deleted = self.mirror.prune(keep)
        if deleted:
            log.info("deleted %d cached objects that are revoked or no longer in the bucket", deleted)

    def _write(self, built: Built) -> None:
        """videos/ is written; now labels.txt, split.json and, last, manifest.json."""
        (self.out / "manifest.json").unlink(missing_ok=True)
        index = {gloss: position for position, gloss in enumerate(built.labels)}
        atomic_write_text(self.out / "labels.txt", "".join(f"{gloss}\n" for gloss in built.labels))
        split = {
            e.row.prediction_id: {"subset": e.subset, "action": [index[e.row.label], 1, e.clip.frames]}
            for e in built.examples
        }
        atomic_write_text(self.out / "split.json", json.dumps(split, sort_keys=True) + "\n")
        manifest = json.dumps(self._manifest(built), indent=2, ensure_ascii=False)
        atomic_write_text(self.out / "manifest.json", manifest + "\n")

    def _manifest(self, built: Built) -> dict[str, object]:
        import duckdb

        examples, labels = built.examples, built.labels
        per_split = Counter(e.subset for e in examples)
        per_class = Counter(e.row.label for e in examples)
        per_device = Counter(e.row.device for e in examples)
        return {
            "kind": KIND,
            "format": FORMAT,
            "version": built.version,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "tool": f"asl-edge {__version__}, duckdb {duckdb.__version__}",
            "source": {
                "uri": self.location.url(),
                "endpoint_url": self.plan.endpoint_url,
                "since": self.plan.since,
                "until": self.plan.until,
                "keys": [o.key for o in built.batches],
                "revocation_keys": [o.key for o in built.revocations],
            },
            "sql": built.sql,
            "labels_from": str(self.plan.labels)
            if self.plan.labels
            else "the feedback: predicted and top-k words",
            "split": split_rule(self.plan.holdout_since),
            "counts": {
                "rows": built.tally.rows,
                "predictions": built.tally.predictions,
                "examples": len(examples),
                "per_split": {subset: per_split[subset] for subset in SUBSETS},
                "per_class": {gloss: per_class[gloss] for gloss in labels},
                "per_device": dict(sorted(per_device.items())),
            },
            "skipped": dict(sorted(built.skipped.items())),
            "skipped_examples": built.problems,
            "new_word_candidates": built.tally.new_words,
            "videos": {
                e.row.prediction_id: {
                    "kind": "crops",
                    "frames": e.clip.frames,
                    "width": e.clip.width,
                    "height": e.clip.height,
                    "sha256": e.sha256,
                    "clip_key": e.row.clip_key,
                    "device": e.row.device,
                    "date": e.row.date,
                    "label": e.row.label,
                    "predicted_word": e.row.predicted_word,
                    "correct": bool(e.row.correct),
                    "model_id": e.row.model_id,
                    "model_version": e.row.model_version,
                }
                for e in examples
            },
            "lineage": {
                "consented_clips": len(examples),
                "devices": sorted(per_device),
                "days": sorted({e.row.date for e in examples}),
                "revocations": built.skipped.get("revoked", 0),
                "licence": LICENCE,
            },
        }


def build_dataset(plan: BuildPlan, report: Report) -> BuildResult:
    return DatasetBuilder(plan, report).run()
