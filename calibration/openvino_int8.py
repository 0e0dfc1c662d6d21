"""OpenVINO's INT8 model: NNCF post-training quantization of the bundle's ONNX model.

For x86 CPU kiosks (the OpenVINO backend's ``int8`` precision); the TensorRT QDQ model stays the
Jetson's. NNCF quantizes OpenVINO's own graph, so its INT8 convolutions are the ones OpenVINO
executes well (given the TensorRT-shaped QDQ model, OpenVINO mis-executes the convolutions that
share one Q/DQ after a Concat). Statistics are collected one clip at a time, in a single pass, so
memory does not grow with the clip count. Symmetric quantization (the ``PERFORMANCE`` preset) and
fast bias correction, CPU target. ``nncf`` and ``openvino`` are build-time dependencies (the
``convert`` extra): imported only here, only when called.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from calibration.qdq import QuantizationError
from edge.core.atomic import fsync_directory

log = logging.getLogger(__name__)


class _ClipDataset:
    """A re-iterable view of a clip source (opened anew on each pass), counting what it yields."""

    def __init__(self, open_clips: Callable[[], Iterable[np.ndarray]], on_clip: Callable[[], None]) -> None:
        self._open_clips = open_clips
        self._on_clip = on_clip
        self.count = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for clip in self._open_clips():
            self.count += 1
            self._on_clip()
            yield clip


def _save_pair(ov: Any, model: Any, xml_path: Path) -> None:
    """The ``.xml`` and its ``.bin``, each replaced whole (weights first); the manifest, written
    after them, holds both checksums, so a reader never takes a mixed pair for a model."""
    with tempfile.TemporaryDirectory(prefix=".openvino-", dir=xml_path.parent) as folder:
        staged = Path(folder) / xml_path.name
        ov.save_model(model, str(staged), compress_to_fp16=False)
        for written in (staged.with_suffix(".bin"), staged):
            with open(written, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(written, xml_path.parent / written.name)
    fsync_directory(xml_path.parent)


def quantize_for_openvino(
    model_path: Path,
    output_path: Path,
    open_clips: Callable[[], Iterable[np.ndarray]],
    count: int,
    on_clip: Callable[[], None] = lambda: None,
) -> int:
    """Write the OpenVINO INT8 model (``output_path``, an ``.xml`` with its ``.bin``) calibrated on
    up to ``count`` clips from ``open_clips()``; returns how many were used."""
    try:
        import nncf
        import openvino as ov
    except ImportError as exc:
        raise QuantizationError(
            f"the OpenVINO INT8 model needs nncf and openvino: pip install 'asl-edge[convert]' ({exc})"
        ) from exc
    dataset = _ClipDataset(open_clips, on_clip)
    chatter = io.StringIO()
    try:
        model = ov.Core().read_model(str(model_path))
        # NNCF draws progress bars on stdout; keep them in the log, like ONNX Runtime's chatter.
        with contextlib.redirect_stdout(chatter):
            quantized = nncf.quantize(
                model,
                nncf.Dataset(dataset),
                preset=nncf.QuantizationPreset.PERFORMANCE,
                target_device=nncf.TargetDevice.CPU,
                subset_size=count,
                fast_bias_correction=True,
            )
    except (RuntimeError, ValueError, nncf.ValidationError) as exc:
        raise QuantizationError(f"{model_path}: NNCF quantization failed: {exc}") from exc
    finally:
        log.debug("nncf: %s", chatter.getvalue().strip())
    if dataset.count == 0:
        raise QuantizationError("no calibration clips: the clip source produced nothing")
    _save_pair(ov, quantized, output_path)
    log.info("quantized %s for OpenVINO with %d clips (NNCF)", model_path.name, dataset.count)
    return min(dataset.count, count)
