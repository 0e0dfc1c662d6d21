"""The one way asl-edge writes a time for people and other systems: ISO 8601 in UTC, ``Z``.

Feedback batches (``received_at``, ``predicted_at``), release documents (``created``,
``promoted``) and the health message (``sync_last_success_utc``) all use it.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def utc_iso(unix_s: float | None = None, timespec: str = "seconds") -> str:
    """``unix_s`` (now when None) as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; ``timespec`` as in
    ``datetime.isoformat`` (``microseconds`` for data rows)."""
    moment = datetime.fromtimestamp(time.time() if unix_s is None else unix_s, timezone.utc)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
