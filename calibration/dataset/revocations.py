"""Withdrawn consent: prediction and device ids listed under ``PREFIX/revocations/``.

Any number of objects, each UTF-8 text with one id per line; blank lines and ``#`` comments (a
whole line, or the rest of one) are ignored. An id revokes the prediction that has it, or every
prediction of the device that has it. A list that cannot be read stops the build: a consent
withdrawn must never be skipped silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from calibration.dataset.errors import DatasetError


def parse_revocations(text: str) -> set[str]:
    """The ids in one revocation list."""
    ids = set()
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            ids.add(entry)
    return ids


def read_revocations(files: Iterable[tuple[str, Path]]) -> set[str]:
    """Every id in the lists (``(key, local copy)`` pairs); DatasetError naming a list that is not
    UTF-8 text."""
    ids: set[str] = set()
    for key, path in files:
        try:
            ids |= parse_revocations(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"revocation list {key} cannot be read as UTF-8 text: {exc}") from exc
    return ids
