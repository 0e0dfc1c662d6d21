"""DuckDB over the mirrored CSV batches: the ``.sql`` files beside this module, run in order.

Embedded and offline: the connection may never install or load an extension on its own (reading
local CSV needs none). Its tables live in a database file (``work/build.duckdb``, new for each
build) and it works within ``memory_limit``, spilling past it to ``work/spill``, so a bucket of
any size builds in the same memory. Rows never come into Python: deduplication (the latest
feedback wins), labels, revocations and the counts are SQL; Python streams only the examples
that have a consented clip. Each text that ran is kept in ``ran`` for the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from calibration.dataset.errors import DatasetError
from edge.core.decode import UNKNOWN_WORD
from edge.runtime.sync import CSV_COLUMNS

SQL_DIR = Path(__file__).resolve().parent
MEMORY_LIMIT = "256MB"  # DuckDB's own budget; it spills to disk beyond it (bench/dataset.py)
DATABASE_FILE = "build.duckdb"
FETCH_ROWS = 2048
FIRST_DAY, LAST_DAY = "0000-01-01", "9999-12-31"


def sql_text(name: str, directory: Path = SQL_DIR) -> str:
    return (directory / f"{name}.sql").read_text(encoding="utf-8")


def run_sql(
    db: Any, name: str, parameters: Sequence[object] = (), directory: Path = SQL_DIR
) -> tuple[Any, str]:
    """One SQL file on the connection, and its text; DatasetError with DuckDB's reason in one line
    (a batch that is not CSV, say)."""
    import duckdb

    text = sql_text(name, directory)
    try:
        return db.execute(text, list(parameters)), text
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatasetError(f"{name}.sql: {first_line}") from exc


def open_database(work: Path, memory_limit: str = MEMORY_LIMIT) -> Any:
    """A fresh DuckDB database in ``work`` that spills to ``work/spill`` and can neither install
    nor load an extension by itself (its extension directory, ``work/extensions``, stays empty)."""
    import duckdb

    (work / "extensions").mkdir(parents=True, exist_ok=True)
    (work / "spill").mkdir(exist_ok=True)
    for stale in (work / DATABASE_FILE, work / f"{DATABASE_FILE}.wal"):
        stale.unlink(missing_ok=True)
    db = duckdb.connect(
        str(work / DATABASE_FILE),
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "extension_directory": str(work / "extensions"),
            "temp_directory": str(work / "spill"),
            "memory_limit": memory_limit,
            "preserve_insertion_order": False,
        },
    )
    db.execute("SET lock_configuration = true")
    return db


@dataclass(frozen=True)
class UsableRow:
    """A prediction whose feedback makes it an example, once its clip checks out."""

    prediction_id: str
    device: str
    date: str
    predicted_day: str
    label: str
    predicted_word: str
    correct: bool
    model_id: str
    model_version: str
    clip_key: str


@dataclass(frozen=True)
class Tally:
    rows: int
    predictions: int
    skipped: dict[str, int]
    new_words: dict[str, int]


class FeedbackQuery:
    """The build's SQL on one connection."""

    def __init__(self, db: Any, since: str | None = None, until: str | None = None) -> None:
        self.db = db
        self.days = [since or FIRST_DAY, until or LAST_DAY]
        self.ran: dict[str, str] = {}

    def _run(self, name: str, parameters: Sequence[object] = ()) -> Any:
        result, self.ran[name] = run_sql(self.db, name, parameters)
        return result

    def _table(self, name: str, column: str, values: Sequence[str]) -> None:
        """A one-column table of text the SQL files refer to."""
        self.db.execute(f"CREATE TABLE {name} ({column} VARCHAR)")
        if values:
            self.db.executemany(f"INSERT INTO {name} VALUES (?)", [[value] for value in values])

    def load(self, files: Sequence[Path], revoked: set[str]) -> None:
        """The batches as ``feedback`` (with every column sync writes, NULL where a batch is
        older than it), the revoked ids, then ``latest``: each prediction's winning answer."""
        self._run("feedback", [[str(path) for path in files]])
        present = {row[0] for row in self.db.execute("DESCRIBE feedback").fetchall()}
        for column in CSV_COLUMNS:
            if column not in present:
                self.db.execute(f'ALTER TABLE feedback ADD COLUMN "{column}" VARCHAR')
        self._table("revoked", "id", sorted(revoked))
        self._run("latest", [*self.days, UNKNOWN_WORD])

    def vocabulary(self) -> list[str]:
        """Every word predicted or ranked by the kiosks (not the low-confidence placeholder), sorted."""
        words = set()
        for word, escaped in self._run("vocabulary").fetchall():
            words.add(json.loads(f'"{word}"') if escaped else word)
        words.discard(UNKNOWN_WORD)
        return sorted(words)

    def classify(self, classes: Sequence[str]) -> Tally:
        """Mark each prediction usable or skipped (and why) against the class list."""
        self._table("classes", "gloss", classes)
        self._run("examples")
        skipped = dict(self._run("skipped").fetchall())
        new_words = dict(self._run("new_words").fetchall())
        rows, predictions = self._run("counts", self.days).fetchone()
        return Tally(int(rows), int(predictions), skipped, new_words)

    def usable(self) -> Iterator[UsableRow]:
        """The predictions that are examples if their clip is good, in id order, streamed."""
        result = self._run("usable")
        while batch := result.fetchmany(FETCH_ROWS):
            for row in batch:
                yield UsableRow(*row)

    def revoked_clip_keys(self) -> list[str]:
        return [key for (key,) in self._run("revoked_clips").fetchall()]

    def loaded_extensions(self) -> list[str]:
        """Extensions loaded beyond those built into the DuckDB library itself."""
        rows = self.db.execute(
            "SELECT extension_name FROM duckdb_extensions() "
            "WHERE loaded AND install_mode IS DISTINCT FROM 'STATICALLY_LINKED' ORDER BY 1"
        ).fetchall()
        return [name for (name,) in rows]
