"""Secrets that systemd (``LoadCredential=``) or the container passes in ``$CREDENTIALS_DIRECTORY``.

The installer creates each credential file empty (systemd refuses to start a unit whose credential
file is missing), so an empty credential means "not given", for every secret alike.
"""

from __future__ import annotations

import os
from pathlib import Path


def systemd_credential(name: str) -> Path | None:
    """``$CREDENTIALS_DIRECTORY/<name>`` when it holds something; an unreadable one is returned too,
    so that the caller's own read reports why."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return None
    path = Path(directory) / name
    try:
        return path if path.read_text(encoding="utf-8").strip() else None
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return path
