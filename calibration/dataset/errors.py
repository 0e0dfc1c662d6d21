"""What can stop a dataset build, so the command can say which kind of problem it was."""

from __future__ import annotations

from edge.core.errors import AslEdgeError


class DatasetError(AslEdgeError):
    """The build cannot run as asked: no feedback where it was pointed, a bad class list or
    revocation list (exit 2)."""


class NoFeedback(DatasetError):
    """The prefix (within the days chosen) holds no feedback rows."""


class SourceUnavailable(AslEdgeError):
    """S3 did not answer or refused (endpoint unreachable, no such bucket, access denied): exit 1,
    try again later."""
