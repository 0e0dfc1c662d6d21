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
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from convert.onnx_tools import keep_used_opsets
from edge.core.errors import AslEdgeError

log = logging.getLogger(__name__)

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class QuantizationError(AslEdgeError):
    """The model could not be quantized."""


class _ClipReader(CalibrationDataReader):
    """Feeds calibration clips one at a time, counting them."""

    def __init__(self, input_name: str, clips: Iterable[np.ndarray]) -> None:
        self._input_name = input_name
        self._clips: Iterator[np.ndarray] = iter(clips)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._clips, None)
        if clip is None:
            return None
        self.count += 1
        return {self._input_name: clip}


def quantize_to_qdq(
    model_path: Path, output_path: Path, input_name: str, clips: Iterable[np.ndarray], method: str = "entropy"
) -> int:
    """Write the QDQ model calibrated on ``clips``; returns how many clips were used."""
    if method not in METHODS:
        raise QuantizationError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")
    reader = _ClipReader(input_name, clips)
    extra_options = {
        "ActivationSymmetric": True,
        "WeightSymmetric": True,
        "QuantizeBias": False,
        "AddQDQPairToWeight": False,
        "DedicatedQDQPair": False,
    }
    with tempfile.TemporaryDirectory(prefix="asl-edge-qdq-", dir=output_path.parent) as folder:
        prepared, staged = Path(folder) / "prepared.onnx", Path(folder) / "model.int8.onnx"
        # ONNX Runtime's calibrators print their progress; keep it in the log, not on stdout.
        chatter = io.StringIO()
        try:
            with contextlib.redirect_stdout(chatter):
                quant_pre_process(str(model_path), str(prepared))
                quantize_static(
                    str(prepared),
                    str(staged),
                    reader,
                    quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"],
                    per_channel=True,
                    activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=METHODS[method],
                    extra_options=extra_options,
                )
        except (ValueError, RuntimeError) as exc:
            raise QuantizationError(f"{model_path}: quantization failed: {exc}") from exc
        finally:
            log.debug("onnxruntime quantization: %s", chatter.getvalue().strip())
        if reader.count == 0:
            raise QuantizationError("no calibration clips: the clip source produced nothing")
        quantized = onnx.load(str(staged))
        keep_used_opsets(quantized)
        check_tensorrt_compatible(quantized)
        onnx.save(quantized, str(output_path))
    log.info("quantized %s with %d clips (%s)", model_path.name, reader.count, method)
    return reader.count


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
