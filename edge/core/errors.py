"""Typed errors of the runtime; the CLI turns them into one-line messages and exit codes."""


class AslEdgeError(Exception):
    """Base class: something the user can fix, described in one line."""


class BundleError(AslEdgeError):
    """A model bundle is missing, incomplete or inconsistent."""


class VideoError(AslEdgeError):
    """A video source cannot be opened, downloaded or decoded."""


class ConfigError(AslEdgeError):
    """A configuration value is invalid; the message names the key and the fix."""


class BackendError(AslEdgeError):
    """An inference backend cannot be created or cannot run the model."""
