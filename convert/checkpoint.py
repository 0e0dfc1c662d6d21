"""Loading WLASL-format I3D checkpoints: plain ``state_dict``s, optionally saved from
``nn.DataParallel`` (``module.`` prefix) or wrapped in a training checkpoint dictionary."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from convert.i3d import InceptionI3d
from edge.core.errors import AslEdgeError

STEM_KEY = "Conv3d_1a_7x7.conv3d.weight"
HEAD_KEY = "logits.conv3d.weight"
STEM_CHANNELS = 64
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")


class CheckpointError(AslEdgeError):
    """The file is not a loadable I3D checkpoint."""


def _read(path: Path) -> object:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first_line})") from exc


def extract_state_dict(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, without any ``module.`` prefix."""
    if isinstance(raw, dict):
        for key in WRAPPER_KEYS:
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw:
        raise CheckpointError(f"{path}: expected a state_dict (a dict of tensors), got {type(raw).__name__}")
    tensors = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: the checkpoint holds no tensors")
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module.") :]: value for key, value in tensors.items()}
    return tensors


def _describe(names: list[str], limit: int = 3) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", ..." if len(names) > limit else "")


def build_model(state: dict[str, torch.Tensor], path: Path) -> InceptionI3d:
    """An ``InceptionI3d`` with the checkpoint's class count and width, weights loaded, eval mode."""
    stem, head = state.get(STEM_KEY), state.get(HEAD_KEY)
    if stem is None or head is None or stem.ndim != 5 or head.ndim != 5:
        missing = [key for key in (STEM_KEY, HEAD_KEY) if key not in state]
        raise CheckpointError(
            f"{path}: not an I3D checkpoint: {len(state)} tensors, missing {_describe(missing)} "
            f"(found e.g. {_describe(sorted(state))})"
        )
    num_classes, width = int(head.shape[0]), int(stem.shape[0]) / STEM_CHANNELS
    if int(stem.shape[1]) != 3:
        raise CheckpointError(
            f"{path}: an I3D with {int(stem.shape[1])} input channels (optical flow?); asl-edge runs "
            "the RGB stream (3 channels)"
        )
    model = InceptionI3d(num_classes, width=width)
    expected = model.state_dict()
    # Checkpoints from PyTorch < 0.4.1 have no BatchNorm batch counters; they do not affect inference.
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not an I3D checkpoint: {len(missing)} keys missing "
            f"({_describe(missing) or 'none'}), {len(unexpected)} unexpected "
            f"({_describe(unexpected) or 'none'})"
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if wrong:
        raise CheckpointError(
            f"{path}: {len(wrong)} tensors have the wrong shape for an I3D of width {width:g} "
            f"with {num_classes} classes: {_describe(wrong, 2)}"
        )
    model.load_state_dict(state, strict=False)
    return model.eval()


def load_checkpoint(path: str | Path) -> InceptionI3d:
    """Load a WLASL I3D checkpoint into a ready-to-run model (class count from the checkpoint)."""
    path = Path(path)
    return build_model(extract_state_dict(_read(path), path), path)
