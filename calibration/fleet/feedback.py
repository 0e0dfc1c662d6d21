"""The fleet's judged signs in DuckDB, and their counts.

The synced batches under ``s3://BUCKET/PREFIX`` are mirrored into a local cache and loaded with
the dataset build's own code (calibration/dataset/bucket.py, query.py: ``feedback.sql`` and
``latest.sql``, each prediction's latest answer, revocations honoured); ``judged.sql`` beside this
module then makes one row per judged sign. Every count is a plain ``.sql`` file here, run with a
cut-off (the first second counted), so a rollout step can count since its candidate started and
since its step began.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.dataset.bucket import BucketMirror, ObjectGone, RemoteObject
from calibration.dataset.errors import DatasetError, NoFeedback
from calibration.dataset.query import DATABASE_FILE, FeedbackQuery, open_database, run_sql
from calibration.dataset.revocations import read_revocations
from edge.runtime.s3 import S3Settings, parse_s3_url

SQL_DIR = Path(__file__).resolve().parent
FETCH_THREADS = 8
ALL = ""  # a cut-off that counts every row


@dataclass(frozen=True)
class Count:
    """Judged signs and how many were right, for one group of rows."""

    key: tuple[str, ...]
    judged: int
    correct: int


@dataclass(frozen=True)
class PairCount:
    serving_version: str
    shadow_version: str
    pairs: int
    both_right: int
    serving_only: int
    shadow_only: int
    both_wrong: int


@dataclass(frozen=True)
class Volume:
    version: str
    model_id: str
    cohort: str
    day: str
    answers: int
    kiosks: int
    named: int


@dataclass(frozen=True)
class Tallies:
    """Every count of the report, over the judged signs predicted at or after one cut-off."""

    releases: list[Count]  # (role, version, model_id)
    cohorts: list[Count]  # (version, model_id, cohort)
    words: list[Count]  # (version, model_id, word)
    devices: list[Count]  # (version, model_id, device)
    days: list[Count]  # (role, version, model_id, day)
    paired: list[PairCount]
    volume: list[Volume]

    @classmethod
    def empty(cls) -> Tallies:
        return cls([], [], [], [], [], [], [])

    def serving(self, version: str) -> Count:
        """The judged signs a release served (zero when none)."""
        found = [c for c in self.releases if c.key[0] == "serving" and c.key[1] == version]
        return Count(("serving", version), sum(c.judged for c in found), sum(c.correct for c in found))

    def pairs(self, serving_version: str, shadow_version: str) -> PairCount:
        for pair in self.paired:
            if (pair.serving_version, pair.shadow_version) == (serving_version, shadow_version):
                return pair
        return PairCount(serving_version, shadow_version, 0, 0, 0, 0, 0)


class FleetFeedback:
    """One synced prefix, mirrored under ``cache`` and loaded into a DuckDB database there."""

    def __init__(self, source: str, settings: S3Settings, cache: Path) -> None:
        self.location = parse_s3_url(source)
        self.cache = cache
        self.mirror = BucketMirror(self.location, settings, cache)
        self.db: Any = None
        self.batches = 0
        self.sql: dict[str, str] = {}

    def load(self, since_day: str | None = None) -> None:
        """Fetch what changed and load the batches of ``since_day`` (YYYY-MM-DD) and after;
        NoFeedback when there are none."""
        listing = self.mirror.list()
        batches = [item for item, day in listing.batches if since_day is None or day >= since_day]
        self.batches = len(batches)
        if not batches:
            where = f" from {since_day} on" if since_day else ""
            raise NoFeedback(f"no feedback batches under {self.location.url()}/device=*/date=*/{where}")
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            list(pool.map(self._fetch, batches + listing.revocations))
        self.mirror.prune(listing.keys())
        revoked = read_revocations((o.key, self.mirror.local_path(o.key)) for o in listing.revocations)
        self.db = open_database(self.cache / "duckdb")
        query = FeedbackQuery(self.db, since_day, None)
        query.load([self.mirror.local_path(o.key) for o in batches], revoked)
        self.sql.update(query.ran)
        self._run("judged")

    def _fetch(self, item: RemoteObject) -> None:
        try:
            self.mirror.fetch(item)
        except ObjectGone:
            raise DatasetError(f"{self.mirror.url(item.key)} disappeared while it was read") from None

    def _run(self, name: str, parameters: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        result, self.sql[name] = run_sql(self.db, name, parameters, SQL_DIR)
        return result.fetchall() if result.description else []

    def _counts(self, name: str, cutoff: str, cutoffs: int = 1) -> list[Count]:
        rows = self._run(name, (cutoff,) * cutoffs)
        return [Count(tuple(str(part) for part in row[:-2]), int(row[-2]), int(row[-1] or 0)) for row in rows]

    def tallies(self, cutoff: str = ALL) -> Tallies:
        """Every count over the signs predicted at ``cutoff`` (YYYY-MM-DDTHH:MM:SS) or later."""
        paired = [
            PairCount(str(r[0]), str(r[1]), *(int(v or 0) for v in r[2:]))
            for r in self._run("paired", (cutoff,))
        ]
        volume = [
            Volume(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]), int(r[6] or 0))
            for r in self._run("volume", (cutoff,))
        ]
        return Tallies(
            self._counts("releases", cutoff, 2),
            self._counts("cohorts", cutoff),
            self._counts("words", cutoff),
            self._counts("devices", cutoff),
            self._counts("days", cutoff, 2),
            paired,
            volume,
        )

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        (self.cache / "duckdb" / DATABASE_FILE).unlink(missing_ok=True)
