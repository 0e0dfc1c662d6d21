"""Small ONNX graph utilities shared by export and quantization (no PyTorch import)."""

from __future__ import annotations

import onnx


def keep_used_opsets(model: onnx.ModelProto) -> None:
    """Drop the ONNX Runtime domains its optimiser declares but the graph does not use."""
    used = {node.domain for node in model.graph.node}
    kept = [entry for entry in model.opset_import if entry.domain in used or entry.domain == ""]
    del model.opset_import[:]
    model.opset_import.extend(kept)
