"""Explicit INT8: a QDQ ONNX model that TensorRT turns into INT8 convolutions.

TensorRT's rules for explicit quantization shape the settings: symmetric scales with zero point
0 (activations in [-128, 127], weights in [-127, 127]), per-channel weight scales on the output
channel axis, Q/DQ pairs in front of each convolution's input and a DequantizeLinear on its int8
weights (TensorRT fuses ``DQ -> Conv`` into an INT8 convolution and propagates scales through
max pools and concatenations), biases left in float, opset 17. ONNX Runtime runs the same model
on the CPU, which is how its accuracy is checked here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantType
from onnxruntime.quantization.calibrate import TensorsData, create_calibrator
from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
from onnxruntime.quantization.shape_inference import quant_pre_process

from convert.onnx_tools import keep_used_opsets
from edge.core.atomic import replacing
from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


# TensorRT's explicit-quantization rules (module docstring) in ONNX Runtime's option names.
QDQ_OPTIONS = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
    "AddQDQPairToWeight": False,
    "DedicatedQDQPair": False,
}


class QuantizationError(AslEdgeError):
    """The model could not be quantized."""


class _OneClip(CalibrationDataReader):
    """One clip, then the end: each ``collect_data`` call sees a single clip."""

    def __init__(self, input_name: str, clip: np.ndarray) -> None:
        self._feed: dict[str, np.ndarray] | None = {input_name: clip}

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed, self._feed = self._feed, None
        return feed


def collect_ranges(
    prepared: Path,
    work: Path,
    input_name: str,
    clips: Iterable[np.ndarray],
    method: str,
    on_clip: Callable[[], None] = lambda: None,
) -> tuple[TensorsData, int]:
    """Activation ranges of the model's convolution inputs, one clip at a time.

    ONNX Runtime's calibrator, fed the whole set in one ``collect_data`` call, keeps every
    activation of every clip until the end (about 0.85 GB a clip for the full I3D at T=64). Fed one
    clip per call, its histogram collector (entropy, percentile) merges each clip into running
    histograms and MinMax merges running ranges, so only one clip's activations are alive at a time.
    """
    calibrator = create_calibrator(
        prepared,
        ["Conv"],
        augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=METHODS[method],
    )
    count = 0
    for clip in clips:
        calibrator.collect_data(_OneClip(input_name, clip))
        count += 1
        on_clip()
    if count == 0:
        raise QuantizationError("no calibration clips: the clip source produced nothing")
    return calibrator.compute_data(), count


def quantize_to_qdq(
    model_path: Path,
    output_path: Path,
    input_name: str,
    clips: Iterable[np.ndarray],
    method: str = "entropy",
    on_clip: Callable[[], None] = lambda: None,
) -> int:
    """Write the QDQ model calibrated on ``clips``; returns how many clips were used."""
    if method not in METHODS:
        raise QuantizationError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    with tempfile.TemporaryDirectory(prefix="asl-edge-qdq-", dir=output_path.parent) as folder:
        work = Path(folder)
        prepared, staged = work / "prepared.onnx", work / "model.int8.onnx"
        # ONNX Runtime's calibrators print their progress; keep it in the log, not on stdout.
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):
                quant_pre_process(str(model_path), str(prepared))
                ranges, count = collect_ranges(prepared, work, input_name, clips, method, on_clip)
                # What quantize_static does with the ranges it calibrated (the QDQ format).
                quantizer = QDQQuantizer(
                    load_model_with_shape_infer(prepared),
                    True,  # per_channel
                    False,  # reduce_range
                    QuantType.QInt8,  # weights
                    QuantType.QInt8,  # activations
                    ranges,
                    [],  # nodes_to_quantize: all
                    [],  # nodes_to_exclude
                    ["Conv"],
                    QDQ_OPTIONS,
                )
                quantizer.quantize_model()
                quantizer.model.save_model_to_file(str(staged), False)
        except (ValueError, RuntimeError) as exc:
            raise QuantizationError(f"{model_path}: quantization failed: {exc}") from exc
        finally:
            log.debug("onnxruntime quantization: %s", chatter.getvalue().strip())
        quantized = onnx.load(str(staged))
        keep_used_opsets(quantized)
        check_tensorrt_compatible(quantized)
        with replacing(output_path, ".onnx") as temporary:
            onnx.save(quantized, str(temporary))
    log.info("quantized %s with %d clips (%s)", model_path.name, count, method)
    return count


def check_tensorrt_compatible(model: onnx.ModelProto) -> None:
    """Refuse a QDQ model TensorRT would reject: asymmetric zero points or an old opset."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise QuantizationError(f"QDQ model has opset {opset}; TensorRT needs opset 13 or newer")
    initializers = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    quantize_nodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not any(n.op_type == "QuantizeLinear" for n in quantize_nodes):
        raise QuantizationError("the quantized model has no QuantizeLinear nodes")
    for node in quantize_nodes:
        zero_point = initializers.get(node.input[2]) if len(node.input) > 2 else None
        if zero_point is not None and (zero_point.dtype != np.int8 or np.any(zero_point != 0)):
            raise QuantizationError(f"{node.name}: zero point must be int8 0 for TensorRT")
