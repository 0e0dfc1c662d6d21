"""PyTorch I3D to a clean, static-shape ONNX model, and the parity check that proves it.

Opset 17 because TensorRT 8.6 (JetPack 6.0) parses ONNX up to 17. The legacy (tracing) exporter
leaves a small constant subgraph behind every "same" padding; ONNX Runtime's basic (standard-op)
constant folding removes them offline, and the zero pads are then merged into the ``pads`` of the
convolutions and max pools they feed. The time axis is static: the "same" pads depend on the clip
length, so a model exported for one T computes wrong results for another.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

from convert.i3d import InceptionI3d
from convert.onnx_tools import keep_used_opsets
from convert.random_model import smooth_random_clips
from edge.core.errors import AslEdgeError

OPSET = 17
INPUT_NAME = "clip"
OUTPUT_NAME = "logits"
PARITY_RTOL = 1e-3


class ExportError(AslEdgeError):
    """The ONNX export failed or does not compute what the PyTorch model computes."""


def _fold_constants(source: Path, target: Path) -> None:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _zero_constant_pads(node: onnx.NodeProto, initializers: dict[str, np.ndarray]) -> list[int] | None:
    """The pads of a zero-valued constant ``Pad`` node, or None if it is anything else."""
    mode = next((a.s for a in node.attribute if a.name == "mode"), b"constant")
    if mode != b"constant" or len(node.input) < 2 or node.input[1] not in initializers:
        return None
    if len(node.input) > 2 and node.input[2]:
        value = initializers.get(node.input[2])
        if value is None or np.any(value != 0):
            return None
    if len(node.input) > 3 and node.input[3]:
        return None
    return [int(v) for v in initializers[node.input[1]]]


def _is_nonnegative(
    name: str, producers: dict[str, onnx.NodeProto], initializers: dict[str, np.ndarray]
) -> bool:
    """True when ``name`` is a ReLU output, or max-pooled, zero-padded or concatenated ones."""
    node = producers.get(name)
    if node is None:
        return False
    if node.op_type == "Relu":
        return True
    if node.op_type == "MaxPool" or (
        node.op_type == "Pad" and _zero_constant_pads(node, initializers) is not None
    ):
        return _is_nonnegative(node.input[0], producers, initializers)
    return node.op_type == "Concat" and all(_is_nonnegative(i, producers, initializers) for i in node.input)


def fuse_pads(model: onnx.ModelProto) -> int:
    """Merge zero ``Pad`` nodes into the ``pads`` of the Conv or MaxPool they feed; returns how many.

    A max pool ignores its own padding, which equals zero padding only for non-negative inputs,
    so that merge is limited to ReLU outputs (where every I3D max pool sits).
    """
    graph = model.graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    producers = {output: node for node in graph.node for output in node.output}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {output.name for output in graph.output}
    fused = []
    for pad in graph.node:
        if pad.op_type != "Pad" or pad.output[0] in outputs:
            continue
        users = consumers.get(pad.output[0], [])
        pads = _zero_constant_pads(pad, initializers)
        if pads is None:
            continue
        if not any(pads):
            for user in users:
                user.input[:] = [pad.input[0] if n == pad.output[0] else n for n in user.input]
            fused.append(pad)
            continue
        if len(users) != 1 or users[0].op_type not in ("Conv", "MaxPool"):
            continue
        if users[0].op_type == "MaxPool" and not _is_nonnegative(pad.input[0], producers, initializers):
            continue
        rank = len(pads) // 2
        if any(pads[i] or pads[i + rank] for i in (0, 1)):
            continue
        conv = users[0]
        if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in conv.attribute):
            continue
        attribute = next((a for a in conv.attribute if a.name == "pads"), None)
        if attribute is None:
            conv.attribute.append(onnx.helper.make_attribute("pads", [0] * (2 * (rank - 2))))
            attribute = conv.attribute[-1]
        spatial = list(attribute.ints)
        merged = [spatial[i] + pads[2 + i] for i in range(rank - 2)]
        merged += [spatial[rank - 2 + i] + pads[rank + 2 + i] for i in range(rank - 2)]
        del attribute.ints[:]
        attribute.ints.extend(merged)
        conv.input[0] = pad.input[0]
        fused.append(pad)
    for pad in fused:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return len(fused)


def export_onnx(model: InceptionI3d, frames: int, path: Path, crop_size: int = 224) -> onnx.ModelProto:
    """Export ``model`` for clips ``(1, 3, frames, crop, crop)`` to ``path``; returns the model."""
    example = torch.zeros(1, 3, frames, crop_size, crop_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="asl-edge-export-", dir=path.parent) as folder:
        traced, folded = Path(folder) / "traced.onnx", Path(folder) / "folded.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            # Tracing warns that shapes become constants: that is the intent (static model).
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    model.eval(),
                    (example,),
                    str(traced),
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
            except (RuntimeError, ValueError, torch.onnx.errors.OnnxExporterError) as exc:
                raise ExportError(f"ONNX export failed: {exc}") from exc
        _fold_constants(traced, folded)
        exported = onnx.load(str(folded))
    fuse_pads(exported)
    keep_used_opsets(exported)
    del exported.graph.value_info[:]
    exported = onnx.shape_inference.infer_shapes(exported, strict_mode=True)
    exported.producer_name = "asl-edge"
    onnx.checker.check_model(exported, full_check=True)
    onnx.save(exported, str(path))
    return exported


@dataclass(frozen=True)
class ParityReport:
    """How closely ONNX Runtime reproduces PyTorch on the same clips."""

    clips: int
    max_abs_diff: float
    max_rel_diff: float
    top1_agreement: float

    @property
    def passed(self) -> bool:
        return self.max_rel_diff <= PARITY_RTOL and self.top1_agreement == 1.0

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "rtol": PARITY_RTOL, "passed": self.passed}


def check_parity(model: InceptionI3d, onnx_path: Path, clips: int = 3, seed: int = 0) -> ParityReport:
    """Run PyTorch and ONNX Runtime on the same smooth random clips and compare logits.

    The relative difference is the largest absolute difference over the largest PyTorch logit.
    """
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    probes = smooth_random_clips(clips, int(shape[2]), seed, size=int(shape[3]))
    max_abs, max_ref, agree = 0.0, 0.0, 0
    for probe in probes:
        clip = probe[None]
        with torch.no_grad():
            expected = model(torch.from_numpy(clip)).numpy()
        actual = session.run([OUTPUT_NAME], {INPUT_NAME: clip})[0]
        if actual.shape != expected.shape:
            raise ExportError(f"ONNX output shape {actual.shape} differs from PyTorch's {expected.shape}")
        max_abs = max(max_abs, float(np.abs(actual - expected).max()))
        max_ref = max(max_ref, float(np.abs(expected).max()))
        agree += int(actual.mean(-1).argmax() == expected.mean(-1).argmax())
    return ParityReport(
        clips=clips,
        max_abs_diff=max_abs,
        max_rel_diff=max_abs / max(max_ref, 1e-12),
        top1_agreement=agree / clips,
    )
