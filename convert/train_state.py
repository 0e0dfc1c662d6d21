"""A fine-tuning run's state on disk, so that a run killed at any moment resumes where it stopped.

The work directory (``<NEW_BUNDLE>.partial/`` by default) holds ``state.pt``: the steps done, the
model's, optimizer's, learning-rate schedule's and (on CUDA) loss scaler's state, and the run's
fingerprint, everything that decides its result (the parent weights, the dataset version, the replay
source, every setting, the number of processes). It is replaced atomically every few steps, so a
kill leaves the previous state whole. Every other source of randomness in a run is a function of
the seed and the step, so a resumed run ends with the same weights as an uninterrupted one. A state
whose fingerprint differs is refused, naming the difference: two different runs never mix.
"""

from __future__ import annotations

import logging
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from edge.core.atomic import replacing
from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"


class TrainStateError(AslEdgeError):
    """The work directory holds a state this run cannot resume."""


def work_dir_for(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def save_state(work: Path, fingerprint: dict[str, Any], step: int, parts: dict[str, Any]) -> None:
    """Replace the saved state with the one after ``step`` steps."""
    with replacing(work / STATE_FILE, suffix=".pt") as staged:
        torch.save({"fingerprint": fingerprint, "step": step, **parts}, staged)


def load_state(work: Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state of this same run, None when there is none; TrainStateError for another run's."""
    path = work / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, OSError) as exc:
        raise TrainStateError(f"{path}: unreadable training state ({exc}); delete it to start over") from exc
    saved = state.get("fingerprint") if isinstance(state, dict) else None
    if saved != fingerprint:
        differing = sorted(
            key
            for key in set(fingerprint) | set(saved or {})
            if (saved or {}).get(key) != fingerprint.get(key)
        )
        raise TrainStateError(
            f"{path} belongs to another run (it differs in {', '.join(differing) or 'its format'}); "
            "run with the same arguments to resume it, or delete it to start over"
        )
    log.info("resuming from %s after step %d", path, state["step"])
    return state


def remove_work_dir(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
