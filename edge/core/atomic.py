"""Files that readers see whole or not at all, even after a power cut.

The one way asl-edge replaces a file: write a temporary file in the same directory (so the rename
stays on one file system), fsync it, rename it over the target, then fsync the directory so the
rename itself is on disk. Used for manifests, engines and their sidecars, consent clips and
anything else a crash must not leave half written. Liveness files rewritten every few seconds
(health.json, the metrics textfile) pass ``durable=False``: the rename alone keeps readers from
seeing half a file, and a power cut may only lose the last one, which the next write replaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@contextlib.contextmanager
def replacing(path: Path, suffix: str = ".tmp", durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that needs a file name (an encoder, a
    library's ``save``); when the block succeeds it becomes ``path`` atomically, when it fails it
    is removed. ``suffix`` lets writers that choose a format by extension see the right one;
    ``durable=False`` skips both fsyncs (atomic for readers, not across a power cut)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created like any new file (0666 less the umask), not mkstemp's 0600: a manifest or a metrics
    # file must stay readable by whoever could read the file it replaces.
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.partial{suffix}"
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield temporary
        if durable:
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        fsync_directory(path.parent)


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: the old file or the whole new one, never a mix."""
    with replacing(path, durable=durable) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable)
