"""An ONNX file as a TensorRT network definition: what an engine build and the legacy INT8
calibration both start from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge.core.errors import AslEdgeError

if TYPE_CHECKING:
    import tensorrt as trt


class EngineBuildError(AslEdgeError):
    """The engine cannot be built as asked."""


def _network_flags() -> int:
    """Explicit batch: required by TensorRT 8.6, the only mode (and a deprecated flag) in 10."""
    import tensorrt as trt

    if int(trt.__version__.split(".")[0]) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def parse_onnx(
    builder: trt.Builder, model: Path, logger: trt.ILogger
) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    """Parse ``model``; the parser must outlive the network, so both are returned."""
    import tensorrt as trt

    network = builder.create_network(_network_flags())
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.read_bytes(), str(model)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        detail = "; ".join(f"node {e.node()}: {e.desc()}" for e in errors) or "unknown error"
        raise EngineBuildError(f"{model}: TensorRT cannot parse the ONNX model: {detail}")
    return network, parser
