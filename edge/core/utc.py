"""The one way asl-edge writes a time for people and other systems: ISO 8601 in UTC.

Feedback batches (``received_at``, ``predicted_at``) and release documents (``created``,
``promoted``) end in ``Z``; the health message's ``sync_last_success_utc`` has kept ``+00:00``
since schema 1 (``zulu=False``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone


def utc_iso(unix_s: float | None = None, timespec: str = "seconds", zulu: bool = True) -> str:
    """``unix_s`` (now when None) as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (``+00:00`` without
    ``zulu``); ``timespec`` as in ``datetime.isoformat`` (``microseconds`` for data rows)."""
    text = datetime.fromtimestamp(time.time() if unix_s is None else unix_s, timezone.utc).isoformat(
        timespec=timespec
    )
    return text.replace("+00:00", "Z") if zulu else text
