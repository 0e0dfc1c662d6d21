"""What ``asl-edge run`` checks before it starts anything, and ``asl-edge check-config`` checks too.

The schema (``edge.core.config``) refuses bad values; this adds what needs the files and the
machine: the model bundle loads (``edge.runtime.model.check``), the backend the config asks for
can run here, a file source exists, the MQTT password and TLS files load, the S3 credentials
file reads, the release channel's public keys load, and the kiosk screen has the token it needs.
So every config that ``run`` would refuse for its content is refused by ``check-config`` first,
with the same one-line reason, and ``run`` never starts half of itself on a config it cannot use.
``run`` gets the bundle loaded here (``Checked``), so it is read and hashed once.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from edge.core.bundle import Bundle
from edge.core.config import Config, find_config_path, raise_problems, read_config
from edge.core.errors import AslEdgeError
from edge.runtime import model
from edge.runtime.mqtt import mqtt_settings, new_client
from edge.runtime.releases import load_public_keys
from edge.runtime.s3 import credentials_path, read_credentials
from edge.runtime.screen.server import read_token


@dataclass(frozen=True)
class Checked:
    """A config ``run`` can use, with the ``[model]`` bundle preflight already loaded and verified
    (the daemon starts on it rather than reading and hashing it again)."""

    config: Config
    bundle: Bundle | None


def problems(config: Config) -> list[str]:
    """Every problem of a schema-valid config on this machine, one line each."""
    return _inspect(config)[0]


def _inspect(config: Config) -> tuple[list[str], Bundle | None]:
    found = []
    bundle, problem = model.check(config.model)
    if problem:
        found.append(problem)
    uri = urllib.parse.urlsplit(config.source.uri)
    if uri.scheme == "file" and not Path(urllib.parse.unquote(uri.path)).is_file():
        found.append(f"source.uri: {urllib.parse.unquote(uri.path)}: no such video file")
    try:
        new_client(mqtt_settings(config), "asl-edge-preflight")
    except AslEdgeError as exc:
        found.append(str(exc))
    if config.update.channel:
        try:
            load_public_keys(config.update.public_key)
        except AslEdgeError as exc:
            found.append(str(exc))
    if config.sync.bucket:
        credentials = credentials_path(config.sync.credentials_file)
        try:
            if credentials is not None:
                read_credentials(credentials)
        except AslEdgeError as exc:
            found.append(str(exc))
    if config.screen.enabled:
        try:
            read_token(config.screen)
        except AslEdgeError as exc:
            found.append(str(exc))
    return found, bundle


def check_file(path: str | Path) -> tuple[Config, list[str]]:
    """The config at ``path`` with every problem: the schema's, then (when it has none) this
    machine's."""
    config, found = read_config(path)
    return config, found or problems(config)


def load_checked(path: str | Path | None) -> Checked:
    """The config ``run`` uses (``path``, ``$ASL_EDGE_CONFIG``, /etc/asl-edge, or the defaults),
    checked whole, with its loaded bundle; raises ConfigError naming the first problem."""
    located = find_config_path(path)
    if located is None:
        config, found = Config(), list[str]()
    else:
        config, found = read_config(located)
    bundle = None
    if not found:
        found, bundle = _inspect(config)
    raise_problems(located or Path("the default config"), found)
    return Checked(config, bundle)
