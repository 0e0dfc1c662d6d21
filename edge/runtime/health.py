"""``<state_dir>/health.json``: the daemon's last health message on local disk.

Written atomically (temporary file, then rename; no fsync: a liveness file only has to be whole,
and the next write replaces one a power cut lost) by the health reporter's thread at every health
publish and at shutdown, with the epoch ``time`` it was written and the ``interval_s`` between
writes, so a liveness probe (Docker's HEALTHCHECK: ``asl-edge status --check``) and a technician
without a broker can tell a live daemon from a stuck or stopped one.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from edge.core.atomic import atomic_write_text

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
STALE_INTERVALS = 3


def write_health_file(state_dir: Path, payload: dict[str, Any], interval_s: float) -> str | None:
    """Replace the health file; returns why it could not be written (a full disk, say), never
    raises: health must not stop the daemon."""
    path = state_dir / HEALTH_FILE
    record = {**payload, "time": round(time.time(), 3), "interval_s": interval_s}
    try:
        atomic_write_text(path, json.dumps(record, ensure_ascii=False) + "\n", durable=False)
    except OSError as exc:
        return f"{path}: {exc}"
    return None


def read_health_file(state_dir: Path) -> dict[str, Any] | None:
    """The last health record, or None when there is none (or it cannot be read)."""
    try:
        record = json.loads((state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def health_age_s(record: dict[str, Any], now_s: float | None = None) -> float | None:
    """Seconds since the record was written (0 when the clock went back), None without a time."""
    written = record.get("time")
    if not isinstance(written, (int, float)):
        return None
    return max(0.0, (time.time() if now_s is None else now_s) - written)


def check_health_file(state_dir: Path) -> tuple[bool, str]:
    """Liveness without a broker: the file exists and is younger than ``STALE_INTERVALS`` times
    its interval. Returns (alive, one line saying why)."""
    path = state_dir / HEALTH_FILE
    record = read_health_file(state_dir)
    if record is None:
        return False, f"{path}: missing or unreadable (is asl-edge run running?)"
    age_s, interval_s = health_age_s(record), record.get("interval_s")
    if age_s is None or not isinstance(interval_s, (int, float)) or interval_s <= 0:
        return False, f"{path}: no valid time and interval_s"
    limit_s = STALE_INTERVALS * interval_s
    if age_s >= limit_s:
        return (
            False,
            f"{path}: last written {age_s:.0f} s ago, more than {limit_s:g} s (daemon stuck or stopped)",
        )
    return True, f"alive: health written {age_s:.1f} s ago (limit {limit_s:g} s)"
